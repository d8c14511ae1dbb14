"""The emotion models shipped in the repository's ``models/`` folder and the default choice among them."""

from __future__ import annotations

import os
from pathlib import Path

from fer_core.session import ModelLoadError

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_NAME = "fer_realtime.onnx"
ENV_VAR = "FER_MODEL"


def list_shipped_models() -> list[Path]:
    """The ``.onnx`` files in :data:`MODELS_DIR`, sorted by name."""
    return sorted(MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []


def default_model_path() -> Path:
    """The model used when none is given: ``$FER_MODEL`` if set, else ``models/fer_realtime.onnx``.

    Raises:
        ModelLoadError: the file does not exist; the message says how to get one.
    """
    env = os.environ.get(ENV_VAR)
    path = Path(env).expanduser() if env else MODELS_DIR / DEFAULT_MODEL_NAME
    if path.is_file():
        return path
    source = f"${ENV_VAR}" if env else "the default model"
    others = ", ".join(p.name for p in list_shipped_models())
    raise ModelLoadError(
        f"{path}: {source} not found. Train and export one (fer-train ..., then "
        f"fer-export --checkpoint runs/<name>/best.pt --out {MODELS_DIR / DEFAULT_MODEL_NAME}) "
        f"or pass --model PATH.onnx" + (f" (shipped models: {others})" if others else "")
    )
