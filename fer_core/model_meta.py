"""Self-description of an exported model, stored in the ONNX ``metadata_props``.

``fer-export`` writes these keys; :class:`fer_core.session.EmotionClassifier` reads them.
A model without them still loads, with the defaults below (FER2013's 7 classes, 0.5/0.5,
grey + equalisation, input size taken from the graph).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from fer_core.labels import FER2013_CLASSES

PREFIX = "fer."


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
    mean: float = 0.5
    std: float = 0.5
    gray: bool = True
    equalize: bool = True
    native_size: int = 48
    model: str = "unknown"
    data: str = "unknown"
    test_accuracy: float | None = None
    temperature: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

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
        meta.labels = [str(x) for x in meta.labels]
        meta.input_size = int(meta.input_size or 0)
        meta.native_size = int(meta.native_size or 0)
        meta.mean, meta.std = float(meta.mean), float(meta.std)
        meta.temperature = float(meta.temperature)
        meta.extra = {k: v for k, v in props.items() if not k.startswith(PREFIX)}
        return meta, missing
