"""Inference core for real-time facial expression recognition.

Free of torch and Qt: numpy, OpenCV, MediaPipe and ONNX Runtime only. The Python API is
:class:`fer_core.api.EmotionRecognizer` (``from fer_core import EmotionRecognizer``).
"""

__version__ = "0.1.0"

__all__ = ["EmotionRecognizer", "Face", "FerError", "PipelineSettings", "StreamFrame"]


def __getattr__(name: str):
    """``from fer_core import EmotionRecognizer`` without loading ONNX Runtime for every ``fer_core.*`` import."""
    if name in ("EmotionRecognizer", "Face", "StreamFrame"):
        from fer_core import api

        return getattr(api, name)
    if name == "PipelineSettings":
        from fer_core.settings import PipelineSettings

        return PipelineSettings
    if name == "FerError":
        from fer_core.errors import FerError

        return FerError
    raise AttributeError(f"module 'fer_core' has no attribute {name!r}")
