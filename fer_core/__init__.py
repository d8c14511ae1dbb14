"""Inference core for real-time facial expression recognition.

Free of torch and Qt: numpy, OpenCV, MediaPipe and ONNX Runtime only.
"""

__version__ = "0.1.0"
