"""Stable face identities across frames: greedy IoU matching with a centre-distance fallback."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from avemo.faces.types import Face


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix0, iy0 = max(a[0], b[0]), max(a[1], b[1])
    ix1, iy1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    ua = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


@dataclass
class Track:
    """One face identity: where it was last seen and how much of the video it occupies.

    ``history`` holds ``(index, time, face)`` for every frame the face was seen in when the tracker
    keeps history (``keep_history=True``), for per-track timelines (``--all-faces``).
    """

    id: int
    first_index: int
    last_index: int
    first_time: float | None
    last_time: float | None
    last_box: tuple[float, float, float, float]
    n_frames: int = 0
    total_area: float = 0.0
    total_weight: float = 0.0  # sum over frames of area x score: the "main face" criterion
    history: list[tuple[int, float | None, Face]] = field(default_factory=list, repr=False)

    @property
    def mean_area(self) -> float:
        return self.total_area / self.n_frames if self.n_frames else 0.0


class FaceTracker:
    """Assigns ``track_id`` to the faces of successive frames.

    Matching, per frame: candidate pairs (live track, face) are ranked by IoU of the face box with
    the track's last box; pairs with IoU >= ``iou_threshold`` are taken greedily. Remaining faces
    are then matched to remaining tracks whose last box centre lies within ``max_centre_distance``
    face sizes (sqrt of the track's box area) of the face's centre, nearest first. A face matched
    to nothing starts a new track. A track not seen for more than ``max_gap`` frames retires (it
    stays listed in :attr:`tracks` but never matches again), so short detection gaps keep the id.

    The main face is the track with the largest accumulated ``area x score`` (large, confidently
    present and present for long); :attr:`main_track_id` is that running choice.
    """

    def __init__(
        self,
        *,
        iou_threshold: float = 0.3,
        max_centre_distance: float = 0.6,
        max_gap: int = 10,
        keep_history: bool = False,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.max_centre_distance = max_centre_distance
        self.max_gap = max_gap
        self.keep_history = keep_history
        self.tracks: dict[int, Track] = {}
        self._next_id = 0
        self._frame = -1

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 0
        self._frame = -1

    def live_tracks(self, index: int | None = None) -> list[Track]:
        i = self._frame if index is None else index
        return [t for t in self.tracks.values() if i - t.last_index <= self.max_gap + 1]

    @property
    def main_track_id(self) -> int | None:
        if not self.tracks:
            return None
        return max(self.tracks.values(), key=lambda t: (t.total_weight, -t.id)).id

    @property
    def main_track(self) -> Track | None:
        tid = self.main_track_id
        return None if tid is None else self.tracks[tid]

    def update(self, faces: list[Face], index: int | None = None, time: float | None = None) -> list[Face]:
        """Set ``track_id`` on ``faces`` (in place) for frame ``index`` and return them.

        ``index`` counts sampled frames (default: one more than the previous call); the gap
        tolerance is in these units.
        """
        index = self._frame + 1 if index is None else int(index)
        self._frame = index
        live = [t for t in self.tracks.values() if 0 < index - t.last_index <= self.max_gap + 1]
        pairs = []
        for ti, t in enumerate(live):
            for fi, f in enumerate(faces):
                iou = box_iou(t.last_box, f.box)
                if iou >= self.iou_threshold:
                    pairs.append((-iou, ti, fi))
        pairs.sort()
        used_t: set[int] = set()
        match: dict[int, Track] = {}
        for _, ti, fi in pairs:
            if ti in used_t or fi in match:
                continue
            used_t.add(ti)
            match[fi] = live[ti]
        dist_pairs = []
        for ti, t in enumerate(live):
            if ti in used_t:
                continue
            b = t.last_box
            tw, th = b[2] - b[0], b[3] - b[1]
            scale = math.sqrt(max(tw * th, 1.0))
            tc = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
            for fi, f in enumerate(faces):
                if fi in match:
                    continue
                c = f.centre
                d = math.hypot(c[0] - tc[0], c[1] - tc[1]) / scale
                if d <= self.max_centre_distance:
                    dist_pairs.append((d, ti, fi))
        dist_pairs.sort()
        for _, ti, fi in dist_pairs:
            if ti in used_t or fi in match:
                continue
            used_t.add(ti)
            match[fi] = live[ti]
        for fi, f in enumerate(faces):
            t = match.get(fi)
            if t is None:
                t = Track(
                    id=self._next_id,
                    first_index=index,
                    last_index=index,
                    first_time=time,
                    last_time=time,
                    last_box=f.box,
                )
                self.tracks[t.id] = t
                self._next_id += 1
            t.last_index = index
            t.last_time = time
            t.last_box = f.box
            t.n_frames += 1
            t.total_area += f.area
            t.total_weight += f.area * f.score
            f.track_id = t.id
            if self.keep_history:
                t.history.append((index, time, f))
        return faces
