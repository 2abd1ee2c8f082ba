"""``avemo inspect``: what the front ends find in a file (streams, faces per frame, speech)."""

from __future__ import annotations

import argparse

HELP = "show what the front ends find in a media file: streams, faces per frame, speech segments"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a video, audio file or photo (or its http(s) URL)")
    p.add_argument("--fps", type=float, default=5.0, help="face sampling rate (default 5)")


def run(args: argparse.Namespace) -> int:
    from avemo.media.fetch import fetch, is_url

    path = args.path
    if is_url(path):  # downloaded once, as avemo.analyze does
        from avemo.config import cache_root

        path = str(fetch(path, cache_root() / "downloads"))
    print(describe(path, fps=args.fps))
    return 0


def describe(path: str, *, fps: float = 5.0) -> str:
    """A few lines on the file's streams, the faces found and the speech segments (a photo: its size and faces)."""
    import numpy as np

    from avemo.audio import VoiceActivityDetector
    from avemo.faces import scan_video
    from avemo.media import probe, read_audio
    from avemo.media.image import is_image

    if is_image(path):
        return describe_photo(path)
    info = probe(path)
    lines = [f"{path}: {info.duration:.2f} s"]
    if info.has_video:
        lines.append(f"  video: {info.video_codec} {info.width}x{info.height} @ {info.fps:.2f} fps, "
                     f"rotation {info.rotation}")
        frames = scan_video(path, fps, size=None)
        found = np.array([len(f.faces) for f in frames])
        lines.append(f"  faces: found in {int((found > 0).sum())}/{len(frames)} frames sampled at {fps:g} fps"
                     + (f", {int(found.max())} at most in one frame" if len(found) else ""))
        with_pose = [f.main.pose for f in frames if f.main is not None and f.main.pose is not None]
        if with_pose:
            yaw, pitch, roll = np.mean(with_pose, axis=0)
            lines.append(f"  head pose (mean): yaw {yaw:+.1f}, pitch {pitch:+.1f}, roll {roll:+.1f} degrees")
    else:
        lines.append("  video: none")
    if info.has_audio:
        wave = read_audio(path, 16000)
        segments = VoiceActivityDetector().segments(wave, 16000)
        lines.append(f"  audio: {info.audio_codec} {info.audio_rate} Hz, {info.audio_channels} ch; "
                     f"speech in {len(segments)} segment(s): "
                     + ", ".join(f"{s.start:.2f}-{s.end:.2f} s" for s in segments))
    else:
        lines.append("  audio: none (no audio track)")
    return "\n".join(lines)


def describe_photo(path: str) -> str:
    """The photo's size and the faces the analyzer's detection finds in it: as it is, only framed (the second try),
    or none (then whether ``avemo analyze`` reads it whole as a face crop)."""
    from avemo.faces import FaceScanner
    from avemo.inference.analyzer import whole_photo_ok
    from avemo.media import read_image

    image = read_image(path)
    h, w = image.shape[:2]
    with FaceScanner(mode="image", size=None, track=False, max_faces=4, reframe=False) as sc:
        faces, how = sc.detect(image), ""
        if not faces:
            sc.reframe = True
            faces, how = sc.detect(image), " (only on the framed photo)"
    lines = [f"{path}: photo {w}x{h}"]
    if faces:
        sources = ", ".join(sorted({f.source for f in faces}))
        lines.append(f"  faces: {len(faces)} found{how} by {sources}")
        main = max(faces, key=lambda f: f.area * f.score)
        if main.pose is not None:
            yaw, pitch, roll = main.pose
            lines.append(f"  head pose (largest face): yaw {yaw:+.1f}, pitch {pitch:+.1f}, roll {roll:+.1f} degrees")
    else:
        lines.append("  faces: none found" + ("; `avemo analyze` reads the whole photo as a face crop"
                                              if whole_photo_ok(image) else ""))
    return "\n".join(lines)
