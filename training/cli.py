"""The ``fer-train``, ``fer-eval`` and ``fer-export`` commands.

Errors in what the user gave (data, model name, checkpoint, settings) print one line on stderr and exit with
code 2; a diverging loss exits with 1; Ctrl-C saves ``last.pt`` and exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fer_core.cli import PROVIDER_CHOICES, provider_arg
from fer_core.suggest import did_you_mean
from training.checkpoint import WEIGHT_CHOICES, CheckpointError, load_checkpoint
from training.config import CHOICES, ConfigError, build_config, load_yaml
from training.weights import FINETUNE_DEFAULTS, shipped_weights

TRAIN_EXAMPLES = """\
examples:
  # a small real-time model on FER2013 (CPU is fine)
  fer-train --model emonext_atto --data fer2013=../shared/data/fer2013 --img-size 64 --epochs 30 --name rt_atto64

  # EmoNeXt-Tiny at 224 px on a GPU (AMP, channels_last, EMA are on by default there)
  fer-train --model emonext_tiny --data fer2013=../shared/data/fer2013 --img-size 224 --epochs 100 --name emonext_t

  # CTAN (class-weighted loss by default) on FER+ with soft labels, or on merged datasets
  fer-train --model ctan_tiny --data ferplus_soft=../shared/data/ferplus --img-size 112 --name ctan_ferplus
  fer-train --model ctan_tiny --data fer2013=../shared/data/fer2013 --data folder=data/CK+48 --name ctan_mix

  # a CK+-style folder (S005_001_00000011.png): no subject in two splits; 5-fold cross-validation by subject
  fer-train --model emonext_atto --data folder=data/CK+48 --img-size 64 --group-by '^(S\\d+)_' --name ck
  fer-train --model emonext_atto --data folder=data/CK+48 --img-size 64 --group-by '^(S\\d+)_' --folds 5 --name ck_cv

  # quick smoke run, settings from a YAML file (command-line flags win), then continue it
  fer-train --config run.yaml --subset 256 --epochs 1 --name smoke
  fer-train --resume runs/smoke/last.pt --epochs 3

  # fine-tune the shipped default on your own class folders (lr 3e-4, 10 epochs unless set)
  fer-train --init fer_realtime --data folder=data/my_faces --name my_faces

  # distil a big teacher into a small student; several GPUs with torchrun
  fer-train --model emonext_atto --teacher runs/emonext_t/best.pt --data fer2013=../shared/data/fer2013 --img-size 64
  fer-train --model emonext_atto --soft-targets models/teachers/fer2013_tiny112.npz --data fer2013=../shared/data/fer2013

  # train for exactly 10 minutes (the schedule follows the clock), e.g. in a GPU window
  fer-train --model emonext_atto --img-size 112 --time-budget 600 --data packed=runs/pack/fer2013 --device cuda
  torchrun --nproc_per_node 4 -m training.cli --model emonext_base --data fer2013=../shared/data/fer2013

  # the model names with parameters and GFLOPs at 112 px
  fer-train --list-models --img-size 112
"""

EVAL_EXAMPLES = """\
examples:
  fer-eval --checkpoint runs/emonext_t/best.pt --data fer2013=../shared/data/fer2013 --split test
  fer-eval --checkpoint runs/emonext_t/best.pt --data fer2013=../shared/data/fer2013 --tta tencrop --out eval/t
  fer-eval --model models/fer_realtime.onnx --data fer2013=../shared/data/fer2013 --split test --tta none,flip
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _bool(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)


def train_parser() -> argparse.ArgumentParser:
    """The ``fer-train`` argument parser (flags left out keep their YAML/default values)."""
    p = argparse.ArgumentParser(
        prog="fer-train", formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=argparse.SUPPRESS,
        description="Train an EmoNeXt or CTAN facial-expression model and write runs/<name>/ "
                    "(config.yaml, metrics.jsonl, best.pt, last.pt, curves.png, report.json, confusion_matrix.png).",
        epilog=TRAIN_EXAMPLES)
    g = p.add_argument_group("model and data")
    g.add_argument("--model", help="architecture (see --list-models); default emonext_tiny")
    g.add_argument("--data", action="append", metavar="KIND=PATH",
                   help="dataset (repeat to merge): fer2013=, ferplus=, ferplus_soft=, ferplus_majority=, folder=, "
                        "packed= (a GPU window's pack; packed_ferplus=, packed_ferplus_soft=, packed_ferplus_majority= "
                        "for the FER+ views of a pack built with --ferplus)")
    g.add_argument("--model-arg", action="append", metavar="KEY=VALUE", dest="model_kwargs",
                   help="extra model option, e.g. reg_lambda=0.5 or use_rfb=true (repeatable)")
    g.add_argument("--img-size", type=int, help="model input size in pixels; default 224")
    g.add_argument("--subset", type=int, help="keep N images of each split (stratified) for quick runs")
    g.add_argument("--group-by", metavar="REGEX",
                   help="split by subject: a regex searched in each file name, its first group the subject, e.g. "
                        "'^(S\\d+)_' for CK+; all images of a subject land in one split (default: CK+/JAFFE/KDEF "
                        "names by subject, else stratified 8:1:1)")
    g.add_argument("--folds", type=int, metavar="K",
                   help="k-fold cross-validation: K runs in runs/<name>/fold1..K, each testing on one fold; mean and "
                        "spread of test accuracy and macro-F1 in runs/<name>/folds.json")
    g.add_argument("--fold", type=int, metavar="k", help="train only fold k (1..K) of --folds K")
    _bool(g, "--pretrained", "start from timm's ImageNet ConvNeXt weights (needs internet)")
    g.add_argument("--pretrained-path", help="start from a local ConvNeXt weights file")
    g.add_argument("--init", metavar="NAME_OR_PATH",
                   help="fine-tune: start from a shipped model (" + ", ".join(shipped_weights()) + ") or a "
                        ".safetensors / fer-train .pt / window weights_fp16.pt file; classes are matched by name "
                        "(synonyms count), new ones start fresh. Unless set, it also sets --model, --img-size, "
                        "--mean/--std from the weights and " + ", ".join(
                            f"--{k.replace('_', '-')} {v}" for k, v in FINETUNE_DEFAULTS.items()))
    g.add_argument("--cache-size", type=int, help="side of the cached faces; default 48 (FER2013 native)")
    g.add_argument("--cache-dir", help="decoded-data cache folder")
    _bool(g, "--skip-bad", "skip unreadable images instead of stopping")
    _bool(g, "--equalize", "histogram equalisation of the faces (default on)")
    g.add_argument("--mean", type=float, help="input normalisation (x - mean) / std after scaling to [0, 1]; "
                                              "default 0.5 (stored in the model, so inference follows)")
    g.add_argument("--std", type=float, help="default 0.5")
    g.add_argument("--list-models", action="store_true", help="print model names, parameters and GFLOPs and exit")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="default 30")
    g.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="train for this long instead of --epochs: warmup (first 5%%) and cosine decay follow the "
                        "share of the budget used; the run ends when it is spent, mid-epoch if need be")
    g.add_argument("--batch-size", type=int, help="per device; default 128")
    g.add_argument("--eval-batch-size", type=int, help="default 2x batch size")
    g.add_argument("--opt", choices=("adamw", "adam"), help="default adamw")
    g.add_argument("--lr", type=float, help="peak learning rate; default 1e-3")
    g.add_argument("--min-lr", type=float, help="cosine floor; default 1e-6")
    g.add_argument("--warmup-epochs", type=float, help="linear warmup (at most half the run); default 2")
    g.add_argument("--lr-scale", choices=CHOICES["lr_scale"],
                   help="scale --lr by sqrt(global batch / 256) or by (global batch / 256); default none")
    g.add_argument("--weight-decay", type=float, help="default 0.05")
    g.add_argument("--clip-grad", type=float, help="max gradient norm, 0 = off; default 1.0")
    g.add_argument("--drop-path", type=float, help="stochastic depth rate; default: the model's")
    g.add_argument("--label-smoothing", type=float, help="default: the model's (EmoNeXt 0.2), else 0.1")
    _bool(g, "--class-weighted", "class-weighted loss N/n_c (default: the model's, on for ctan)")
    _bool(g, "--ema", "keep an EMA of the weights and validate it too (default on)")
    g.add_argument("--ema-decay", type=float, help="default 0.999 (with warmup)")
    g = p.add_argument_group("augmentation")
    g.add_argument("--scale-min", type=float, help="smallest random-resized-crop area; default 0.75")
    g.add_argument("--rotate", type=float, help="max rotation in degrees; default 20")
    g.add_argument("--hflip", type=float, help="flip probability; default 0.5")
    g.add_argument("--erase", type=float, help="random-erasing probability; default 0.25")
    g.add_argument("--mixup", type=float, help="mixup alpha, 0 = off (default)")
    g.add_argument("--cutmix", type=float, help="cutmix alpha, 0 = off (default)")
    g.add_argument("--mix-prob", type=float, help="chance to mix a batch; default 1")
    g = p.add_argument_group("distillation")
    g.add_argument("--teacher", metavar="CHECKPOINT", help="teacher checkpoint (same classes) for distillation")
    g.add_argument("--distill-alpha", type=float, help="weight of the distillation loss; default 0.5")
    g.add_argument("--distill-temp", type=float, help="softmax temperature; default 4")
    g.add_argument("--soft-targets", metavar="NPZ",
                   help="offline distillation from stored teacher logits (python -m training.teacher_logits): "
                        "targets = (1 - alpha) * label + alpha * softmax(logits / temp)")
    g = p.add_argument_group("machine and run")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    g.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), help="default auto (bf16/fp16 on CUDA)")
    _bool(g, "--channels-last", "channels_last memory format (default on; faster on CPU and GPU)")
    _bool(g, "--compile", "torch.compile the training step (default: on CUDA only; --no-compile: eager)")
    g.add_argument("--workers", type=int, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--project", help="parent folder of runs; default runs")
    g.add_argument("--name", help="run folder name; default <model>_<img-size>")
    _bool(g, "--exist-ok", "reuse (overwrite) an existing run folder")
    g.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue a run exactly (default: runs/<name>/last.pt)")
    g.add_argument("--config", metavar="YAML", help="settings file; command-line flags override it")
    _bool(g, "--progress", "progress bars, on a terminal only (default on)")
    g.add_argument("--log-every", type=float, metavar="SECONDS",
                   help="without progress bars (--no-progress, or stderr not a terminal), a status line this often; "
                        "default 60")
    g.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="write last.pt/best.pt at most this often (and always at the end); default 120")
    g.add_argument("--val-every-s", type=float, metavar="SECONDS",
                   help="validate only after epochs ending at least this long after the last validation (tiny "
                        "epochs on a GPU); default: every epoch")
    return p


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _setup_logging() -> None:
    """INFO messages on stderr (only warnings from the other ranks of a torchrun job)."""
    logging.basicConfig(level=logging.INFO if _is_main_rank() else logging.WARNING, format="%(message)s",
                        stream=sys.stderr)


@contextmanager
def _logging_with_tqdm():
    from tqdm.contrib.logging import logging_redirect_tqdm

    _setup_logging()
    with logging_redirect_tqdm():
        yield


def _error(prog: str, msg: Any, code: int = 2) -> int:
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` with a "did you mean" for an unknown model name."""
    from training.models import list_models

    names = list_models()
    if name not in names:
        raise ConfigError(f"unknown model '{name}'.{did_you_mean(name, names)} Valid names: {', '.join(names)}")


def print_models(img_size: int) -> None:
    """Table of model names, parameters and GFLOPs at ``img_size``."""
    from training.models import list_models, model_info

    print(f"{'model':<16} {'params (M)':>11} {'GFLOPs @' + str(img_size):>12}")
    for name in list_models():
        info = model_info(name, img_size)
        print(f"{name:<16} {info['params'] / 1e6:>11.2f} {info['gflops']:>12.3f}")


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """["reg_lambda=0.5", "use_rfb=true"] -> {"reg_lambda": 0.5, "use_rfb": True} (values read as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-arg expects KEY=VALUE, got '{item}'")
        out[key.strip()] = yaml.safe_load(value)
    return out


def resolve_train_config(args: dict[str, Any]):
    """Merge defaults < resumed checkpoint's config < YAML < command line into a TrainConfig."""
    if "model_kwargs" in args:
        args["model_kwargs"] = parse_model_args(args["model_kwargs"])
    yaml_layer = load_yaml(args.pop("config")) if "config" in args else {}
    layers: list[dict[str, Any]] = [yaml_layer, args]
    resume = args.get("resume", yaml_layer.get("resume"))
    if resume:
        from training.train import resume_path

        path = resume_path(build_config(yaml_layer, args))
        saved = dict(load_checkpoint(path).get("config") or {})
        for key in ("resume", "exist_ok"):
            saved.pop(key, None)
        location = {"project": str(path.parent.parent), "name": path.parent.name}
        layers = [saved, location, yaml_layer, args, {"resume": str(path)}]
    return build_config(*layers)


def train_main(argv: list[str] | None = None) -> int:
    """``fer-train``: returns the exit code (0 ok, 1 diverged, 2 bad input, 130 interrupted)."""
    args = vars(train_parser().parse_args(argv))
    from training.data import DataError
    from training.engine import NonFiniteLossError
    from training.kfold import format_table, run_folds
    from training.train import RunInterrupted, run_training

    try:
        if args.pop("list_models", False):
            print_models(int(args.get("img_size", 224)))
            return 0
        cfg = resolve_train_config(args)
        if not cfg.data:
            raise ConfigError("no training data: pass --data KIND=PATH (e.g. --data fer2013=../shared/data/fer2013)")
        check_model_name(cfg.model)
        with _logging_with_tqdm():
            if cfg.folds and cfg.fold is None:
                folds = run_folds(cfg)
            else:
                summary = run_training(cfg)
        if cfg.folds and cfg.fold is None:
            if _is_main_rank():
                print(format_table(folds))
                print(f"done: {Path(folds['run_dir']) / 'folds.json'}")
            return 0
    except (ConfigError, DataError, CheckpointError) as exc:
        return _error("fer-train", exc)
    except NonFiniteLossError as exc:
        return _error("fer-train", f"{exc}; stopped. The checkpoints of the last good epoch are kept. Try a lower "
                                   "--lr, --clip-grad 1 or --amp off.", 1)
    except RunInterrupted as exc:
        print(f"fer-train: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fer-train: aborted", file=sys.stderr)
        return 130
    run_dir = Path(summary["run_dir"])
    if not _is_main_rank():
        return 0
    print(f"done: {run_dir} (best val acc {summary['best_acc']:.4f} with {summary['best_weights']} weights"
          + (", test acc " + ", ".join(f"{m} {a:.4f}" for m, a in summary.get("test", {}).items()) if
             summary.get("test") else "") + ")")
    return 0


def eval_parser() -> argparse.ArgumentParser:
    """The ``fer-eval`` argument parser."""
    p = argparse.ArgumentParser(
        prog="fer-eval", formatter_class=_Formatter, epilog=EVAL_EXAMPLES,
        description="Evaluate a training checkpoint or an exported ONNX model on a data split; writes report.json "
                    "and confusion_matrix.png.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a fer-train checkpoint (best.pt / last.pt)")
    src.add_argument("--model", help="an exported .onnx model (evaluated with the inference preprocessing)")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH", help="dataset spec (repeatable)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--tta", default=None,
                   help="none, flip, tencrop, a comma list, or all (default: all for checkpoints, none,flip for ONNX)")
    p.add_argument("--out", help="output folder (default: <checkpoint folder>/eval_<split>, "
                                 "runs/eval/<onnx name>_<split>)")
    p.add_argument("--weights", default="best", choices=WEIGHT_CHOICES,
                   help="checkpoint weights: best (those that won validation), ema or raw")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (checkpoints)")
    p.add_argument("--provider", default="auto", type=provider_arg,
                   help=f"ONNX Runtime provider for ONNX models: {', '.join(PROVIDER_CHOICES)} (default: auto)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--subset", type=int, default=None, help="evaluate N images per split (stratified)")
    p.add_argument("--cache-dir", default=None, help="decoded-data cache folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    """``fer-eval``: returns the exit code (0 ok, 2 bad input)."""
    a = eval_parser().parse_args(argv)
    from fer_core.session import ModelLoadError
    from training.data import DataError
    from training.evaluate import EvalError, evaluate_checkpoint, evaluate_onnx

    try:
        with _logging_with_tqdm():
            if a.checkpoint:
                report, out = evaluate_checkpoint(a.checkpoint, a.data, a.split, a.tta or "all", a.out, a.device,
                                                  a.weights, a.batch_size, a.subset, a.cache_dir, not a.no_progress)
            else:
                if not Path(a.model).is_file():
                    raise EvalError(f"model file not found: {a.model}")
                report, out = evaluate_onnx(a.model, a.data, a.split, a.tta or "none,flip", a.out, a.provider,
                                            a.batch_size, a.subset, a.cache_dir, not a.no_progress)
    except (ConfigError, DataError, CheckpointError, EvalError, ModelLoadError) as exc:
        return _error("fer-eval", exc)
    except KeyboardInterrupt:
        print("fer-eval: aborted", file=sys.stderr)
        return 130
    print(f"{report.get('model')} on {report.get('data')} {report.get('split')} ({report['n']} images):")
    for mode, res in report["tta"].items():
        print(f"  TTA {mode:<8} accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}")
    print(f"report: {out / 'report.json'}")
    return 0


# --------------------------------------------------------------------------- fer-export


EXPORT_EXAMPLES = """examples:
  fer-export --checkpoint runs/emonext_t/best.pt --out models/emonext_t.onnx --verify-data fer2013=../shared/data/fer2013
  fer-export --checkpoint runs/emonext_t/best.pt --out models/emonext_t.onnx --verify-data fer2013=../shared/data/fer2013 --calibrate
  fer-export --checkpoint runs/emonext_t/best.pt --out models/emonext_t_fp16.onnx --fp16 --verify-data fer2013=../shared/data/fer2013
  fer-export --checkpoint runs/emonext_t/best.pt --out models/emonext_t_int8.onnx --int8 --calib-data fer2013=../shared/data/fer2013
  fer-export --checkpoint runs/ctan/last.pt --out models/ctan_raw.onnx --weights raw --opset 20

checks: fp32 max |logit difference| <= 1e-3; fp16/int8 top-1 agreement with PyTorch >= 99%.
exit codes: 0 written and verified, 1 verification failed (nothing written), 2 bad arguments or input files.
"""


def export_parser() -> argparse.ArgumentParser:
    """The ``fer-export`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="fer-export", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXPORT_EXAMPLES,
        description="Export a training checkpoint to a self-describing ONNX model and verify it against PyTorch.")
    parser.add_argument("--checkpoint", required=True, help="training checkpoint, e.g. runs/emonext_t/best.pt")
    parser.add_argument("--out", required=True, help="ONNX file to write, e.g. models/emonext_t.onnx")
    parser.add_argument("--weights", choices=("ema", "raw", "best"), default="best",
                        help="best (default): whichever of the raw and EMA weights reached the best validation "
                             "accuracy; ema (raw when the checkpoint has none); raw")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="float16 weights and compute (float32 input/output)")
    precision.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ, per-channel)")
    precision.add_argument("--fp16-storage", action="store_true",
                           help="float32 model with its weights stored as float16 (half the file; ONNX Runtime "
                                "casts them back at load, so speed and arithmetic stay float32)")
    parser.add_argument("--calib-data", action="append", metavar="SPEC",
                        help="faces for int8 calibration, e.g. fer2013=PATH (repeatable)")
    parser.add_argument("--calib-images", type=int, default=500, help="calibration faces (default 500)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit a temperature on the validation split of --verify-data and fold it into the model "
                             "(python -m training.calibrate; the ECE before/after goes to <out>.calibration.json)")
    parser.add_argument("--verify-data", action="append", metavar="SPEC",
                        help="faces for the parity check (default: --calib-data; else random inputs)")
    parser.add_argument("--verify-images", type=int, default=500, help="faces for the parity check (default 500)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """``fer-export``: 0 written and verified, 1 verification failed, 2 bad input."""
    from training.export import (EXIT_USAGE, EXIT_VERIFY_FAILED, ExportError, VerificationError, export_onnx,
                                 figures_line, logger)

    args = export_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="fer-export: %(message)s")
    logger.setLevel(logging.INFO)  # this module's stage messages; other libraries stay at warnings
    if args.calibrate and not (args.verify_data or args.calib_data):
        print("fer-export: error: --calibrate needs the model's data: add --verify-data fer2013=PATH", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = export_onnx(args.checkpoint, args.out, weights=args.weights, fp16=args.fp16, int8=args.int8,
                             fp16_storage=args.fp16_storage,
                             calib_specs=args.calib_data, opset=args.opset, verify_specs=args.verify_data,
                             verify_images=args.verify_images, calib_images=args.calib_images,
                             progress=not args.no_progress)
    except VerificationError as exc:
        for name, figures in (exc.figures.get("verify") or {}).items():
            print(f"  {name:5s} {figures_line(figures)}  [{figures['criterion']}: "
                  f"{'ok' if figures['passed'] else 'FAILED'}]", file=sys.stderr)
        print(f"fer-export: error: {exc}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    except ExportError as exc:
        print(f"fer-export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fer-export: interrupted, nothing written", file=sys.stderr)
        return 130
    print(f"exported {result['checkpoint']} ({result['model']}, {result['weights']} weights) -> {result['out']} "
          f"[{result['precision']}, opset {result['opset']}, {result['size_bytes'] / 1e6:.1f} MB]")
    print(f"verified with ONNX Runtime (CPU) against PyTorch on {result['verify_data']}:")
    for name, figures in result["verify"].items():
        print(f"  {name:5s} {figures_line(figures)}  [{figures['criterion']}: ok]")
    print(f"figures written to {result['out']}.export.json")
    if args.calibrate:
        from training.calibrate import calibrate

        cal = calibrate(result["out"], list(args.verify_data or args.calib_data), progress=not args.no_progress)
        print(f"calibrated: temperature {cal['temperature']:.3f}; test ECE {cal['test']['before']['ece']:.4f} -> "
              f"{cal['test']['after']['ece']:.4f}")
    return 0


if __name__ == "__main__":  # torchrun -m training.cli ...
    sys.exit(train_main())
