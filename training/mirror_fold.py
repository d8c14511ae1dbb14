"""Mirror averaging built into an ONNX model, switchable at run time from the one file.

:func:`fold_flip` writes a model that reads each face and its mirror image and averages the two probability
vectors, unless its boolean input ``mirror`` (an overridable initializer, True by default) is fed False; then each
face is read once, at half the work::

    input --If(mirror)--> faces + mirror images | faces --network--> per-view logits --If(mirror)--> averaged | as is

The network sits between the two ``If`` nodes, so both paths share one graph and one ONNX Runtime session; the
qualities of ``fer_core`` (best / balanced / fastest) only set the flag (``fer_core.session``). Files folded before
the flag existed (the nodes in the main graph) are converted by :func:`make_switchable`
(``python -m training.mirror_fold MODEL.onnx``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fer_core.session import MIRROR_INPUT

IF_BATCH, IF_OUTPUT = "flip_if_batch", "flip_if_output"
"""The ``If`` nodes: the batch (faces, then their mirror images, or the faces alone) and the output (the averaged
logits, or the per-view ones)."""
AVERAGED, ONE_VIEW = "flip_averaged", "flip_one_view"  # the output branches' result names


def fold_flip(src: str | Path, dst: str | Path) -> None:
    """Write ``src`` with mirror averaging built in and switchable (see the module docstring).

    With the flag on (the default), each face also goes through the model flipped left-right, and the output is
    the log of the two softmax outputs' mean (an (N, C) logit that softmax turns into that mean). Metadata gets
    ``tta = flip``.

    Raises:
        ValueError: ``src`` already averages flips, or its output has no fixed class count.
    """
    import onnx

    from training.onnx_graph import save_with_metadata

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("tta") == "flip":
        raise ValueError(f"{src} already averages each face with its mirror image")
    _add_flip_nodes(model)
    make_switchable(model)
    props["tta"] = "flip"
    save_with_metadata(model, props, dst)


def _add_flip_nodes(model) -> None:
    """The fold as plain nodes of the main graph (the form :func:`make_switchable` turns into ``If`` branches)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inp, out = graph.input[0].name, graph.output[0].name
    both, per_view = f"{inp}_and_mirror", f"{out}_per_view"
    for node in graph.node:
        node.input[:] = [both if i == inp else i for i in node.input]
        node.output[:] = [per_view if o == out else o for o in node.output]
    classes = graph.output[0].type.tensor_type.shape.dim[1].dim_value
    if not classes:
        raise ValueError("the model's output class count is not fixed in the graph")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    const = {"flip_start": [-1], "flip_end": [-(2**62)], "flip_axis": [3], "flip_step": [-1],
             "two_views": [2, -1, classes]}
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18, as an attribute before
        const["view_axis"] = [0]
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in const.items())
    mean_args = {"inputs": ["flip_views", "view_axis"]} if opset >= 18 else {"inputs": ["flip_views"], "axes": [0]}
    graph.node.insert(0, helper.make_node("Concat", [inp, "flip_image"], [both], axis=0, name="flip_batch"))
    graph.node.insert(0, helper.make_node("Slice", [inp, "flip_start", "flip_end", "flip_axis", "flip_step"],
                                          ["flip_image"], name="flip_mirror"))
    graph.node.extend([
        helper.make_node("Softmax", [per_view], ["flip_probs"], axis=1, name="flip_softmax"),
        helper.make_node("Reshape", ["flip_probs", "two_views"], ["flip_views"], name="flip_views"),
        helper.make_node("ReduceMean", outputs=["flip_mean"], keepdims=0, name="flip_mean", **mean_args),
        helper.make_node("Log", ["flip_mean"], [out], name="flip_log"),
    ])


def is_switchable(model) -> bool:
    """Whether ``model`` has the switchable fold (:func:`fold_flip` since the ``mirror`` flag)."""
    return any(node.name == IF_OUTPUT for node in model.graph.node)


def make_switchable(model) -> None:
    """Turn a fold of plain nodes (``flip_mirror``, ``flip_batch`` first, ``flip_softmax`` and all after it last,
    as files were folded before the flag) into the two ``If`` branches with the ``mirror`` input, in place.
    Outputs are unchanged: bit for bit with the flag on, the network before the fold with it off.

    Raises:
        ValueError: ``model`` has no such fold, or is switchable already.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if is_switchable(model):
        raise ValueError("the model's mirror averaging is switchable already")
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in graph.node]  # copies, kept past the del
    names = [n.name for n in nodes]
    if not {"flip_mirror", "flip_batch", "flip_softmax"} <= set(names):
        raise ValueError("the model does not average mirror images in its graph (no flip_* nodes)")
    head = [n for n in nodes if n.name in ("flip_mirror", "flip_batch")]
    start = names.index("flip_softmax")
    body, tail = [n for n in nodes[:start] if n.name not in ("flip_mirror", "flip_batch")], nodes[start:]
    inp, out = graph.input[0], graph.output[0]
    both, per_view = head[-1].output[0], tail[0].input[0]
    for node in head:  # the mirror image had the flag's name in older folds
        node.input[:] = ["flip_image" if i == MIRROR_INPUT else i for i in node.input]
        node.output[:] = ["flip_image" if o == MIRROR_INPUT else o for o in node.output]
    tail[-1].output[:] = [AVERAGED if o == out.name else o for o in tail[-1].output]
    if AVERAGED not in tail[-1].output:
        raise ValueError("the model's last node does not give its output")

    def result(name: str, like) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, like.type.tensor_type.elem_type, None)

    with_mirror = helper.make_graph(head, "faces_and_mirror_images", [], [result(both, inp)])
    faces_only = helper.make_graph([helper.make_node("Identity", [inp.name], ["flip_faces"])], "faces", [],
                                   [result("flip_faces", inp)])
    averaged = helper.make_graph(tail, "averaged", [], [result(AVERAGED, out)])
    one_view = helper.make_graph([helper.make_node("Identity", [per_view], [ONE_VIEW])], "one_view", [],
                                 [result(ONE_VIEW, out)])
    del graph.node[:]
    graph.node.append(helper.make_node("If", [MIRROR_INPUT], [both], name=IF_BATCH, then_branch=with_mirror,
                                       else_branch=faces_only))
    graph.node.extend(body)
    graph.node.append(helper.make_node("If", [MIRROR_INPUT], [out.name], name=IF_OUTPUT, then_branch=averaged,
                                       else_branch=one_view))
    graph.initializer.append(numpy_helper.from_array(np.array(True), MIRROR_INPUT))
    graph.input.append(helper.make_tensor_value_info(MIRROR_INPUT, TensorProto.BOOL, []))


def averaged_graph(model):
    """The graph whose first output is the model's mirror-averaged result: the output ``If``'s averaging branch
    for a switchable fold, else the main graph (where :func:`training.calibrate.fold_temperature` divides)."""
    for node in model.graph.node:
        if node.name == IF_OUTPUT:
            return next(a.g for a in node.attribute if a.name == "then_branch")
    return model.graph


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.mirror_fold",
                                description="Make an older file's built-in mirror averaging switchable at run time "
                                            "(qualities balanced / fastest read each face once). Outputs unchanged.")
    p.add_argument("model", help="ONNX file folded with mirror averaging (metadata tta=flip)")
    p.add_argument("--out", help="where to write it (default: in place)")
    args = p.parse_args(argv)
    import onnx
    from google.protobuf.message import DecodeError

    from training.onnx_graph import save_with_metadata

    try:
        model = onnx.load(args.model)
        make_switchable(model)
    except (OSError, ValueError, DecodeError) as err:
        print(f"mirror_fold: error: {args.model}: {err}", file=sys.stderr)
        return 2
    save_with_metadata(model, {p.key: p.value for p in model.metadata_props}, args.out or args.model)
    print(f"wrote {args.out or args.model}: mirror averaging switchable (input '{MIRROR_INPUT}', default on)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
