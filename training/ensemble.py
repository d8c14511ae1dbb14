"""An ensemble as one ONNX model: several exported models of the same labels and input, probabilities averaged.

    python -m training.ensemble --models models/a.onnx models/b.onnx --out models/fer_ensemble.onnx

The graph feeds the one ``input`` to every member, takes each member's softmax, averages them (weights
optional) and outputs the log of the average as ``logits``, so every consumer's softmax gives exactly the
averaged probabilities. The members' metadata must agree on labels, input size, normalisation and
preprocessing; the ensemble's metadata is the first member's with ``model`` naming all of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fer_core.model_meta import ModelMeta


class EnsembleError(ValueError):
    """Members that do not fit together, or files that are not models."""


def _meta(model) -> ModelMeta:
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props})[0]


def build_ensemble(paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None) -> Path:
    """Write the ensemble of the ONNX files ``paths`` to ``out``.

    Raises:
        EnsembleError: fewer than two members, unreadable files, members that disagree on labels or input.
    """
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    from training.onnx_graph import save_with_metadata

    if len(paths) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    weights = np.asarray(weights if weights is not None else [1.0] * len(paths), np.float32)
    if len(weights) != len(paths) or (weights <= 0).any():
        raise EnsembleError("give one positive weight per model")
    weights = weights / weights.sum()
    members, metas = [], []
    for i, path in enumerate(paths):
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - onnx raises several types for bad files
            raise EnsembleError(f"cannot read {path}: {exc}") from None
        metas.append(_meta(model))
        members.append(compose.add_prefix(model, f"m{i}_"))
    first = metas[0]
    for path, meta in zip(paths[1:], metas[1:]):
        for key in ("labels", "input_size", "mean", "std", "gray", "equalize", "native_size"):
            if getattr(meta, key) != getattr(first, key):
                raise EnsembleError(f"{path}: {key} {getattr(meta, key)!r} differs from the first model's "
                                    f"{getattr(first, key)!r}")
    nodes, inits, probs = [], [], []
    for i, m in enumerate(members):
        g = m.graph
        shared = g.input[0].name  # every member reads the one ensemble input
        for n in g.node:
            n.input[:] = ["input" if x == shared else x for x in n.input]
        nodes.extend(g.node)
        inits.extend(g.initializer)
        nodes.append(helper.make_node("Softmax", [g.output[0].name], [f"p{i}"], axis=1))
        inits.append(numpy_helper.from_array(np.array(weights[i], np.float32), f"w{i}"))
        nodes.append(helper.make_node("Mul", [f"p{i}", f"w{i}"], [f"wp{i}"]))
        probs.append(f"wp{i}")
    nodes.append(helper.make_node("Sum", probs, ["avg"]))
    inits.append(numpy_helper.from_array(np.array(1e-12, np.float32), "eps"))
    nodes.append(helper.make_node("Add", ["avg", "eps"], ["avg_eps"]))
    nodes.append(helper.make_node("Log", ["avg_eps"], ["logits"]))
    size = first.input_size or "S"
    graph = helper.make_graph(
        nodes, "fer_ensemble",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(first.labels)])],
        initializer=inits)
    opsets = {}
    for m in members:
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = max(m.ir_version for m in members)
    meta = first
    meta.model = "ensemble(" + "+".join(m.model for m in metas) + ")"
    meta.test_accuracy = None
    meta.extra = {"ensemble_members": ",".join(Path(p).name for p in paths),
                  "ensemble_weights": ",".join(f"{w:.4f}" for w in weights)}
    model.producer_name = "fer-ensemble"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_with_metadata(model, meta.to_props(), out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="member ONNX files (same labels and input)")
    p.add_argument("--weights", nargs="+", type=float, help="one weight per member (default equal)")
    p.add_argument("--out", required=True, help="the ensemble ONNX file to write")
    args = p.parse_args(argv)
    try:
        out = build_ensemble(args.models, args.out, args.weights)
    except EnsembleError as err:
        print(f"ensemble: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(args.models)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
