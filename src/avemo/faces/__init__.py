"""Faces: detection, landmarks, blendshapes and head pose (MediaPipe), alignment, tracking, key frames.

Data flow::

    RGB frame --FaceLandmarker (MediaPipe; HaarFaceDetector fallback)--> [Face]
              (or, between MediaPipe frames, follow_face: optical flow from the last one)
              --FaceTracker--> Face.track_id, main face
              --align_face--> FER-2013-framed crop (48 grey / 112 colour)
    clip crops --select_key_frames--> KeyFrames (Aktürk & Keçeli 2024)

:func:`scan_video` / :func:`iter_scan_video` run the whole chain over a video file and give one
:class:`FrameFaces` per sampled frame. MediaPipe loads on first use.
"""

from __future__ import annotations

from avemo.faces.align import FER_EYE_DISTANCE, FER_EYE_Y, align_face, alignment_matrix
from avemo.faces.flow import follow_face
from avemo.faces.haar import HaarFaceDetector
from avemo.faces.keyframes import KeyFrames, select_key_frames
from avemo.faces.landmarker import FaceLandmarker, landmarker_model_path
from avemo.faces.scan import DEFAULT_MAX_SIDE, MAX_TRACKED_FACES, FaceScanner, detect_faces, iter_scan_video, scan_video
from avemo.faces.tracking import FaceTracker, Track, box_iou
from avemo.faces.types import BLENDSHAPE_NAMES, Face, FrameFaces, pose_from_matrix

__all__ = [
    "BLENDSHAPE_NAMES",
    "DEFAULT_MAX_SIDE",
    "FER_EYE_DISTANCE",
    "FER_EYE_Y",
    "Face",
    "FaceLandmarker",
    "FaceScanner",
    "FaceTracker",
    "MAX_TRACKED_FACES",
    "FrameFaces",
    "HaarFaceDetector",
    "KeyFrames",
    "Track",
    "align_face",
    "alignment_matrix",
    "box_iou",
    "detect_faces",
    "follow_face",
    "iter_scan_video",
    "landmarker_model_path",
    "pose_from_matrix",
    "scan_video",
    "select_key_frames",
]
