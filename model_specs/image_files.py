"""Camera images a ``--awml-data`` reader loads: BGR uint8, as mmcv.imread and OpenCV load them (AWML's pipelines take
BGR), decoded by Pillow (OpenCV is not a dependency here: a JPEG's decode may differ from libjpeg-turbo's by a grey level)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pytest_awml.errors import DataError


def read_bgr(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 BGR, or a :class:`DataError` naming the file."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not an image Pillow reads ({exc})") from None
    return np.ascontiguousarray(rgb[:, :, ::-1])
