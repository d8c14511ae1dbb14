"""The one description of a model, from training to the app: :class:`ModelMeta`.

Training creates it when a run starts and stores it in every checkpoint (``to_dict``); ``fer-export`` writes it
into the ONNX ``metadata_props`` (``to_props``); :class:`fer_core.session.EmotionClassifier`, ``fer-eval`` and the
model cards read it back (``from_props`` / ``from_dict``). A model without it still loads, with the defaults below
(FER2013's 7 classes, :data:`DEFAULT_MEAN` / :data:`DEFAULT_STD`, grey + equalisation, input size from the graph).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fer_core.labels import FER2013_CLASSES

PREFIX = "fer."
#: The normalisation every model of this project is trained with unless its config says otherwise (the CTAN recipe).
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


@dataclass
class ModelMeta:
    """What a model expects and what it outputs.

    Attributes:
        labels: class names in output order.
        input_size: square input side in pixels (0 = read from the graph).
        mean: normalisation mean (applied after scaling to [0, 1]).
        std: normalisation std.
        gray: input faces are converted to grey (and replicated to 3 channels).
        equalize: histogram equalisation before resizing.
        native_size: resolution faces were stored at in training (48 for FER2013); 0 = none.
        model: architecture name, e.g. ``emonext_tiny``.
        data: training data description, e.g. ``fer2013``.
        test_accuracy: test accuracy from the training report, or ``None``.
        temperature: the temperature folded into the output (``training.calibrate``; 1.0 = not calibrated).
        extra: any other string metadata found in the file.
    """

    labels: list[str] = field(default_factory=lambda: list(FER2013_CLASSES))
    input_size: int = 0
    mean: float = DEFAULT_MEAN
    std: float = DEFAULT_STD
    gray: bool = True
    equalize: bool = True
    native_size: int = 48
    model: str = "unknown"
    data: str = "unknown"
    test_accuracy: float | None = None
    temperature: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoints, JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelMeta":
        """From :meth:`to_dict` output (a checkpoint's ``meta``); missing or ``None`` fields keep their defaults."""
        names = {f.name for f in fields(cls)}
        meta = cls(**{k: v for k, v in d.items() if k in names and v is not None})
        meta._normalise()
        return meta

    def _normalise(self) -> None:
        self.labels = [str(x) for x in self.labels]
        self.input_size = int(self.input_size or 0)
        self.native_size = int(self.native_size or 0)
        self.mean, self.std, self.temperature = float(self.mean), float(self.std), float(self.temperature)
        self.extra = dict(self.extra or {})

    def to_props(self) -> dict[str, str]:
        """Serialise to string key/value pairs for ``onnx`` ``metadata_props``."""
        d = asdict(self)
        extra = d.pop("extra")
        props = {PREFIX + k: json.dumps(v) for k, v in d.items()}
        props.update(extra)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> tuple["ModelMeta", list[str]]:
        """Parse metadata props. Returns the meta and the names of fields that fell back to defaults."""
        meta = cls()
        missing = []
        for name in ("labels", "input_size", "mean", "std", "gray", "equalize", "native_size", "model", "data",
                     "test_accuracy", "temperature"):
            raw = props.get(PREFIX + name)
            if raw is None:
                missing.append(name)
                continue
            try:
                setattr(meta, name, json.loads(raw))
            except json.JSONDecodeError:
                setattr(meta, name, raw)
        meta.extra = {k: v for k, v in props.items() if not k.startswith(PREFIX)}
        meta._normalise()
        return meta, missing
