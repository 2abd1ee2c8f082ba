"""OpenCV's Haar cascade frontal-face detector: a landmark-free fallback when MediaPipe finds nothing."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from avemo.errors import AvemoError
from avemo.faces.landmarker import downscale
from avemo.faces.types import Face


def haar_cascade_path(name: str = "haarcascade_frontalface_default.xml") -> Path:
    p = Path(cv2.data.haarcascades) / name
    if not p.is_file():
        raise AvemoError(f"{p}: OpenCV's Haar cascade is missing (is opencv-python-headless installed?)")
    return p


class HaarFaceDetector:
    """Viola-Jones detection with ``haarcascade_frontalface_default.xml``.

    Returns :class:`~avemo.faces.Face` objects with ``landmarks=None`` (no blendshapes, no pose);
    :func:`~avemo.faces.align_face` crops them from the box. ``score`` squashes OpenCV's level
    weight into (0, 1) (``1 - exp(-weight / 4)``): a ranking aid, not a calibrated probability.

    Args:
        scale_factor, min_neighbors: as in ``cv2.CascadeClassifier.detectMultiScale``.
        min_size: the smallest face, as a fraction of the shorter image side.
        max_side: the image is downscaled to this longer side before detection; the boxes are
            returned in the input's pixels. The cascade's cost grows with the pixel count (about
            16 ms per frame at 240, 30 at 320, 55 at 480 on one busy CPU core) while 240 still found
            the face in all 53 sampled frames of the shared clips (scaled to 1280x720).
        max_faces: keep the largest this many faces (None: all).
    """

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
        max_side: int | None = 240,
        max_faces: int | None = None,
    ) -> None:
        self.cascade = cv2.CascadeClassifier(str(haar_cascade_path()))
        if self.cascade.empty():
            raise AvemoError("OpenCV could not load haarcascade_frontalface_default.xml")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        self.max_faces = max_faces

    def detect(self, image: np.ndarray, timestamp_ms: float | None = None) -> list[Face]:
        """The faces in an RGB (or grey) frame, largest first."""
        del timestamp_ms  # same signature as FaceLandmarker.detect
        a = np.asarray(image)
        if a.dtype != np.uint8:
            a = np.clip(a, 0, 255).astype(np.uint8)
        grey = a if a.ndim == 2 else cv2.cvtColor(a[:, :, :3], cv2.COLOR_RGB2GRAY)
        h, w = grey.shape[:2]
        small, factor = downscale(grey, self.max_side)
        small = cv2.equalizeHist(small)
        ms = max(16, int(self.min_size * min(small.shape[:2])))
        rects, _levels, weights = self.cascade.detectMultiScale3(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(ms, ms),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, bw, bh), wt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            box = (
                max(0.0, x * factor),
                max(0.0, y * factor),
                min(float(w), (x + bw) * factor),
                min(float(h), (y + bh) * factor),
            )
            score = 1.0 - math.exp(-max(0.0, float(wt)) / 4.0)
            faces.append(Face(box=box, score=score, source="haar"))
        faces.sort(key=lambda f: f.area, reverse=True)
        if self.max_faces is not None:
            faces = faces[: self.max_faces]
        return faces

    def close(self) -> None:  # symmetry with FaceLandmarker
        pass

    def __enter__(self) -> HaarFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
