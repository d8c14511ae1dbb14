"""ONNX emotion classifier: preprocess face crops, run one batched inference, return probabilities.

One small class in the opencv_zoo / insightface style::

    clf = EmotionClassifier("models/fer_realtime.onnx")      # provider="auto"
    probs = clf.predict([crop1, crop2])                        # (2, C) softmax probabilities
    clf.labels[probs[0].argmax()]

The model describes itself through :class:`fer_core.model_meta.ModelMeta` in the ONNX
``metadata_props`` (labels, input size, mean/std, equalisation). A model without them loads with
the defaults and a logged warning. A model that averages each face with its mirror image in its graph (metadata
``tta=flip``, as the shipped ones) can read each face once instead, at half the cost: ``clf.mirror = False``
(the same graph and session, with its ``mirror`` input fed False).

Providers: ``"auto"`` tries TensorRT, CUDA, DirectML, CoreML, then CPU, keeping only those that
``onnxruntime.get_available_providers()`` lists *and* whose libraries can actually be loaded
(``onnxruntime-gpu`` lists CUDA/TensorRT even on machines without a GPU; those are skipped quietly).
An explicit provider that cannot be used raises :class:`ProviderError` naming the usable ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fer_core.errors import FerError
from fer_core.model_meta import ModelMeta
from fer_core.probs import softmax
from fer_core.preprocess import preprocess_face

logger = logging.getLogger(__name__)

# Short name -> ONNX Runtime execution provider, in "auto" preference order.
PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# Provider shared libraries (without prefix/suffix) that onnxruntime-gpu loads on demand.
_PROVIDER_LIBS = {
    "CUDAExecutionProvider": "onnxruntime_providers_cuda",
    "TensorrtExecutionProvider": "onnxruntime_providers_tensorrt",
}


def ort_load_reason(exc: BaseException) -> str:
    """One plain sentence for ONNX Runtime's error when it cannot load a model (its own text goes to the log)."""
    text = str(exc)
    if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text:
        return "cannot load ONNX model: the file is damaged, cut short or not an ONNX model"
    if "NO_SUCHFILE" in text:
        return "model file not found"
    if "NOT_IMPLEMENTED" in text or "opset" in text.lower():
        return "cannot load ONNX model: it needs an operator or opset this onnxruntime lacks (update onnxruntime)"
    return "cannot load ONNX model (run with FER_DEBUG=1 for ONNX Runtime's own message)"


class ModelLoadError(FerError, RuntimeError):
    """A model file is missing, corrupt, or not usable as an emotion classifier."""


class ProviderError(ModelLoadError):
    """An execution provider was asked for that is unknown or cannot be used on this machine."""


def _short_name(ep: str) -> str:
    for short, full in PROVIDERS.items():
        if full == ep:
            return short
    return ep


def _load_library(path: str) -> None:
    """``ctypes`` load with the platform's normal search path (PATH on Windows, too)."""
    if sys.platform == "win32":
        ctypes.CDLL(path, winmode=0)
    else:
        ctypes.CDLL(path)


@functools.lru_cache(maxsize=None)
def provider_problem(ep: str) -> str | None:
    """Why an execution provider listed by onnxruntime cannot be used here, or ``None`` if it looks usable.

    CUDA and TensorRT are probed by loading the NVIDIA driver and the provider library with
    ``ctypes`` (silent), instead of letting onnxruntime print errors while creating a session.
    """
    if ep not in ort.get_available_providers():
        return "not included in this onnxruntime build"
    lib_name = _PROVIDER_LIBS.get(ep)
    if lib_name is None:
        return None
    driver = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        _load_library(driver)
    except OSError:
        return f"no NVIDIA driver found ({driver} cannot be loaded)"
    preload = getattr(ort, "preload_dlls", None)  # CUDA/cuDNN from the nvidia-* pip packages, if any
    if preload is not None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            preload()
    capi = Path(ort.__file__).parent / "capi"
    lib = capi / (f"{lib_name}.dll" if sys.platform == "win32" else f"lib{lib_name}.so")
    if lib.exists():
        try:
            _load_library(str(lib))
        except OSError as e:
            return f"its libraries cannot be loaded ({e})"
    return None


def available_providers() -> list[str]:
    """Short names of the providers usable here, in ``auto`` order (``cpu`` always last)."""
    return [short for short, ep in PROVIDERS.items() if provider_problem(ep) is None]


def resolve_providers(provider: str = "auto") -> list[str]:
    """Turn a provider choice into the onnxruntime provider list to try, best first.

    Args:
        provider: ``"auto"``, a short name (``cpu``, ``cuda``, ``tensorrt``, ``directml``, ``coreml``)
            or a full onnxruntime name such as ``"CUDAExecutionProvider"`` (case-insensitive).

    Returns:
        Full provider names; CPU is appended as the fallback for operators another provider lacks.

    Raises:
        ProviderError: unknown name, or a provider that cannot be used here (the message lists usable ones).
    """
    choice = (provider or "auto").strip()
    usable = available_providers()
    if choice.lower() == "auto":
        return [PROVIDERS[s] for s in usable]
    by_lower = dict(PROVIDERS) | {v.lower(): v for v in PROVIDERS.values()}
    ep = by_lower.get(choice.lower())
    if ep is None:
        raise ProviderError(
            f"unknown execution provider '{provider}'; choose auto or one of: {', '.join(PROVIDERS)} "
            f"(usable here: {', '.join(usable)})"
        )
    problem = provider_problem(ep)
    if problem is not None:
        raise ProviderError(
            f"execution provider '{_short_name(ep)}' ({ep}) is not available: {problem}. "
            f"Usable here: {', '.join(usable)}"
        )
    chain = [ep]
    if ep == PROVIDERS["tensorrt"] and "cuda" in usable:  # operators TensorRT cannot take run on CUDA
        chain.append(PROVIDERS["cuda"])
    if ep != PROVIDERS["cpu"]:
        chain.append(PROVIDERS["cpu"])
    return chain


def _provider_options(ep: str) -> dict[str, str]:
    if ep == PROVIDERS["tensorrt"]:
        import platformdirs

        cache = Path(platformdirs.user_cache_dir("fer-app")) / "tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    return {}


def default_threads() -> int:
    """Intra-op threads: all cores up to 4 (more rarely helps for small per-frame batches)."""
    return max(1, min(4, os.cpu_count() or 1))


MIRROR_INPUT = "mirror"
"""The boolean input of a model with switchable mirror averaging (``training.mirror_fold``; True when not fed)."""


class EmotionClassifier:
    """An exported emotion model in an ONNX Runtime session.

    Attributes:
        model_path: the ONNX file.
        meta: the model's self-description (defaults where the file has none).
        labels: class names in output order.
        input_size: square input side in pixels.
        provider: the execution provider actually in use, e.g. ``"CPUExecutionProvider"``.
        input_name: name of the graph input.
    """

    def __init__(self, model_path: str | Path, provider: str = "auto", threads: int | None = None) -> None:
        """Load a model.

        Args:
            model_path: ONNX file written by ``fer-export`` (or any (N, 3|1, S, S) -> (N, C) classifier).
            provider: ``"auto"`` or an explicit provider, see :func:`resolve_providers`.
            threads: intra-op threads; default :func:`default_threads`.

        Raises:
            ModelLoadError: missing/corrupt file, wrong input rank, label count differing from the output.
            ProviderError: the requested provider cannot be used.
        """
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"{self.model_path}: model file not found")
        providers = resolve_providers(provider)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: keeps "nodes not assigned to preferred EP" notes quiet
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        # No busy-waiting between runs: a real-time loop sleeps between frames, and spinning threads took most of a
        # core from the app and from MediaPipe on two cores (benchmarks/app_cpu.py: 1.40 -> 0.48 cores at 24 fps).
        # The price is throughput on an idle machine: fer-bench, one face, 157 -> 135 frames/s.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.model_path), opts, enable_fallback=0,
                                                providers=[(p, _provider_options(p)) for p in providers])
        except Exception as e:  # onnxruntime raises several pybind exception types
            logger.debug("%s: ONNX Runtime said: %s", self.model_path, str(e).strip())  # the details, for the log
            raise ModelLoadError(f"{self.model_path}: {ort_load_reason(e)}") from e
        self._mirror = True
        self.provider: str = self.session.get_providers()[0]
        if self.provider != providers[0]:
            if (provider or "auto").strip().lower() != "auto":
                raise ProviderError(
                    f"{self.model_path}: provider '{provider}' could not be initialised (ONNX Runtime fell back to "
                    f"{self.provider}). Usable here: {', '.join(available_providers())}"
                )
            logger.info("%s: %s could not be initialised, using %s", self.model_path, providers[0], self.provider)
        self._read_graph()
        self._check_output()
        logger.info("loaded %s (%s, %d classes, %dpx) on %s", self.model_path.name, self.meta.model,
                    len(self.labels), self.input_size, self.provider)

    # ------------------------------------------------------------------ loading
    def _read_graph(self) -> None:
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.meta, missing = ModelMeta.from_props(props)
        self.has_mirror: bool = props.get("tta") == "flip"
        self._switchable = MIRROR_INPUT in {i.name for i in self.session.get_overridable_initializers()}
        if "labels" in missing:
            logger.warning("%s: no fer.labels metadata; assuming the FER2013 classes %s", self.model_path,
                           self.meta.labels)
        elif missing:
            logger.info("%s: metadata fields %s missing, using defaults", self.model_path, missing)
        if not self.meta.gray:
            logger.warning("%s: model metadata says colour input; fer_core feeds grey faces (3 equal channels)",
                           self.model_path)

        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelLoadError(
                f"{self.model_path}: input '{inp.name}' has rank {len(shape)} (shape {shape}); "
                "an image classifier with input (N, C, H, W) is expected"
            )
        channels, height, width = shape[1:]
        if isinstance(channels, int) and channels not in (1, 3):
            raise ModelLoadError(f"{self.model_path}: input has {channels} channels; 1 or 3 expected")
        self._channels = channels if isinstance(channels, int) else 3
        graph_size = height if isinstance(height, int) else None
        if isinstance(height, int) and isinstance(width, int) and height != width:
            raise ModelLoadError(f"{self.model_path}: input is {height}x{width}; a square input is expected")
        if self.meta.input_size and graph_size and self.meta.input_size != graph_size:
            raise ModelLoadError(
                f"{self.model_path}: metadata says input size {self.meta.input_size} but the graph input is "
                f"{graph_size}x{graph_size}"
            )
        size = self.meta.input_size or graph_size
        if not size:
            raise ModelLoadError(
                f"{self.model_path}: input size unknown (no fer.input_size metadata and dynamic height/width)"
            )
        self.meta.input_size = int(size)
        self.input_size: int = int(size)
        self._fixed_batch: int | None = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.labels: list[str] = list(self.meta.labels)

    def _check_output(self) -> None:
        """Run once on a blank input (this also warms the session up); the class count must match the labels."""
        dummy = np.zeros((1, 3, self.input_size, self.input_size), np.float32)
        try:
            n_out = self.predict_batch(dummy).shape[1]
        except Exception as e:
            logger.debug("%s: ONNX Runtime said: %s", self.model_path, str(e).strip())
            raise ModelLoadError(f"{self.model_path}: the model does not run on a blank face (its input or graph is "
                                 "not what fer_core expects; FER_DEBUG=1 shows ONNX Runtime's message)") from e
        if n_out != len(self.labels):
            raise ModelLoadError(
                f"{self.model_path}: the model outputs {n_out} classes but its labels list {len(self.labels)} "
                f"({', '.join(self.labels)})"
            )

    # ------------------------------------------------------------------ mirror averaging
    @property
    def mirror(self) -> bool:
        """Average each face with its mirror image (the shipped models do, in their graph: ``has_mirror``).

        Setting it False on such a model reads each face once, at half the work: the graph's ``mirror`` input is fed
        False from the next run (nothing is rebuilt). A model without mirror averaging stays False whatever is set;
        one folded before the switch existed stays True (a logged note says how to convert it).
        """
        return self.has_mirror and (self._mirror or not self._switchable)

    @mirror.setter
    def mirror(self, value: bool) -> None:
        self._mirror = bool(value)
        if not self._mirror and self.has_mirror and not self._switchable:
            logger.info("%s averages mirror images in a graph that cannot switch it off: every face is read twice. "
                        "Convert it with: python -m training.mirror_fold %s", self.model_path, self.model_path)

    # ------------------------------------------------------------------ inference
    def preprocess(self, crops: list[np.ndarray], equalize: bool | None = None) -> np.ndarray:
        """Face crops (BGR/BGRA/grey uint8, any size) -> model batch float32 (N, 3, S, S).

        Args:
            crops: face crops, e.g. from :func:`fer_core.crop.crop_face`.
            equalize: histogram equalisation; ``None`` follows the model metadata.
        """
        eq = self.meta.equalize if equalize is None else bool(equalize)
        size = self.input_size
        batch = np.empty((len(crops), 3, size, size), np.float32)
        for i, crop in enumerate(crops):
            batch[i] = preprocess_face(crop, size, self.meta.native_size or None, eq, self.meta.mean, self.meta.std)
        return batch

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed batch (N, 3, S, S) -> softmax probabilities float32 (N, C), all in one run.

        Models with a fixed batch dimension are fed in chunks of that size (the last one zero-padded).
        """
        batch = np.asarray(batch)
        if batch.ndim != 4:
            raise ValueError(f"batch must be (N, 3, S, S), got shape {batch.shape}")
        if self._channels == 1 and batch.shape[1] == 3:
            batch = batch[:, :1]
        batch = np.ascontiguousarray(batch, dtype=self._input_dtype)
        n = batch.shape[0]
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        step = self._fixed_batch
        flag = {MIRROR_INPUT: np.array(self._mirror)} if self._switchable else {}
        if step is None:
            logits = self.session.run(None, {self.input_name: batch, **flag})[0]
        else:
            parts = []
            for i in range(0, n, step):
                chunk = batch[i:i + step]
                if len(chunk) < step:
                    pad = np.zeros((step - len(chunk),) + chunk.shape[1:], chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
                parts.append(self.session.run(None, {self.input_name: chunk, **flag})[0])
            logits = np.concatenate(parts)[:n]
        return softmax(np.asarray(logits, np.float32).reshape(n, -1), axis=1)

    def predict(self, crops: list[np.ndarray], equalize: bool | None = None) -> np.ndarray:
        """Face crops -> probabilities (N, C); an empty list gives (0, C)."""
        return self.predict_batch(self.preprocess(crops, equalize))

    def __repr__(self) -> str:
        return (f"EmotionClassifier({str(self.model_path)!r}, model={self.meta.model}, classes={len(self.labels)}, "
                f"size={self.input_size}, provider={self.provider})")
