"""Find the MediaPipe face-detector model file, downloading it once when needed.

Search order of :func:`resolve_face_model`:

1. an explicit path (``--face-model``),
2. the environment variable ``FER_FACE_MODEL``,
3. the user cache directory (``platformdirs.user_cache_dir("fer-app")/models``),
4. a download from MediaPipe's published model files into that cache: to a temporary file with a
   progress bar, checked to load in MediaPipe, then moved into place atomically (``os.replace``).

When all of this fails (offline first run) it returns ``None`` and logs a warning; the detector then
falls back to OpenCV's Haar cascade.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import platformdirs
from tqdm import tqdm

from fer_core.errors import os_reason

logger = logging.getLogger(__name__)

FACE_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/latest/"
    "blaze_face_short_range.tflite"
)
FACE_MODEL_NAME = "blaze_face_short_range.tflite"
ENV_VAR = "FER_FACE_MODEL"
DOWNLOAD_TIMEOUT_S = 20.0

_failed_downloads: set[str] = set()  # URLs that already failed in this process: not retried


def cache_dir() -> Path:
    """Directory for downloaded models (created on demand)."""
    return Path(platformdirs.user_cache_dir("fer-app")) / "models"


def loads_in_mediapipe(path: str | Path) -> bool:
    """True when MediaPipe's ``FaceDetector`` accepts the file."""
    from mediapipe.tasks.python import BaseOptions, vision

    try:
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)))
        vision.FaceDetector.create_from_options(options).close()
        return True
    except Exception as e:  # MediaPipe raises RuntimeError/ValueError for bad files
        logger.debug("face model %s does not load: %s", path, e)
        return False


def download_face_model(dest: str | Path, url: str | None = None, progress: bool = True,
                        timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` (default :data:`FACE_MODEL_URL`) to ``dest`` atomically and check that it loads.

    Raises:
        OSError: network or file error (``urllib.error.URLError`` is an ``OSError``).
        ValueError: the downloaded file is not a usable face-detector model (it is deleted).
    """
    dest, url = Path(dest), url or FACE_MODEL_URL
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                      disable=None if progress else True, leave=False) as bar:  # None: a terminal only
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        if not loads_in_mediapipe(tmp):
            raise ValueError(f"file downloaded from {url} is not a MediaPipe face-detector model")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("downloaded face-detector model to %s", dest)
    return dest


def resolve_face_model(explicit: str | Path | None = None, download: bool = True, progress: bool = True,
                       url: str | None = None, cache: str | Path | None = None) -> Path | None:
    """Locate the BlazeFace short-range model (see the module docstring for the order).

    Args:
        explicit: a path given by the user; a missing one is reported and the search goes on.
        download: allow the one-time download into the cache.
        progress: show a tqdm progress bar while downloading.
        url: where to download from; default :data:`FACE_MODEL_URL` (tests pass a ``file://`` URL).
        cache: cache directory; default :func:`cache_dir`.

    Returns:
        The model path, or ``None`` when none can be found or downloaded (a warning is logged).
    """
    for source, value in (("--face-model", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if not value:
            continue
        path = Path(value).expanduser()
        if path.is_file():
            return path
        logger.warning("face-detector model from %s not found: %s", source, path)
    url = url or FACE_MODEL_URL
    cached = Path(cache) if cache is not None else cache_dir()
    target = cached / FACE_MODEL_NAME
    if target.is_file():
        return target
    if not download or url in _failed_downloads:
        return None
    try:
        return download_face_model(target, url, progress)
    except (OSError, ValueError, http.client.HTTPException) as e:
        _failed_downloads.add(url)
        logger.warning(
            "could not download the face-detector model from %s: %s. Put %s at %s or set %s to its path.",
            url, download_reason(e), FACE_MODEL_NAME, target, ENV_VAR,
        )
        return None


def download_reason(exc: BaseException) -> str:
    """Why a download failed, in plain words (no ``<urlopen error [Errno -2] ...>``)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}".strip()
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return "no connection to the internet (the server's name could not be looked up)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(reason, ConnectionError):
        return "the connection was refused or reset"
    return os_reason(reason) if isinstance(reason, BaseException) else str(reason)
