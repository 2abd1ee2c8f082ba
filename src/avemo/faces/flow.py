"""Carrying a detected face to a later frame with optical flow, instead of running MediaPipe again.

Landmarks on the rigid part of the face (eyes, nose, forehead, cheeks; not the mouth, jaw or
brows, which move with the expression) are followed with pyramidal Lucas-Kanade flow, a
similarity transform (shift, rotation, scale) is fitted to them with RANSAC, and the whole face
(478 landmarks, box) is moved by it. About 1 ms a face against MediaPipe's 7-8 ms a frame.

Faces carried over 0.2 s put the eye centres within about 1-2 % of the inter-ocular distance of
MediaPipe's own on average (BENCHMARKS.md, ``benchmarks/face_path.py``). Linear interpolation
between neighbouring MediaPipe frames, tried first, was further off (2.5 % against 1.8 % on the
speed benchmark's video) and needs the next frame before it can answer.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from avemo.faces.types import Face

#: landmarks followed: eye contours and corners, nose bridge and tip, forehead, cheeks and cheekbones,
#: temples (the set with the smallest eye error of four tried on the shared clips)
FOLLOW_POINTS = np.unique(np.array([
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,  # right eye
    362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398,  # left eye
    168, 6, 197, 195, 5, 4, 1, 45, 275, 220, 440,  # nose
    10, 151, 9, 108, 337, 67, 297, 103, 332,  # forehead
    50, 280, 116, 345, 123, 352, 117, 346, 118, 347, 36, 266, 205, 425, 101, 330,  # cheeks
    234, 454, 127, 356,  # temples
]))
_LK = {"winSize": (21, 21), "maxLevel": 3,
       "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


def grey(image: np.ndarray) -> np.ndarray:
    """The frame in grey (uint8), as the flow wants it."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _points(face: Face) -> np.ndarray:
    if face.landmarks is not None:
        return face.landmarks[FOLLOW_POINTS, :2]
    x0, y0, x1, y1 = face.box  # no landmarks (Haar): a grid over the inner face
    xs = np.linspace(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0), 5)
    ys = np.linspace(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0), 5)
    return np.array([(x, y) for y in ys for x in xs])


def follow_face(before: np.ndarray, after: np.ndarray, face: Face, min_kept: float = 0.5) -> Face | None:
    """``face`` (found in grey frame ``before``) moved to grey frame ``after``; ``None`` when the flow
    loses it (fewer than ``min_kept`` of the points followed, or no consistent motion).

    The result keeps the blendshapes and pose of ``face`` and has ``source="flow"``.
    """
    p0 = np.ascontiguousarray(_points(face), dtype=np.float32).reshape(-1, 1, 2)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(before, after, p0, None, **_LK)
    ok = status.ravel() == 1
    if p1 is None or ok.sum() < max(3, min_kept * len(p0)):
        return None
    tolerance = max(1.0, 0.015 * face.width)  # pixels; relative, so large faces are judged alike
    m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC, ransacReprojThreshold=tolerance)
    if m is None or inliers is None or inliers.sum() < max(3, min_kept * len(p0)):
        return None
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if not 0.67 < scale < 1.5:
        return None
    h, w = after.shape[:2]
    if face.landmarks is not None:
        lm = face.landmarks.copy()
        lm[:, :2] = lm[:, :2] @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        lm[:, 2] *= scale
        x0, y0, x1, y1 = lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()
    else:
        lm = None
        corners = np.array([face.box[:2], face.box[2:]], dtype=np.float64) @ m[:, :2].T + m[:, 2]
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    box = (max(0.0, float(x0)), max(0.0, float(y0)), min(float(w), float(x1)), min(float(h), float(y1)))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return replace(face, box=box, landmarks=lm, track_id=None, source="flow")
