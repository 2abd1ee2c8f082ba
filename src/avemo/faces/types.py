"""The value types of the face stage: :class:`Face`, :class:`FrameFaces`, and the blendshape names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

# The 52 ARKit-style blendshapes of MediaPipe's FaceLandmarker, in the model's output order
# (index 0 is MediaPipe's own "_neutral"). "Left"/"Right" are the subject's sides, not the viewer's.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
N_LANDMARKS = 478

# Eye corners in MediaPipe's 478-point mesh (subject's right eye appears on the image's left).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)


@dataclass(eq=False)
class Face:
    """One detected face in one frame, in the pixel coordinates of the frame it was found in.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in pixels (for MediaPipe faces, the landmarks' bounding box).
        score: detection confidence in [0, 1]. MediaPipe Tasks does not expose its per-face presence
            value, so MediaPipe faces carry 1.0 (they passed ``min_confidence``); Haar faces carry a
            squashed OpenCV level weight.
        landmarks: ``(478, 3)`` float32 pixels (x, y, z; z is scaled like x, smaller = nearer), or
            ``None`` for a detector without landmarks (Haar).
        blendshapes: ``(52,)`` float32 in [0, 1], ordered as :data:`BLENDSHAPE_NAMES`, or ``None``.
        pose: ``(yaw, pitch, roll)`` in degrees from the facial transformation matrix, or ``None``.
            yaw > 0: the face turns towards the image's right; pitch > 0: the face looks up;
            roll > 0: the face is rotated counter-clockwise in the image.
        track_id: stable identity across frames, set by :class:`~avemo.faces.FaceTracker`.
        source: ``"mediapipe"`` or ``"haar"``.
    """

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = None
    blendshapes: np.ndarray | None = None
    pose: tuple[float, float, float] | None = None
    track_id: int | None = None
    source: str = "mediapipe"

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(right_eye, left_eye)`` centres (x, y) in pixels from the eye corners (``None``: no landmarks).

        The subject's right eye is the one on the image's left in an unmirrored frame.
        """
        if self.landmarks is None:
            return None
        lm = self.landmarks
        right = lm[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
        left = lm[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
        return right, left

    def blendshape_dict(self) -> dict[str, float]:
        """The blendshapes by name (empty without blendshapes)."""
        if self.blendshapes is None:
            return {}
        return {n: float(v) for n, v in zip(BLENDSHAPE_NAMES, self.blendshapes, strict=True)}

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> Face:
        """This face with pixel quantities multiplied by ``factor`` (e.g. back to the full-size frame), then its
        positions moved by ``offset`` ``(dx, dy)``."""
        if factor == 1.0 and offset == (0.0, 0.0):
            return self
        dx, dy = offset
        box = tuple(float(v) * factor + d for v, d in zip(self.box, (dx, dy, dx, dy)))
        lm = None
        if self.landmarks is not None:
            lm = (self.landmarks * np.float32(factor)).astype(np.float32)
            lm[:, 0] += np.float32(dx)
            lm[:, 1] += np.float32(dy)
        return replace(self, box=box, landmarks=lm)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        b = ", ".join(f"{v:.0f}" for v in self.box)
        p = "" if self.pose is None else ", pose=(" + ", ".join(f"{v:.0f}" for v in self.pose) + ")"
        return f"Face(box=({b}), score={self.score:.2f}, source={self.source}, track_id={self.track_id}{p})"


@dataclass(eq=False)
class FrameFaces:
    """The faces of one sampled frame, with their aligned crops (same order as ``faces``).

    ``main_track_id`` is the tracker's main face at that moment (largest accumulated area x score so
    far); :attr:`main` returns that face if it is in this frame, else the largest face here.
    """

    time: float
    index: int
    faces: list[Face] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    main_track_id: int | None = None
    size: tuple[int, int] | None = None  # (height, width) of the decoded frame

    @property
    def main(self) -> Face | None:
        if not self.faces:
            return None
        for f in self.faces:
            if self.main_track_id is not None and f.track_id == self.main_track_id:
                return f
        return max(self.faces, key=lambda f: f.area * f.score)

    @property
    def main_crop(self) -> np.ndarray | None:
        m = self.main
        if m is None or not self.crops:
            return None
        return self.crops[self.faces.index(m)]


def pose_from_matrix(matrix: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees from MediaPipe's 4x4 facial transformation matrix.

    The matrix maps the canonical face model (x right, y up, z towards the camera) into camera space;
    its rotation is decomposed as ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``. Signs follow
    :class:`Face` (checked on real frames: rotating the image 20 degrees counter-clockwise adds
    about +20 to roll; mirroring it negates yaw and roll).
    """
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    # remove any scale the matrix carries
    norms = np.linalg.norm(r, axis=0)
    norms[norms == 0] = 1.0
    r = r / norms
    # camera space is y-up (OpenGL-like): a positive rotation about x moves the nose tip down, so
    # the sign is flipped to make "looking up" positive
    pitch = -math.degrees(math.atan2(r[2, 1], r[2, 2]))
    yaw = math.degrees(math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2])))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return (yaw, pitch, roll)
