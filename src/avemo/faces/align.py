"""Eye-based similarity alignment to FER-2013-like square crops.

The default framing was measured, not guessed: MediaPipe run on 600 FER-2013 training images
(upscaled) puts the eye centres at about (0.32, 0.40) and (0.68, 0.40) of the 48x48 crop,
i.e. an inter-ocular distance of 0.36 of the width with the eye line at 0.40 of the height, the
chin near the bottom edge and the forehead at about 0.11. :func:`align_face` reproduces that, so
a model trained on FER-2013 sees crops framed like its training data.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from avemo.faces.types import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS, Face

FER_EYE_DISTANCE = 0.36  # inter-ocular distance / crop width in FER-2013
FER_EYE_Y = 0.40  # eye line / crop height in FER-2013
# Where the Haar frontal-face box puts the eyes (measured against MediaPipe on the shared clips):
# eye midpoint at (0.50, 0.42) of the box width from its top-left corner; eye distance 0.33 width.
HAAR_EYE_MID = (0.50, 0.42)
HAAR_EYE_DISTANCE = 0.33


def eye_centres_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(right_eye, left_eye)`` centres from the eye corners of MediaPipe's 478 (or 468) landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[list(RIGHT_EYE_CORNERS), :2].mean(axis=0), lm[list(LEFT_EYE_CORNERS), :2].mean(axis=0)


def _eyes_for(face_or_landmarks: Face | np.ndarray | tuple) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(face_or_landmarks, Face):
        f = face_or_landmarks
        if f.landmarks is not None:
            return eye_centres_from_landmarks(f.landmarks)
        # box only (Haar): eyes where the cascade's box usually has them, head upright
        x0, y0, x1, _ = f.box
        w = x1 - x0
        mid = np.array([x0 + HAAR_EYE_MID[0] * w, y0 + HAAR_EYE_MID[1] * w])
        half = np.array([HAAR_EYE_DISTANCE * w / 2.0, 0.0])
        return mid - half, mid + half
    arr = np.asarray(face_or_landmarks, dtype=np.float64)
    if arr.shape == (2, 2):  # explicit (right_eye, left_eye) points
        return arr[0], arr[1]
    if arr.ndim == 2 and arr.shape[0] >= 468:
        return eye_centres_from_landmarks(arr)
    if arr.shape == (4,):  # a box
        return _eyes_for(Face(box=tuple(float(v) for v in arr)))  # type: ignore[arg-type]
    raise ValueError(f"expected a Face, (N>=468, 2|3) landmarks, 2 eye points or a box; got shape {arr.shape}")


def alignment_matrix(
    right_eye: np.ndarray,
    left_eye: np.ndarray,
    size: int,
    *,
    eye_distance: float = FER_EYE_DISTANCE,
    eye_y: float = FER_EYE_Y,
    margin: float = 0.0,
) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) taking the eyes to their canonical spots.

    ``right_eye`` is the subject's right eye (image left). ``margin`` zooms out: 0.25 shows 25% more
    context around the face than the FER-2013 framing, keeping the eye midpoint's relative place.
    """
    right_eye = np.asarray(right_eye, dtype=np.float64)
    left_eye = np.asarray(left_eye, dtype=np.float64)
    d = left_eye - right_eye
    dist = math.hypot(d[0], d[1])
    if not np.isfinite(dist) or dist < 1e-6:
        raise ValueError("the two eye centres coincide; cannot align")
    angle = math.atan2(d[1], d[0])
    target_dist = size * eye_distance / (1.0 + margin)
    s = target_dist / dist
    c, si = s * math.cos(-angle), s * math.sin(-angle)
    rot = np.array([[c, -si], [si, c]])
    mid = (right_eye + left_eye) / 2.0
    dst_mid = np.array([size / 2.0, size * (0.5 + (eye_y - 0.5) / (1.0 + margin))])
    t = dst_mid - rot @ mid
    return np.hstack([rot, t[:, None]]).astype(np.float64)


def align_face(
    image: np.ndarray,
    face_or_landmarks: Face | np.ndarray,
    size: int = 112,
    *,
    grey: bool = False,
    margin: float = 0.0,
    eye_distance: float = FER_EYE_DISTANCE,
    eye_y: float = FER_EYE_Y,
    border: str = "replicate",
) -> np.ndarray:
    """A ``size x size`` crop of the face, rotated level and scaled so the eyes sit where FER-2013 has them.

    Args:
        image: the RGB (or grey) frame the face was found in.
        face_or_landmarks: a :class:`Face`; or its ``(478, 2|3)`` landmarks; or ``(2, 2)`` eye
            centres (subject's right eye first); or a box ``(x0, y0, x1, y1)``. A face without
            landmarks (Haar) is aligned from its box: the eyes are placed where the cascade's box
            usually has them, with no rotation.
        size: the output side in pixels (48 for FER-2013-trained models, 112 for others).
        grey: return ``size x size`` uint8 grey (luma of RGB) instead of ``size x size x 3`` RGB.
        margin: extra context, as a fraction (0 = FER-2013 framing).
        eye_distance, eye_y: the canonical framing (fractions of ``size``).
        border: how pixels outside the frame are filled: ``"replicate"`` or ``"constant"`` (black).

    Returns:
        uint8 array, ``(size, size)`` if ``grey`` else ``(size, size, 3)``.
    """
    right, left = _eyes_for(face_or_landmarks)
    m = alignment_matrix(right, left, size, eye_distance=eye_distance, eye_y=eye_y, margin=margin)
    img = np.asarray(image)
    if grey and img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_RGB2GRAY)
    # downscaling by a lot: INTER_AREA-like quality by pre-shrinking with a pyramid
    scale = math.hypot(m[0, 0], m[0, 1])
    while scale < 0.5 and min(img.shape[:2]) > 2 * size:
        img = cv2.pyrDown(img)
        m = m.copy()
        m[:, :2] *= 2.0
        scale *= 2.0
    bmode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=bmode)
    if not grey and out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(out)
