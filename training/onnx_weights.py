"""Rebuild a model's PyTorch weights from an ONNX file that ``fer-export`` wrote, and save them as safetensors.

    python -m training.onnx_weights models/fer_realtime.onnx --out models/fer_realtime.safetensors \\
        --data fer2013=../shared/data/fer2013

The exporter keeps most initializers under their state-dict names. The others are found by the node that reads them
(``/stages/stages.0/blocks/blocks.0/Mul`` -> ``stages.0.blocks.0.gamma``, reshaped; a ``MatMul``'s weight transposed
back), and the Spatial Transformer's BatchNorms, folded into the convolutions before them at export, come back as
the folded convolution followed by a BatchNorm that gives back its input in eval mode. With ``--data`` that
BatchNorm's running statistics are those of the convolution's output on training faces, and its weight and bias undo
them, so it is still the identity in eval mode and close to it in training mode, where fine-tuning normalises with
batch statistics (shipped default, 64 test faces: the STN's affine matrices differ by at most 0.002 between eval and
training mode, 0.41 with a plain identity BatchNorm). EmoNeXt's attention regulariser (a training loss only) has no
weights in the graph and keeps a fresh initialisation. What the graph adds after the classifier (temperature, mirror
averaging) is not part of the weights; the meta records it in ``extra`` and sets ``temperature`` to 1.

The rebuilt model is checked against the classifier's own output in the graph (the logits of each view, before
mirror averaging and temperature) on the given faces.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_core.model_meta import ModelMeta

log = logging.getLogger(__name__)

GRAPH_ONLY = ("temperature", "flip_", "two_views", "view_axis", "mirror")
"""Initializers the graph adds after the classifier (``training.calibrate``, ``training.mirror_fold.fold_flip``)."""


class OnnxWeightsError(RuntimeError):
    """An ONNX file whose initializers do not rebuild the model it names."""


def module_path(node_name: str) -> str:
    """``/stages/stages.0/blocks/blocks.0/Mul`` -> ``stages.0.blocks.0`` (the TorchScript exporter's scopes)."""
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def weight_key(op_type: str, path: str, slot: int) -> str | None:
    """The state-dict key an initializer at input ``slot`` of a node of ``op_type`` in module ``path`` stands for.

    Found by the node rather than the name, because the exporter gives one name to equal initializers (the zero
    biases of an untrained model) and its own names to the tensors it changed (folded, transposed, reshaped)."""
    if op_type in ("Conv", "Gemm", "LayerNormalization") and slot in (1, 2):
        return f"{path}.{'weight' if slot == 1 else 'bias'}"
    if op_type == "MatMul" and slot == 1:
        return f"{path}.weight"
    if op_type == "Add":
        return f"{path}.bias"
    if op_type == "Mul":
        return f"{path}.gamma"
    return None


def _next_module(path: str) -> str:
    """``stn.localization.0`` -> ``stn.localization.1`` (the BatchNorm after a convolution in a Sequential)."""
    parent, _, index = path.rpartition(".")
    return f"{parent}.{int(index) + 1}" if index.isdigit() else ""


def _identity_batchnorm(bn: nn.BatchNorm2d) -> dict[str, torch.Tensor]:
    c = bn.num_features
    return {"weight": torch.ones(c), "bias": torch.zeros(c), "running_mean": torch.zeros(c),
            "running_var": torch.full((c,), 1.0 - bn.eps), "num_batches_tracked": torch.tensor(0)}


def rebuild_state(onnx_path: str | Path) -> tuple[nn.Module, ModelMeta, list[str]]:
    """The model an ONNX file holds, in eval mode, with its meta (temperature 1; the graph's own in ``extra``).

    Returns:
        (model, meta, folded) where ``folded`` names the convolutions whose BatchNorm was folded in.

    Raises:
        OnnxWeightsError: a weight of the model (other than the loss-only attention regulariser) with no
            initializer in the graph.
    """
    import onnx
    from onnx import numpy_helper

    from training.models import create_model

    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    meta, _ = ModelMeta.from_props(props)
    model = create_model(meta.model, num_classes=len(meta.labels)).eval()
    own = model.state_dict()
    modules = dict(model.named_modules())
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}
    for node in proto.graph.node:  # equal initializers are stored once and handed on by Identity nodes
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    state: dict[str, torch.Tensor] = {}
    folded: list[str] = []
    for node in proto.graph.node:
        for slot, name in enumerate(node.input):
            if name not in inits or name.startswith(GRAPH_ONLY):
                continue
            key = weight_key(node.op_type, module_path(node.name), slot)
            if key is None or key not in own:
                continue
            value, shape = inits[name], own[key].shape
            if value.numel() != own[key].numel():
                continue
            if value.shape != shape:  # a MatMul's transposed weight, a layer scale as (1, C, 1, 1)
                value = value.T if value.dim() == 2 and value.T.shape == shape else value.reshape(shape)
            state[key] = value
            bn_path = _next_module(key.rpartition(".")[0])
            if node.op_type == "Conv" and slot == 1 and isinstance(modules.get(bn_path), nn.BatchNorm2d):
                for suffix, t in _identity_batchnorm(modules[bn_path]).items():
                    state[f"{bn_path}.{suffix}"] = t
                folded.append(key.rpartition(".")[0])
    state.update({k: v for k, v in inits.items() if k in own})  # named as in the state dict: trust the name
    fresh = [k for k in own if k not in state]
    not_loss_only = [k for k in fresh if not k.startswith("attn_reg.")]
    if not_loss_only:
        raise OnnxWeightsError(f"{onnx_path}: no initializer for {len(not_loss_only)} weights of {meta.model}, "
                               f"e.g. {', '.join(not_loss_only[:3])}")
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise OnnxWeightsError(f"{onnx_path}: {len(wrong)} initializers have the wrong shape, e.g. {wrong[0]}")
    model.load_state_dict({**own, **state})
    meta.extra = {"source_onnx": Path(onnx_path).name,
                  "source_sha256": hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest(),
                  "source_temperature": str(meta.temperature), "source_tta": props.get("tta", "none"),
                  "reinitialised": "attn_reg (loss only)" if fresh else "none"}
    meta.temperature = 1.0
    return model.eval(), meta, folded


@torch.no_grad()
def recalibrate_batchnorms(model: nn.Module, folded: list[str], faces: np.ndarray, batch: int = 128) -> None:
    """Give the BatchNorm after each folded convolution the running statistics of that convolution's output on
    ``faces``, and the weight and bias that undo them (eval mode: still the identity)."""
    modules = dict(model.named_modules())
    sums = {p: torch.zeros(3, modules[p].out_channels, dtype=torch.float64) for p in folded}  # count, sum, sum sq

    def hook(path: str, output: torch.Tensor) -> None:
        y = output.transpose(0, 1).flatten(1).double()
        sums[path] += torch.stack([torch.full((y.shape[0],), float(y.shape[1]), dtype=torch.float64),
                                   y.sum(dim=1), (y * y).sum(dim=1)])

    hooks = [modules[p].register_forward_hook(lambda m, i, o, p=p: hook(p, o)) for p in folded]
    try:
        model.eval()
        for start in range(0, len(faces), batch):
            model(torch.from_numpy(faces[start:start + batch]))
    finally:
        for h in hooks:
            h.remove()
    for path in folded:
        parent, _, index = path.rpartition(".")
        bn = modules[f"{parent}.{int(index) + 1}"]
        n, total, squares = sums[path]
        mean = total / n
        var = (squares / n - mean * mean) * n / (n - 1)  # unbiased, as BatchNorm keeps its running variance
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.copy_(mean.float())


def graph_logits(onnx_path: str | Path, faces: np.ndarray) -> np.ndarray:
    """The classifier's logits inside the graph (its last ``Gemm``), for the first view of each face: what the
    network itself computes, before mirror averaging and temperature."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    gemm = [n for n in proto.graph.node if n.op_type == "Gemm"][-1]
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(gemm.output[0]))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run([gemm.output[0]], {session.get_inputs()[0].name: faces.astype(np.float32)})[0]
    return out[:len(faces)]


def max_logit_diff(model: nn.Module, onnx_path: str | Path, faces: np.ndarray) -> float:
    """Largest |logit(model) - logit(graph)| over ``faces``."""
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(faces)).numpy()
    return float(np.abs(ours - graph_logits(onnx_path, faces)).max())


def read_faces(specs: list[str], meta: ModelMeta, train: int, test: int) -> tuple[np.ndarray, np.ndarray]:
    """``train`` training and ``test`` test faces of ``specs``, preprocessed as ``fer-export`` reads them."""
    from training.export import faces_as_inputs, read_faces

    data = read_faces(specs, meta, max(train, test), progress=False)
    return faces_as_inputs(data, meta, train, ("train",)), faces_as_inputs(data, meta, test, ("test",))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.onnx_weights", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="an ONNX file written by fer-export (e.g. models/fer_realtime.onnx)")
    p.add_argument("--out", help="weights to write (default: beside the ONNX file, .safetensors)")
    p.add_argument("--data", action="append", metavar="KIND=PATH",
                   help="training faces for the STN BatchNorm statistics and the check (repeatable)")
    p.add_argument("--faces", type=int, default=2000, help="faces for the statistics (default 2000)")
    p.add_argument("--check-faces", type=int, default=256, help="test faces for the check (default 256)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from training.weights import save_weights

    try:
        model, meta, folded = rebuild_state(args.onnx)
    except (OnnxWeightsError, OSError, ValueError) as exc:
        print(f"onnx_weights: error: {exc}", file=sys.stderr)
        return 2
    size = meta.input_size
    if args.data:
        from training.export import ExportError

        try:
            train, check = read_faces(args.data, meta, args.faces, args.check_faces)
        except ExportError as exc:
            print(f"onnx_weights: error: {exc}", file=sys.stderr)
            return 2
        recalibrate_batchnorms(model, folded, train)
        where = f"{len(check)} test faces of {'+'.join(args.data)}"
    else:
        check = np.random.default_rng(0).uniform(-1, 1, (args.check_faces, 3, size, size)).astype(np.float32)
        where = f"{len(check)} random inputs"
    out = Path(args.out) if args.out else Path(args.onnx).with_suffix(".safetensors")
    save_weights(out, model.state_dict(), meta)
    from training.checkpoint import build_model_from_checkpoint
    from training.weights import load_weights

    fp32 = max_logit_diff(model, args.onnx, check)
    fp16 = max_logit_diff(build_model_from_checkpoint(load_weights(out)), args.onnx, check)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {meta.model}, {len(meta.labels)} classes); max |logit "
          f"difference| to the graph's classifier on {where}: {fp32:.2e} rebuilt (fp32), {fp16:.2e} as saved (fp16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
