"""``read_image`` / ``is_image``: still pictures as RGB arrays (OpenCV decoder, EXIF orientation applied)."""

from __future__ import annotations

import os

import numpy as np

from avemo.errors import MediaError
from avemo.media.container import IMAGE_EXTENSIONS, check_file, is_image_path


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image, by its extension (case-insensitive)."""
    return is_image_path(path)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The picture at ``path`` as H x W x 3 RGB uint8 (grey and alpha images are converted).

    Raises :class:`MediaError` for a missing, empty or unreadable file, or one that is not an image.
    """
    import cv2  # heavy: import on first use

    p = check_file(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(p, f"cannot be read: {exc.strerror or exc}") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(p, "is not a readable image (unknown format or corrupt data)")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


__all__ = ["IMAGE_EXTENSIONS", "is_image", "read_image"]
