"""Draw an analysis onto its video (the face box, the current label and probability bars; audio kept) or its
photo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from avemo.inference.result import EmotionTimeline
from avemo.labels import EMOTIONS, emotion_rgb

_COLOURS = {name: emotion_rgb(name) for name in EMOTIONS}  # RGB, one per emotion


def annotate_video(source: str | Path, timeline: EmotionTimeline, out_path: str | Path, *,
                   decode_side: int | None = None) -> Path:
    """Write ``out_path`` (mp4): every frame of ``source`` with the face box and the fused emotion of the
    window around it; the source's audio is kept. With several faces followed (``all_faces``) every face gets its
    box in the colour of its own fused emotion, marked with its track and label, and the bars show the face seen
    longest."""
    from avemo.media import iter_frames, probe, write_video

    info = probe(source)
    side = decode_side or int(timeline.attrs.get("config", {}).get("decode_side", 720))
    tracks = timeline.tracks
    main = timeline.groupby("track")["face"].sum().idxmax() if len(tracks) > 1 else tracks[0]
    table = timeline.boxes
    per_track = []  # (track, boxes (time x0 y0 x1 y1), window centres, labels) of every face
    for track in tracks:
        rows = timeline if track is None else timeline[timeline["track"] == track]
        mine = table if track is None else table[table["track"] == track]
        per_track.append((track, mine[["time", "x0", "y0", "x1", "y1"]].to_numpy(dtype=np.float32),
                          ((rows["start"] + rows["end"]) / 2).to_numpy(dtype=np.float64), rows["label"].to_numpy()))
    shown = timeline if main is None else timeline[timeline["track"] == main]
    centres = ((shown["start"] + shown["end"]) / 2).to_numpy(dtype=np.float64)
    fused = np.nan_to_num(shown.probabilities("fused"))
    several = len(tracks) > 1

    def frames() -> Iterator[np.ndarray]:
        for fr in iter_frames(source, None, max_side=side):
            image = fr.image.copy()
            for track, boxes, mids, labels in per_track:
                if not len(boxes):
                    continue
                k = int(np.abs(boxes[:, 0] - fr.time).argmin())
                if abs(boxes[k, 0] - fr.time) > 0.5:
                    continue
                x0, y0, x1, y1 = (int(v) for v in boxes[k, 1:])
                label = labels[int(np.abs(mids - fr.time).argmin())] if len(mids) else None
                if not several:
                    cv2.rectangle(image, (x0, y0), (x1, y1), (60, 230, 90), 2)
                    continue
                colour = _COLOURS.get(label, (200, 200, 200))
                cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
                scale = max(0.4, image.shape[0] / 1000)
                cv2.putText(image, f"{track}: {label if isinstance(label, str) else '-'}", (x0, max(12, y0 - 6)),
                            cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
            if len(centres):
                w = int(np.abs(centres - fr.time).argmin())
                _draw_panel(image, fused[w], shown["label"].iloc[w], fr.time, None if main is None or not several
                            else f"face {main}")
            yield image

    return write_video(out_path, frames(), fps=float(info.fps or 25.0), audio_from=source)


def annotate_photo(source: str | Path, timeline: EmotionTimeline, out_path: str | Path, *,
                   min_side: int = 360) -> Path:
    """Write ``out_path`` (an image; PNG for ``.png``): the photo, enlarged to ``min_side`` pixels on its shorter
    side if smaller, with every face's box and the first face's fused emotion as bars."""
    from avemo.media import read_image

    image = read_image(source)
    factor = max(1.0, min_side / min(image.shape[:2]))
    if factor > 1.0:
        image = cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                           interpolation=cv2.INTER_CUBIC)
    for x0, y0, x1, y1 in timeline.boxes[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.float64) * factor:
        cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), (60, 230, 90), 2)
    if len(timeline):
        _draw_panel(image, np.nan_to_num(timeline.probabilities("fused")[0]), timeline["label"].iloc[0], None)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{out}: cannot be written")
    return out


def _draw_panel(image: np.ndarray, probs: np.ndarray, label: object, t: float | None, who: str | None = None
                ) -> None:
    """Label, time (``None``: none, a photo), whose (``who``, e.g. "face 1") and one bar per emotion in the top-left
    corner (in place)."""
    h = image.shape[0]
    scale = max(0.4, h / 1000)
    row = int(22 * scale / 0.5)
    x0, y0, bar_w = 8, 8, int(120 * scale / 0.5)
    panel_h = row * (len(EMOTIONS) + 1) + 8
    overlay = image.copy()
    cv2.rectangle(overlay, (x0 - 4, y0 - 4), (x0 + bar_w + int(90 * scale / 0.5), y0 + panel_h), (0, 0, 0), -1)
    cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)
    text = (f"{who}: " if who else "") + f"{label if isinstance(label, str) else '-'}" + (
        "" if t is None else f"  {t:5.1f}s")
    cv2.putText(image, text, (x0, y0 + row - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    for i, name in enumerate(EMOTIONS):
        y = y0 + row * (i + 1)
        length = int(bar_w * float(probs[i]))
        cv2.rectangle(image, (x0, y + 4), (x0 + length, y + row - 4), _COLOURS[name], -1)
        cv2.putText(image, name, (x0 + bar_w + 4, y + row - 6), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8,
                    (255, 255, 255), 1, cv2.LINE_AA)
