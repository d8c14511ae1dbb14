"""The canonical emotion label space and class-name synonyms.

Every dataset maps its class names onto these canonical names. The first seven follow
FER2013's CSV label order (0 angry ... 6 neutral); ``contempt`` is the eighth class used by
FER+ and CK+-style datasets. Combined datasets use all eight in this order.
"""

from __future__ import annotations

from fer_core.suggest import did_you_mean

FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CANONICAL_CLASSES: tuple[str, ...] = FER2013_CLASSES + ("contempt",)

SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "an": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "neutral": "neutral", "neutrality": "neutral", "ne": "neutral", "calm": "neutral",
    "contempt": "contempt", "contemptuous": "contempt", "co": "contempt",
}

# One colour (BGR) per canonical class, shared by every overlay.
CLASS_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 60),
    "fear": (160, 60, 150),
    "happy": (0, 200, 255),
    "sad": (200, 120, 40),
    "surprise": (0, 140, 255),
    "neutral": (170, 170, 170),
    "contempt": (120, 80, 40),
}


def normalize_label(name: str) -> str:
    """Map a class name (any case, synonyms allowed) to its canonical name.

    Raises:
        ValueError: for an unknown name; the message lists the known names and a close match.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in SYNONYMS:
        return SYNONYMS[key]
    known = sorted(set(SYNONYMS))
    raise ValueError(f"unknown emotion class '{name}'.{did_you_mean(key, known)} Known names: {', '.join(known)}")


def canonical_order(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Sort canonical class names into the canonical order."""
    return tuple(sorted(set(names), key=CANONICAL_CLASSES.index))


def class_color(name: str) -> tuple[int, int, int]:
    """BGR colour for a class name (canonical or synonym); grey for unknown names."""
    try:
        return CLASS_COLORS_BGR[normalize_label(name)]
    except ValueError:
        return (200, 200, 200)


def _canonical_or_self(name: str) -> str:
    try:
        return normalize_label(name)
    except ValueError:
        return name.strip().lower()


def match_classes(source: list[str] | tuple[str, ...], target: list[str] | tuple[str, ...]) -> list[int | None]:
    """For each ``target`` class, the index of the same emotion among ``source`` (synonyms count: anger matches
    angry), or ``None`` when the source has no such class. Names outside :data:`SYNONYMS` match only themselves."""
    index = {_canonical_or_self(name): i for i, name in enumerate(source)}
    return [index.get(_canonical_or_self(name)) for name in target]
