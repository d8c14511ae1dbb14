"""What the pipeline is asked to do: one frozen :class:`PipelineSettings`, each default written once.

``fer-run``, ``fer-bench``, the Python API and the app's controls all build one of these; the pipeline takes it
whole (``Pipeline(model, settings)``, ``pipeline.settings = settings.replace(smoothing=0)``). What the *model*
needs (grey, equalisation, input size, normalisation) is not here: the model file says it (``fer.*`` metadata).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fer_core.crop import CROP_MARGIN, CROP_SHIFT
from fer_core.errors import FerError

#: The speed / accuracy choices, slowest and most accurate first (see :attr:`PipelineSettings.quality`).
QUALITIES = ("best", "balanced", "fastest")


class SettingsError(FerError, ValueError):
    """A setting out of its range (the message names it and the range)."""


@dataclass(frozen=True)
class PipelineSettings:
    """The processing settings of a :class:`fer_core.pipeline.Pipeline`.

    Attributes:
        min_confidence: minimum face-detection score, in [0, 1].
        smoothing: per-face smoothing of the probabilities across the frames of a stream, in [0, 1); 0 = off.
        uncertain_below: a face whose top probability is below this is marked ``uncertain``, in [0, 1].
        small_faces: also search four overlapping tiles of each video frame for faces far from the camera (slower).
            Photos are always searched this way: a photo has the time.
        align: turn faces upright by their eyes before reading them.
        max_faces: at most this many faces per frame, the largest first.
        quality: ``"best"`` (each face read with its mirror image, every frame), ``"balanced"`` or ``"fastest"``
            (cheaper readings; see :data:`QUALITIES` and the README's table of what each costs in accuracy).
        margin: crop side around the detector box, in box sides (calibrated to FER2013's framing).
        shift: crop centre offset along the face's vertical axis, in box widths.
    """

    min_confidence: float = 0.5
    smoothing: float = 0.6
    uncertain_below: float = 0.4
    small_faces: bool = False
    align: bool = True
    max_faces: int = 32
    quality: str = "best"
    margin: float = CROP_MARGIN
    shift: float = CROP_SHIFT

    def __post_init__(self) -> None:
        for name in ("min_confidence", "uncertain_below"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if not 0.0 <= float(self.smoothing) < 1.0:
            raise SettingsError(f"smoothing must be in [0, 1) (1 would freeze the probabilities), not {self.smoothing}")
        if int(self.max_faces) < 1:
            raise SettingsError(f"max_faces must be at least 1, not {self.max_faces}")
        if self.quality not in QUALITIES:
            raise SettingsError(f"quality must be one of {', '.join(QUALITIES)}, not {self.quality!r}")
        if float(self.margin) <= 0:
            raise SettingsError(f"margin must be above 0, not {self.margin}")

    def replace(self, **changes) -> "PipelineSettings":
        """A copy with some fields changed (checked like a new one).

        Raises:
            SettingsError: a value out of range, or a name that is not a setting.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


#: The defaults, for ``argparse`` defaults and help texts.
DEFAULTS = PipelineSettings()
