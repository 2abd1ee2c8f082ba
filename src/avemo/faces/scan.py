"""Detection with fallback, and the video scan the analyzer uses: decode -> detect -> track -> align.

Speed. MediaPipe's cost hardly depends on the frame size: its face detector (BlazeFace short
range) sees a 128x128 copy of the frame and its landmark model a fixed-size crop around the face,
whatever the input size. Measured on the
shared clips scaled to 1280x720 (2-core machine, CPU time per frame, video mode): about 7-8 ms at
full size, 640, 320 or 256 alike (9 ms at 192, where the face gets too small); image mode 1-2 ms
more (the detector runs on every frame). All sizes down to 192 found the face in 53/53 frames.
What downscaling does save is the work around MediaPipe: RGB conversion, copies, the crops, and
the Haar fallback (whose cost grows with the pixel count). So :func:`scan_video` decodes straight
to ``decode_max_side`` (default :data:`DEFAULT_MAX_SIDE`, in the decoder's colour conversion) and
detects on that; ``max_side`` caps MediaPipe's input for frames given at full size (landmarks are
mapped back to the frame as given; crops are cut from it).

End to end (``iter_scan_video``, 48x48 grey crops) on the speed benchmark's 60 s 1280x720 H.264
video at 5 fps (300 frames, all with a face), 2 cores: decoding (B-frames skipped) costs about
1.2-1.6 s of CPU, MediaPipe about 7 ms a frame. ``landmark_every=2`` runs MediaPipe on every other
frame and carries the faces between by optical flow (:mod:`avemo.faces.flow`, about 1 ms a face),
which takes the scan from about 2.5 to 1.6 s of CPU; what that changes in the face probabilities is
in BENCHMARKS.md (``benchmarks/face_path.py``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avemo.faces.align import align_face
from avemo.faces.flow import follow_face, grey
from avemo.faces.haar import HaarFaceDetector
from avemo.faces.landmarker import FaceLandmarker, as_rgb_uint8
from avemo.faces.tracking import FaceTracker
from avemo.faces.types import Face, FrameFaces

DEFAULT_MAX_SIDE = 640  # detection input and decoded frame size; see the module docstring
MAX_TRACKED_FACES = 4  #: faces followed per frame (read per photo) when every face is asked for (``all_faces``)


class FaceScanner:
    """MediaPipe first; OpenCV's Haar cascade when MediaPipe finds nothing (``fallback=True``).

    Args:
        mode: ``"video"`` (frames of one video, in order) or ``"image"`` (independent images).
        max_faces: most faces per frame.
        min_confidence: MediaPipe's thresholds.
        max_side: detection input size (longer side); ``None`` for full size.
        fallback: use the Haar cascade on frames where MediaPipe finds no face. In video mode,
            after a frame where Haar also finds nothing, Haar rests for ``fallback_every - 1``
            frames (a faceless video would otherwise pay about 15 ms per frame for it).
        size, grey, margin: the aligned crops (see :func:`~avemo.faces.align_face`);
            ``size=None`` skips cropping.
        track: assign track ids with a :class:`~avemo.faces.FaceTracker` (video mode).
        keep_history: let the tracker keep every face per track (``--all-faces`` timelines).
        landmark_every: in video mode, run MediaPipe on one frame in ``landmark_every`` and carry its
            faces to the frames after it with optical flow (:func:`~avemo.faces.flow.follow_face`,
            about 1 ms a face); a face the flow loses sends that frame to MediaPipe, and the frames
            after a MediaPipe frame without a face count as faceless until the next one. 2 halves
            MediaPipe's cost (what it changes: ``benchmarks/face_path.py``).
        reframe: in image mode, try a photo where no face is found once more framed (:func:`framed`): a
            tightly cropped face (FER-2013, most face-expression photo sets) gives the detectors no
            context and is often missed as it is (FER-2013 PrivateTest: ``benchmarks/face_photos.py``).
    """

    def __init__(
        self,
        *,
        mode: str = "video",
        max_faces: int = 1,
        min_confidence: float = 0.5,
        max_side: int | None = DEFAULT_MAX_SIDE,
        fallback: bool = True,
        fallback_every: int = 5,
        size: int | None = 112,
        grey: bool = False,
        margin: float = 0.0,
        track: bool = True,
        keep_history: bool = False,
        landmark_every: int = 1,
        reframe: bool = True,
        landmarker: FaceLandmarker | None = None,
    ) -> None:
        self._own_landmarker = landmarker is None
        self.landmarker = landmarker or FaceLandmarker(
            mode=mode, max_faces=max_faces, min_confidence=min_confidence, max_side=max_side
        )
        self.max_faces = max_faces
        self.max_side = max_side
        self.fallback = fallback
        self.fallback_every = max(1, int(fallback_every))
        self._haar_rest = 0
        self._haar: HaarFaceDetector | None = None
        self.size = size
        self.grey = grey
        self.margin = margin
        self.tracker = FaceTracker(keep_history=keep_history) if track else None
        self._count = 0
        self.landmark_every = max(1, int(landmark_every)) if self.landmarker.mode == "video" else 1
        self.reframe = reframe
        self._anchor: tuple[np.ndarray, list[Face]] | None = None  # last MediaPipe frame (grey) and faces
        self._since = 0  # frames carried by flow since then

    @property
    def haar(self) -> HaarFaceDetector:
        if self._haar is None:
            self._haar = HaarFaceDetector(max_faces=self.max_faces)
        return self._haar

    def reset(self) -> None:
        """Start a new video: fresh MediaPipe tracking state, timestamps and track ids."""
        if self.landmarker.mode == "video":
            self.landmarker.reset()
        if self.tracker is not None:
            self.tracker.reset()
        self._count = 0
        self._haar_rest = 0
        self._anchor, self._since = None, 0

    def close(self) -> None:
        if self._own_landmarker:
            self.landmarker.close()

    def __enter__(self) -> FaceScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, image: np.ndarray, timestamp_ms: float | None = None) -> list[Face]:
        """Faces in one frame: MediaPipe's, else (with ``fallback``) Haar's; ``[]`` when none. In image mode
        (with ``reframe``), a photo where neither finds a face is tried once more framed (:func:`framed`), the
        faces mapped back to the photo's pixels."""
        faces = self._detect(image, timestamp_ms)
        if not faces and self.reframe and self.landmarker.mode == "image":
            big, factor, pad = framed(image)
            faces = [f.scaled(1.0 / factor, (-pad / factor, -pad / factor)) for f in self._detect(big, None)]
        return faces

    def _detect(self, image: np.ndarray, timestamp_ms: float | None) -> list[Face]:
        faces = self.landmarker.detect(image, timestamp_ms, max_side=self.max_side)
        if not faces and self.fallback:
            if self._haar_rest > 0:
                self._haar_rest -= 1
            else:
                faces = self.haar.detect(image)
                if not faces and self.landmarker.mode == "video":
                    self._haar_rest = self.fallback_every - 1
        elif faces:
            self._haar_rest = 0
        return faces[: self.max_faces]

    def process(self, image: np.ndarray, time: float | None = None, index: int | None = None) -> FrameFaces:
        """Detect, track and align the faces of one frame (``time`` in seconds)."""
        index = self._count if index is None else int(index)
        self._count = index + 1
        rgb = as_rgb_uint8(image)
        faces = self._follow(rgb) if self._since < self.landmark_every - 1 and self._anchor else None
        if faces is None:
            faces = self.detect(rgb, None if time is None else time * 1000.0)
            if self.landmark_every > 1:
                self._anchor, self._since = (grey(rgb), faces), 0
        else:
            self._since += 1
        main_id = None
        if self.tracker is not None:
            self.tracker.update(faces, index=index, time=time)
            main_id = self.tracker.main_track_id
        crops = []
        if self.size:
            crops = [align_face(rgb, f, self.size, grey=self.grey, margin=self.margin) for f in faces]
        return FrameFaces(
            time=float(time) if time is not None else float("nan"),
            index=index,
            faces=faces,
            crops=crops,
            main_track_id=main_id,
            size=(int(rgb.shape[0]), int(rgb.shape[1])),
        )

    def _follow(self, rgb: np.ndarray) -> list[Face] | None:
        """The anchor frame's faces carried to this frame by optical flow; ``None`` if one is lost."""
        before, faces = self._anchor  # type: ignore[misc]
        after = grey(rgb)
        moved = [follow_face(before, after, f) for f in faces]
        return None if any(f is None for f in moved) else moved  # type: ignore[return-value]

    def iter_frames(self, frames: Iterable[Any], fps: float | None = None) -> Iterator[FrameFaces]:
        """:meth:`process` over frames: ``VideoFrame``-like objects (``.index``, ``.time``,
        ``.image``), ``(time, image)`` pairs, or bare images (time = position / ``fps``, or None)."""
        for pos, fr in enumerate(frames):
            if hasattr(fr, "image"):
                img, t = fr.image, getattr(fr, "time", None)
                idx = pos
            elif isinstance(fr, tuple) and len(fr) == 2:
                t, img = fr
                idx = pos
            else:
                img, t, idx = fr, (pos / fps if fps else None), pos
            yield self.process(img, time=None if t is None else float(t), index=idx)


#: :func:`framed`: the border added on each side, as a share of the photo's longer side, the least size of the
#: framed picture, and the most the photo keeps (a larger one is shrunk first: the detectors see 320 px anyway)
FRAME_PAD, FRAME_MIN_SIDE, FRAME_MAX_PHOTO = 0.5, 256, 640


def framed(image: np.ndarray, pad: float = FRAME_PAD, min_side: int = FRAME_MIN_SIDE,
           max_photo: int = FRAME_MAX_PHOTO) -> tuple[np.ndarray, float, int]:
    """A photo as a detector finds a face best: upscaled (bicubic) so the framed picture is at least ``min_side``
    pixels (or shrunk to ``max_photo`` if larger), then ``pad`` times its longer side of replicated border on each
    side. Returns the framed picture, the scale factor and the border in framed pixels (a framed point ``p`` is
    ``(p - border) / factor`` in the photo)."""
    import cv2

    h, w = image.shape[:2]
    side = max(h, w)
    factor = max_photo / side if side > max_photo else max(1.0, min_side / ((1.0 + 2.0 * pad) * side))
    big = image if factor == 1.0 else cv2.resize(image, (round(w * factor), round(h * factor)),
                                                 interpolation=cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA)
    border = round(pad * max(big.shape[:2]))
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE), factor, border


def detect_faces(
    image: np.ndarray,
    *,
    max_faces: int = 1,
    min_confidence: float = 0.5,
    fallback: bool = True,
    max_side: int | None = 640,
    scanner: FaceScanner | None = None,
) -> list[Face]:
    """Faces in a single RGB image (MediaPipe image mode, Haar fallback); ``[]`` when none.

    Creates and closes a landmarker per call (about 0.1 s); for many images keep a
    ``FaceScanner(mode="image")`` and pass it as ``scanner``.
    """
    if scanner is not None:
        return scanner.detect(image)
    with FaceScanner(
        mode="image",
        max_faces=max_faces,
        min_confidence=min_confidence,
        max_side=max_side,
        fallback=fallback,
        size=None,
        track=False,
    ) as s:
        return s.detect(image)


def iter_scan_video(
    path: str | Path,
    fps: float = 5.0,
    *,
    max_faces: int = 1,
    size: int | None = 112,
    grey: bool = True,
    max_side: int | None = DEFAULT_MAX_SIDE,
    decode_max_side: int | None = DEFAULT_MAX_SIDE,
    fallback: bool = True,
    margin: float = 0.0,
    min_confidence: float = 0.5,
    keep_history: bool = False,
    prefetch: int = 4,
    skip_nonref: bool = False,
    skip_loop_filter: bool = False,
    landmark_every: int = 1,
    scanner: FaceScanner | None = None,
    seconds: dict[str, float] | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[FrameFaces]:
    """Stream :class:`FrameFaces` from a video file: decode at ``fps``, detect, track, align.

    ``decode_max_side`` bounds the decoded frame (the crops are cut from it); ``max_side`` bounds
    MediaPipe's input. With ``prefetch > 0`` a background thread decodes up to that many frames
    ahead (PyAV and MediaPipe both release the GIL, so decoding overlaps detection on a second
    core); memory stays flat, bounded by ``prefetch`` frames. ``skip_nonref`` is passed to
    :func:`avemo.media.iter_frames` (faster decoding: B-frames dropped, fine when ``fps`` is well below
    the source rate); so is ``skip_loop_filter`` (the decoder's deblocking filter skipped).
    ``landmark_every`` is :class:`FaceScanner`'s (a passed ``scanner`` keeps its own).
    A ``seconds`` dict receives the time spent decoding (``"decode"``, in the prefetch thread when there
    is one) and detecting, tracking and aligning (``"faces"``).
    A passed ``scanner`` is reset (new video) and left open; otherwise one is created and closed here.
    ``start`` / ``end``: the stretch of the video scanned (seconds; frame times stay the file's).
    """
    from avemo.media import iter_frames

    own = scanner is None
    sc = scanner or FaceScanner(
        mode="video",
        max_faces=max_faces,
        min_confidence=min_confidence,
        max_side=max_side,
        fallback=fallback,
        size=size,
        grey=grey,
        margin=margin,
        keep_history=keep_history,
        landmark_every=landmark_every,
    )
    if not own:
        sc.reset()
    source: Iterator[Any] = iter_frames(path, fps, max_side=decode_max_side, skip_nonref=skip_nonref,
                                        skip_loop_filter=skip_loop_filter, start=start, end=end)
    if seconds is not None:
        source = _timed(source, seconds, "decode")
    if prefetch > 0:
        source = prefetched(source, prefetch)
    try:
        for fr in source:
            t0 = time.perf_counter()
            ff = sc.process(fr.image, time=fr.time, index=fr.index)
            if seconds is not None:
                seconds["faces"] = seconds.get("faces", 0.0) + time.perf_counter() - t0
            yield ff
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        if own:
            sc.close()


_DONE = object()


def _timed(items: Iterator[Any], seconds: dict[str, float], key: str) -> Iterator[Any]:
    """``items``, adding the time spent producing each to ``seconds[key]``; closing it closes ``items``."""
    try:
        while True:
            t0 = time.perf_counter()
            try:
                x = next(items)
            except StopIteration:
                return
            finally:
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
            yield x
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def prefetched(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """``items`` produced by a background thread, at most ``depth`` ahead; errors are re-raised here.

    Closing the returned generator (or dropping it) stops the thread and closes ``items``.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((_DONE, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=produce, name="avemo-prefetch", daemon=True)
    t.start()
    try:
        while True:
            x, err = q.get()
            if x is _DONE:
                if err is not None:
                    raise err
                return
            yield x
    finally:
        stop.set()
        t.join(timeout=10.0)


def scan_video(path: str | Path, fps: float = 5.0, **kwargs: Any) -> list[FrameFaces]:
    """:func:`iter_scan_video` collected into a list (see there for the options)."""
    return list(iter_scan_video(path, fps, **kwargs))
