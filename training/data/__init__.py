"""Face-expression datasets for training: readers, splits, decoding cache, merging.

``load_data(["fer2013=PATH"])`` returns a :class:`FaceData` with train/val/test :class:`FaceSplit`s
of uint8 images already ``prepare_gray``-ed. One file per job:

- ``specs.py``: ``KIND=PATH`` parsing, valid kinds.
- ``fer2013.py`` / ``fer2013_csv.py`` / ``ferplus.py`` / ``folder.py``: one reader per layout,
  each returning a :class:`~training.data.listing.Listing` (files, labels, fixed splits).
- ``splits.py``: seeded stratified / subject splits and subsets.
- ``readers.py``: which reader reads a spec, and decoding a listing (shared by ``load.py`` and ``pack.py``).
- ``images.py``: parallel decoding; ``cache.py``: the ``.npz`` cache; ``combine.py``: merging.
- ``pack.py``: a whole dataset as one JPEG mosaic + index, small enough to travel to a GPU box
  (``packed=PATH``).
- ``load.py``: ``load_data`` tying these together.
"""

from .errors import DataError
from .facedata import FaceData, FaceSplit
from .load import load_data
from .specs import KINDS

__all__ = ["DataError", "FaceData", "FaceSplit", "KINDS", "load_data"]
