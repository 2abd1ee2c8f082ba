"""Expression features from what MediaPipe already gives for a face: blendshapes, head pose, landmark geometry.

Torch-free (numpy only), so the analyzer can compute them beside the crop network at no extra model cost.

The vector, in the order of :func:`feature_names`:

* the 52 blendshapes in MediaPipe's output order (:data:`avemo.faces.BLENDSHAPE_NAMES`);
* head pose ``yaw, pitch, roll`` in degrees divided by 45;
* geometry: 45 points of the 478-point mesh (brows, eyelids, eye corners, nose, lips, chin, face sides)
  in a face frame: origin at the midpoint of the eyes, x along the eye line (towards the subject's left
  eye), y down, in units of the inter-ocular distance (so size, position and roll drop out).

:func:`mirror_features` gives the features of the mirror image (left and right swapped), for training
with mirrored faces as the crop network is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avemo.faces.types import BLENDSHAPE_NAMES, LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

#: Mirror pairs of the 478-point mesh (subject's right, subject's left): eye corners, lids, brows, mouth
#: corners, lips, nose wings, face sides.
GEOMETRY_PAIRS: tuple[tuple[int, int], ...] = (
    (33, 263), (133, 362), (159, 386), (145, 374), (160, 387), (144, 373),
    (70, 300), (63, 293), (105, 334), (66, 296), (107, 336),
    (61, 291), (37, 267), (84, 314), (40, 270), (91, 321), (98, 327), (234, 454),
)  # fmt: skip
#: Points on the midline: glabella, nose bridge, nose tip, under the nose, lips (outer and inner), chin.
GEOMETRY_MIDLINE: tuple[int, ...] = (9, 168, 1, 2, 0, 13, 14, 17, 152)
POSE_NAMES = ("yaw", "pitch", "roll")
POSE_SCALE = 45.0


def feature_names() -> tuple[str, ...]:
    """Names of the feature vector's columns, in order."""
    geo = []
    for r, lft in GEOMETRY_PAIRS:
        geo += [f"lm{r}_x", f"lm{r}_y", f"lm{lft}_x", f"lm{lft}_y"]
    for m in GEOMETRY_MIDLINE:
        geo += [f"lm{m}_x", f"lm{m}_y"]
    return tuple(BLENDSHAPE_NAMES) + tuple(f"pose_{p}" for p in POSE_NAMES) + tuple(geo)


N_FEATURES = len(feature_names())


def face_frame_points(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 478, 2+)`` landmarks → ``(N, 45, 2)`` geometry points in the face frame (see module doc)."""
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    right = lm[:, list(RIGHT_EYE_CORNERS)].mean(axis=1)
    left = lm[:, list(LEFT_EYE_CORNERS)].mean(axis=1)
    mid, d = (right + left) / 2.0, left - right
    dist = np.linalg.norm(d, axis=1, keepdims=True)
    dist[dist < 1e-6] = np.nan
    ex = d / dist  # unit vector along the eye line
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)  # perpendicular, pointing down in image coordinates
    idx = [i for pair in GEOMETRY_PAIRS for i in pair] + list(GEOMETRY_MIDLINE)
    rel = lm[:, idx] - mid[:, None]
    return np.stack([(rel * ex[:, None]).sum(-1), (rel * ey[:, None]).sum(-1)], axis=-1) / dist[:, None]


def expression_features(blendshapes: np.ndarray, pose: np.ndarray | None, landmarks: np.ndarray | None
                        ) -> np.ndarray:
    """``(N, 52)`` blendshapes, ``(N, 3)`` pose (degrees), ``(N, 478, 2|3)`` landmarks → ``(N, N_FEATURES)``.

    Single faces may be given without the batch axis. Missing pose or landmarks give NaN columns.
    """
    bs = np.asarray(blendshapes, dtype=np.float32)
    single = bs.ndim == 1
    bs = bs.reshape(-1, len(BLENDSHAPE_NAMES))
    n = len(bs)
    pz = np.full((n, 3), np.nan, np.float32) if pose is None else np.asarray(pose, np.float32).reshape(n, 3)
    if landmarks is None:
        geo = np.full((n, 2 * (2 * len(GEOMETRY_PAIRS) + len(GEOMETRY_MIDLINE))), np.nan, np.float32)
    else:
        lm = np.asarray(landmarks, dtype=np.float32).reshape(n, -1, np.shape(landmarks)[-1])
        pts = face_frame_points(lm)
        geo = pts.reshape(n, -1).astype(np.float32)
    out = np.concatenate([bs, pz / POSE_SCALE, geo], axis=1).astype(np.float32)
    return out[0] if single else out


def face_features(face: object) -> np.ndarray | None:
    """The feature vector of one :class:`avemo.faces.Face`, or ``None`` when it has no blendshapes or
    landmarks (a Haar face, or one carried by optical flow without them)."""
    bs = getattr(face, "blendshapes", None)
    lm = getattr(face, "landmarks", None)
    if bs is None or lm is None:
        return None
    pose = getattr(face, "pose", None)
    return expression_features(bs, None if pose is None else np.asarray(pose), lm)


#: Landmarks of the lips and chin (they move with speech).
MOUTH_POINTS = (61, 291, 37, 267, 84, 314, 40, 270, 91, 321, 0, 13, 14, 17, 152)


def mouth_feature_mask(names: Sequence[str] | None = None) -> np.ndarray:
    """Which features move with the mouth and jaw (the mouth*, jaw* and cheekPuff blendshapes, lip and chin
    points): what speech changes whatever the emotion."""
    names = feature_names() if names is None else names
    pts = {f"lm{i}_{a}" for i in MOUTH_POINTS for a in "xy"}
    return np.array([n.startswith(("mouth", "jaw", "cheekPuff")) or n in pts for n in names])


def _mirror_permutation(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Column permutation and sign flips that turn a face's features into those of its mirror image."""
    pos = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    sign = np.ones(len(names), np.float32)
    for i, n in enumerate(names):
        if n.endswith("Left") and n[:-4] + "Right" in pos:
            perm[i] = pos[n[:-4] + "Right"]
        elif n.endswith("Right") and n[:-5] + "Left" in pos:
            perm[i] = pos[n[:-5] + "Left"]
    for r, lft in GEOMETRY_PAIRS:
        for ax in ("x", "y"):
            perm[pos[f"lm{r}_{ax}"]], perm[pos[f"lm{lft}_{ax}"]] = pos[f"lm{lft}_{ax}"], pos[f"lm{r}_{ax}"]
    for i, n in enumerate(names):
        if n.startswith("lm") and n.endswith("_x"):
            sign[i] = -1.0
    sign[pos["pose_yaw"]] = sign[pos["pose_roll"]] = -1.0
    return perm, sign


_PERM, _SIGN = _mirror_permutation(feature_names())


def mirror_features(features: np.ndarray) -> np.ndarray:
    """The features of the mirror image of each face (``(N, N_FEATURES)`` or one vector)."""
    f = np.asarray(features, dtype=np.float32)
    return f[..., _PERM] * _SIGN
