"""``read_image`` / ``is_image``: still pictures as RGB arrays (OpenCV decoder, EXIF orientation applied)."""

from __future__ import annotations

import os

import numpy as np

from avemo.errors import MediaError
from avemo.media.container import IMAGE_EXTENSIONS, check_file, is_image_path
from avemo.media.limits import check_pixels, get_limits


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image, by its extension (case-insensitive)."""
    return is_image_path(path)


def _check_header(path: os.PathLike[str]) -> None:
    """Refuse an image whose header claims more pixels than the limit, read without decoding (Pillow). An image
    Pillow cannot read is left to OpenCV (which refuses more than 2^30 pixels by itself)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # avemo's own limit decides
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:  # Pillow's own refusal, above 2 x Image.MAX_IMAGE_PIXELS
        beyond = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        if beyond and get_limits().max_pixels < beyond:
            raise MediaError(path, f"claims an image of more than {beyond / 1e6:.0f} megapixels, above the limit "
                                   f"of {get_limits().max_pixels / 1e6:.0f} megapixels") from None
        return
    except Exception:  # not an image Pillow knows: OpenCV decides
        return
    check_pixels(path, width, height, "image")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The picture at ``path`` as H x W x 3 RGB uint8 (grey and alpha images are converted).

    Raises :class:`MediaError` for a missing, empty or unreadable file, one that is not an image, and one whose
    header claims more pixels than :mod:`avemo.media.limits` allows (checked before decoding).
    """
    import cv2  # heavy: import on first use

    p = check_file(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(p, f"cannot be read: {exc.strerror or exc}") from None
    _check_header(p)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(p, "is not a readable image (unknown format or corrupt data)")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


__all__ = ["IMAGE_EXTENSIONS", "is_image", "read_image"]
