"""avemo.media: decoding, sampling, rotation, audio, images, writing and errors, on generated and real files.

The generated files are tiny (64x48, a second or two) and made with PyAV in ``tmp_path``: a white
marker in the top-left corner, a green bar that moves one column per frame, and a 440 Hz tone.
"""

from __future__ import annotations

import os
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from avemo.errors import MediaError
from avemo.media import (
    MediaInfo,
    VideoFrame,
    is_image,
    iter_audio,
    iter_frames,
    probe,
    read_audio,
    read_image,
    write_video,
)

W, H = 64, 48
TONE = 440.0


def _picture(i: int, w: int = W, h: int = H) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:8, :8] = 255  # the marker: top-left corner
    img[:, (8 + 2 * i) % w] = (0, 255, 0)  # a moving bar
    return img


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    x = (0.5 * np.sin(2 * np.pi * TONE * t)).astype(np.float32)
    return np.repeat(x[None, :], channels, axis=0)


def make_media(
    path: Path,
    *,
    video: str | None = "libx264",
    audio: str | None = None,
    seconds: float = 1.0,
    fps: int = 15,
    size: tuple[int, int] = (W, H),
    rotation: float | None = None,
    pts_ms: list[int] | None = None,
    audio_rate: int = 16000,
    channels: int = 1,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a small media file; ``pts_ms`` gives irregular frame times (variable frame rate)."""
    packets: list[av.Packet] = []
    with av.open(str(path), "w", options=options or {}) as out:
        if video:
            vs = out.add_stream(video, rate=fps)
            vs.width, vs.height = size
            vs.pix_fmt = "yuvj420p" if video == "mjpeg" else "yuv420p"
            if video == "libx264":
                vs.codec_context.options = {"preset": "ultrafast"}
            if rotation is not None:
                vs.set_display_rotation(rotation)
            if pts_ms is not None:
                vs.codec_context.time_base = Fraction(1, 1000)
        if audio:
            aus = out.add_stream(audio, rate=audio_rate)
            aus.layout = "stereo" if channels == 2 else "mono"
        if video:
            times = pts_ms if pts_ms is not None else list(range(round(seconds * fps)))
            for i, pts in enumerate(times):
                frame = av.VideoFrame.from_ndarray(_picture(i, *size), format="rgb24")
                frame.pts = pts
                frame.time_base = Fraction(1, 1000) if pts_ms is not None else Fraction(1, fps)
                packets += vs.encode(frame)
            packets += vs.encode(None)
        if audio:
            x = _tone(seconds, audio_rate, channels)
            step = 1024
            for s in range(0, x.shape[1], step):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(x[:, s : s + step]), format="fltp", layout=aus.layout.name
                )
                frame.sample_rate = audio_rate
                frame.pts = s
                packets += aus.encode(frame)
            packets += aus.encode(None)
        # interleaved by time, as real files are (AVI's reader mis-times a non-interleaved file)
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        for p in packets:
            out.mux(p)
    return path


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


# ---------------------------------------------------------------- formats


VIDEO_FORMATS = [
    ("mp4", "libx264", "aac", 16000),
    ("mov", "libx264", "aac", 44100),
    ("mkv", "libvpx-vp9", "libopus", 48000),
    ("webm", "libvpx-vp9", "libopus", 48000),
    ("avi", "mpeg4", "ac3", 48000),  # (mp3 in AVI written by PyAV gets mis-timed video: a muxer quirk)
    ("avi", "mjpeg", "pcm_s16le", 22050),
    ("flv", "flv", "libmp3lame", 22050),
]


@pytest.mark.parametrize(("ext", "vcodec", "acodec", "rate"), VIDEO_FORMATS, ids=lambda v: str(v))
def test_video_formats_decode_frames_and_audio(tmp_path, ext, vcodec, acodec, rate):
    path = make_media(tmp_path / f"clip.{ext}", video=vcodec, audio=acodec, audio_rate=rate, seconds=1.0)
    info = probe(path)
    assert isinstance(info, MediaInfo)
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.fps == pytest.approx(15, rel=0.02)
    assert info.duration == pytest.approx(1.0, abs=0.15)
    assert info.audio_rate == rate and info.audio_channels == 1

    frames = list(iter_frames(path))
    assert len(frames) == 15
    assert [f.index for f in frames] == list(range(15))
    assert all(isinstance(f, VideoFrame) for f in frames)
    times = np.array([f.time for f in frames])
    assert times[0] == pytest.approx(0.0, abs=1e-3)
    assert np.allclose(np.diff(times), 1 / 15, atol=2e-3)
    img = frames[3].image
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert img[2:6, 2:6].mean() > 200  # the marker, top-left
    assert img[40:46, 40:46].mean() < 60
    assert abs(int(np.argmax(img[24, :, 1].astype(int) - img[24, :, 0]) - (8 + 2 * 3))) <= 1  # the bar

    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(16000, abs=0.08 * 16000)
    assert np.abs(audio).max() <= 1.0
    assert _dominant_hz(audio[2000:14000], 16000) == pytest.approx(TONE, abs=5)


@pytest.mark.parametrize(
    ("ext", "codec", "rate", "channels"),
    [
        ("wav", "pcm_s16le", 48000, 2),
        ("wav", "pcm_s16le", 16000, 1),
        ("flac", "flac", 44100, 2),
        ("mp3", "libmp3lame", 44100, 2),
        ("m4a", "aac", 48000, 1),
    ],
    ids=lambda v: str(v),
)
def test_audio_formats_read_as_16k_mono(tmp_path, ext, codec, rate, channels):
    path = make_media(
        tmp_path / f"tone.{ext}", video=None, audio=codec, audio_rate=rate, channels=channels, seconds=1.5
    )
    info = probe(path)
    assert not info.has_video and info.has_audio
    assert (info.audio_rate, info.audio_channels) == (rate, channels)
    assert info.duration == pytest.approx(1.5, abs=0.1)

    x = read_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == pytest.approx(24000, abs=0.06 * 16000)
    assert _dominant_hz(x[2000:22000], 16000) == pytest.approx(TONE, abs=5)
    # identical channels average to the same tone (RMS 0.5/sqrt 2): a downmix, not a sum
    assert np.sqrt(np.mean(x[4000:20000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), abs=0.03)

    x8 = read_audio(path, sample_rate=8000)
    assert len(x8) == pytest.approx(len(x) / 2, abs=200)

    chunks = list(iter_audio(path, chunk_seconds=0.5))
    assert [len(c) for c in chunks[:-1]] == [8000] * (len(chunks) - 1)
    assert all(c.dtype == np.float32 for c in chunks)
    assert np.allclose(np.concatenate(chunks), x, atol=1e-6)

    with pytest.raises(MediaError, match="no video track"):
        iter_frames(path)


# ---------------------------------------------------------------- rotation, VFR, sampling, scaling


def test_rotated_video_comes_out_upright(tmp_path):
    # stored 64x48 landscape, to be displayed turned 90 degrees counter-clockwise
    path = make_media(tmp_path / "phone.mp4", rotation=90)
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (H, W)
    frame = next(iter(iter_frames(path)))
    img = frame.image
    assert img.shape == (W, H, 3)
    # the top-left marker of the stored picture is bottom-left once turned counter-clockwise
    assert img[-6:-2, 2:6].mean() > 200
    assert img[2:6, 2:6].mean() < 60 and img[2:6, -6:-2].mean() < 60 and img[-6:-2, -6:-2].mean() < 60
    assert np.array_equal(img, np.rot90(next(iter(iter_frames(make_media(tmp_path / "flat.mp4")))).image))

    small = next(iter(iter_frames(path, max_side=32)))
    assert small.image.shape == (32, 24, 3)


def test_rotation_180_and_270(tmp_path):
    for deg, corner in ((180, (slice(-6, -2), slice(-6, -2))), (-90, (slice(2, 6), slice(-6, -2)))):
        path = make_media(tmp_path / f"r{deg}.mp4", rotation=deg)
        assert probe(path).rotation == deg % 360
        img = next(iter(iter_frames(path))).image
        assert img.shape == ((H, W, 3) if deg == 180 else (W, H, 3))
        assert img[corner].mean() > 200, deg


VFR_MS = [0, 40, 80, 200, 230, 500, 520, 540, 900, 1000]


def _nearest_expected(times: list[float], fps: float) -> list[float]:
    out: list[float] = []
    t = 0.0
    k = 0
    while t <= times[-1] + 1e-9:
        best = min(times, key=lambda x: (abs(x - t), x))
        if not out or best > out[-1]:
            out.append(best)
        k += 1
        t = k / fps
    return out


def test_variable_frame_rate_timestamps_and_sampling(tmp_path):
    path = make_media(tmp_path / "vfr.mkv", pts_ms=VFR_MS, fps=25)
    times = [f.time for f in iter_frames(path)]
    assert times == pytest.approx([ms / 1000 for ms in VFR_MS], abs=1e-3)

    sampled = [f.time for f in iter_frames(path, fps=10)]
    assert sampled == pytest.approx(_nearest_expected([ms / 1000 for ms in VFR_MS], 10), abs=1e-3)
    assert sampled == pytest.approx([0.0, 0.08, 0.2, 0.23, 0.5, 0.54, 0.9, 1.0], abs=1e-3)
    # above the source's rate nothing is invented: every frame once
    assert [f.time for f in iter_frames(path, fps=100)] == pytest.approx(times, abs=1e-3)
    assert [f.index for f in iter_frames(path, fps=100)] == list(range(len(VFR_MS)))


def test_fps_sampling_start_end_and_max_side(tmp_path):
    path = make_media(tmp_path / "c.mp4", seconds=2.0, fps=15, size=(160, 90))
    assert len(list(iter_frames(path, fps=5))) == 10
    times = [f.time for f in iter_frames(path, fps=5)]
    assert times == pytest.approx([k / 5 for k in range(10)], abs=1 / 30 + 1e-3)

    part = list(iter_frames(path, start=0.5, end=1.5))
    assert part[0].time == pytest.approx(0.5, abs=1 / 15) and part[-1].time < 1.5
    assert len(part) == pytest.approx(15, abs=1)
    assert part[0].index == 0  # index counts the frames handed out
    # after a seek the picture is the right one: the bar of frame round(0.5*15)
    j = round(part[0].time * 15)
    bar = int(np.argmax(part[0].image[45, :, 1].astype(int) - part[0].image[45, :, 0]))
    assert abs(bar - (8 + 2 * j) % 160) <= 1

    img = next(iter(iter_frames(path, max_side=80))).image
    assert img.shape == (45, 80, 3)
    assert next(iter(iter_frames(path, max_side=1000))).image.shape == (90, 160, 3)

    with pytest.raises(ValueError):
        iter_frames(path, fps=0)
    with pytest.raises(ValueError):
        iter_frames(path, start=2, end=1)


# ---------------------------------------------------------------- images


def test_read_image_and_is_image(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[0, 0] = (255, 0, 0)  # red, in RGB
    p = tmp_path / "face.png"
    assert cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    got = read_image(p)
    assert got.shape == (20, 30, 3) and got.dtype == np.uint8
    assert tuple(got[0, 0]) == (255, 0, 0)
    assert is_image(p) and is_image("A.JPG") and is_image("x.jpeg") and not is_image("v.mp4")

    bad = tmp_path / "bad.jpg"
    bad.write_text("not a picture")
    with pytest.raises(MediaError, match="not a readable image"):
        read_image(bad)
    with pytest.raises(MediaError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_image(tmp_path / "empty.png")


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_media_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    text2 = tmp_path / "notes.txt"
    text2.write_text("this is not a video\n" * 50)
    jpg = tmp_path / "photo.jpg"
    cv2.imencode(".jpg", _picture(0))[1].tofile(str(jpg))
    jpg_as_mp4 = tmp_path / "photo.mp4"
    jpg_as_mp4.write_bytes(jpg.read_bytes())
    good = make_media(tmp_path / "good.mp4", audio="aac", seconds=2.0)
    half = tmp_path / "half.mp4"  # moov atom at the end: the cut file has no index
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    cases = [
        (tmp_path / "missing.mp4", "not found"),
        (empty, "empty"),
        (text, "cannot be opened as media"),
        (text2, "not a media file"),
        (half, "cannot be opened as media"),
        (tmp_path, "directory"),
    ]
    for path, msg in cases:
        for call in (probe, iter_frames, read_audio, iter_audio):
            with pytest.raises(MediaError, match=msg) as e:
                call(path)
            assert e.value.path == str(path)
    for path in (jpg, jpg_as_mp4):
        with pytest.raises(MediaError, match="is an image, not a video"):
            iter_frames(path)


def test_truncated_file_yields_what_it_can_then_raises(tmp_path):
    # moov atom first (faststart): the index survives the cut, the data does not
    good = make_media(tmp_path / "fs.mp4", audio="aac", seconds=2.0, options={"movflags": "+faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert probe(cut).duration == pytest.approx(2.0, abs=0.1)  # the headers are intact
    got = []
    with pytest.raises(MediaError, match="truncated or corrupt"):
        for f in iter_frames(cut):
            got.append(f)
    assert 0 < len(got) < 30
    with pytest.raises(MediaError, match="truncated or corrupt"):
        read_audio(cut)


def test_no_audio_track_message(tmp_path):
    silent = make_media(tmp_path / "silent.mp4")
    assert not probe(silent).has_audio
    with pytest.raises(MediaError, match="has no audio track"):
        read_audio(silent)
    with pytest.raises(MediaError, match="has no audio track"):
        iter_audio(silent)


# ---------------------------------------------------------------- writing


def test_write_video_roundtrip_keeps_audio(tmp_path):
    src = make_media(tmp_path / "src.mkv", video="libvpx-vp9", audio="libopus", audio_rate=48000, seconds=2.0)
    out = write_video(tmp_path / "out.mp4", (f for f in iter_frames(src)), fps=15, audio_from=src)
    info = probe(out)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (W, H) and info.fps == pytest.approx(15)
    frames = list(iter_frames(out))
    assert len(frames) == 30
    assert frames[0].image[2:6, 2:6].mean() > 200
    audio = read_audio(out)
    assert len(audio) == pytest.approx(2.0 * 16000, abs=0.05 * 16000)  # cut at the video's end
    assert _dominant_hz(audio[4000:28000], 16000) == pytest.approx(TONE, abs=5)


def test_write_video_odd_size_silent_source_and_bad_frames(tmp_path):
    imgs = [_picture(i, 33, 21) for i in range(10)]
    out = write_video(tmp_path / "odd.mp4", iter(imgs), fps=29.97, audio_from=make_media(tmp_path / "s.mp4"))
    info = probe(out)
    assert (info.width, info.height) == (34, 22) and not info.has_audio
    assert info.fps == pytest.approx(29.97, abs=0.01)

    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", [imgs[0], _picture(0)], fps=10)
    assert not (tmp_path / "bad.mp4").exists()
    with pytest.raises(MediaError, match="not found"):
        write_video(tmp_path / "x.mp4", iter(imgs), fps=10, audio_from=tmp_path / "nope.wav")
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(MediaError):
        write_video(tmp_path / "no-such-dir" / "x.mp4", iter(imgs), fps=10)


# ---------------------------------------------------------------- memory


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _rss_growth(items) -> int:
    """Peak resident memory while consuming ``items``, above the level after the first few."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    base = peak = 0
    for i, _ in enumerate(items):
        if i == 20:
            base = peak = rss()
        elif i > 20 and i % 25 == 0:
            peak = max(peak, rss())
    return peak - base


@pytest.mark.slow
def test_memory_is_flat_in_length(tmp_path):
    size = (160, 120)  # 57.6 kB a frame: keeping every frame of 60 s would cost 86 MB
    short = make_media(tmp_path / "10s.mp4", audio="aac", seconds=10, fps=25, size=size)
    long = make_media(tmp_path / "60s.mp4", audio="aac", seconds=60, fps=25, size=size)
    assert sum(1 for _ in iter_frames(long)) == 1500

    def frames(p):
        return lambda: sum(1 for _ in iter_frames(p))

    def audio(p):
        return lambda: sum(len(c) for c in iter_audio(p, chunk_seconds=1.0))

    # Python-side allocations (numpy chunks, frame objects): the same peak for 6x the length
    for make in (frames, audio):
        p10, p60 = _peak_bytes(make(short)), _peak_bytes(make(long))
        print(f"peak traced memory, {make.__name__}: 10 s {p10 / 1e3:.0f} kB, 60 s {p60 / 1e3:.0f} kB")
        assert p60 < 1.5 * p10 + 256 * 1024, (make.__name__, p10, p60)
    # decoder-side buffers (the images live in FFmpeg frames, unseen by tracemalloc): resident memory
    if os.path.exists("/proc/self/statm"):
        g10, g60 = _rss_growth(iter_frames(short)), _rss_growth(iter_frames(long))
        print(f"resident memory growth, frames: 10 s {g10 / 1e6:.1f} MB, 60 s {g60 / 1e6:.1f} MB")
        assert g60 < g10 + 16e6, (g10, g60)


# ---------------------------------------------------------------- real data


def test_cremad_flv_clips_decode_with_audio(clips):
    for name in ("cremad_ang", "cremad_hap", "cremad_sad"):
        path = clips[name]
        info = probe(path)
        assert info.has_video and info.has_audio
        assert (info.video_codec, info.width, info.height) == ("vp6f", 480, 360)
        assert info.fps == pytest.approx(29.97, abs=0.01)
        assert 1.5 < info.duration < 3.0
        x = read_audio(path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert len(x) / 16000 == pytest.approx(info.duration, abs=0.1)
        assert 0.01 < np.abs(x).max() <= 1.0
        frames = list(iter_frames(path, fps=5, max_side=240))
        assert len(frames) == pytest.approx(info.duration * 5, abs=1.5)
        assert frames[0].image.shape == (180, 240, 3)


def test_ravdess_mp4_has_frames_but_no_audio(clips):
    path = clips["ravdess_mp4"]
    info = probe(path)
    assert info.has_video and not info.has_audio
    assert (info.width, info.height) == (720, 720)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == pytest.approx(4.07, abs=0.05)
    assert info.n_frames == pytest.approx(122, abs=2)
    with pytest.raises(MediaError, match="has no audio track"):
        read_audio(path)
    frames = list(iter_frames(path, fps=5))
    assert len(frames) == pytest.approx(20, abs=1)
    assert frames[0].image.shape == (720, 720, 3) and frames[0].image.std() > 5
    assert [f.time for f in frames] == pytest.approx([k / 5 for k in range(len(frames))], abs=1 / 59)


def test_ravdess_wavs_come_out_16k_mono(clips):
    stereo = clips["ravdess_stereo_wav"]
    info = probe(stereo)
    assert (info.audio_rate, info.audio_channels) == (48000, 2)
    x = read_audio(stereo)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == pytest.approx(info.duration * 16000, abs=2)
    y = read_audio(clips["ravdess_wav"])
    assert len(y) == pytest.approx(probe(clips["ravdess_wav"]).duration * 16000, abs=2)


def test_ravdess_speech_flac_reads(data):
    flacs = sorted((data / "ravdess-speech-16k").glob("Actor_*/*.flac"))
    if not flacs:
        pytest.skip("no FLAC under ravdess-speech-16k")
    info = probe(flacs[0])
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("flac", 16000, 1)
    x = read_audio(flacs[0])
    assert len(x) == pytest.approx(info.duration * 16000, abs=2)
    assert 2.5 < len(x) / 16000 < 6.0


def test_skip_nonref_samples_the_same_instants_within_a_frame(clips):
    from avemo.media import iter_frames

    full = [f.time for f in iter_frames(clips["cremad_hap"], 5.0)]
    fast = [f.time for f in iter_frames(clips["cremad_hap"], 5.0, skip_nonref=True)]
    assert len(fast) == len(full)
    assert max(abs(a - b) for a, b in zip(full, fast)) <= 2.5 / 29.97



def test_skip_loop_filter_takes_effect_on_h264_and_moves_pixels_by_little(tmp_path):
    """The analyzer's default decoding skips H.264's deblocking filter: the same frames at the same times, pixels
    that differ (the option reaches the decoder) but by about a level of 255 at most on average. A video whose key
    frames are too far apart for the error to stay small (here: one key frame) is decoded in full."""
    from avemo.bench.speed import build_test_video
    from avemo.media import iter_frames
    from avemo.media.video import MAX_KEY_FRAME_GAP, key_frame_gap

    video = build_test_video(4.0, tmp_path / "h264.mp4", width=640, height=360)
    assert key_frame_gap(video) <= MAX_KEY_FRAME_GAP
    full = list(iter_frames(video, 5.0, skip_nonref=True))
    fast = list(iter_frames(video, 5.0, skip_nonref=True, skip_loop_filter=True))
    assert [f.time for f in fast] == [f.time for f in full] and len(full) >= 20
    diff = np.array([np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).mean() for a, b in zip(full, fast)])
    assert diff.max() > 0 and diff.mean() < 1.5, diff

    long_gop = tmp_path / "long_gop.mp4"  # the same frames, 12 s of them, with a single key frame
    with av.open(str(long_gop), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=100000:min-keyint=100000:scenecut=0"}
        for k in range(360):
            image = full[k % len(full)].image[::2, ::2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert key_frame_gap(long_gop) > MAX_KEY_FRAME_GAP
    plain = [f.image for f in iter_frames(long_gop, 2.0)]
    asked = [f.image for f in iter_frames(long_gop, 2.0, skip_loop_filter=True)]
    assert len(plain) >= 24 and all(np.array_equal(a, b) for a, b in zip(plain, asked))


def test_a_download_that_is_a_web_page_or_too_large_is_refused_with_the_reason(http_site, tmp_path, monkeypatch):
    """:func:`avemo.media.fetch.fetch` on a real HTTP server: a web page (a video site's watch page) and a file
    over the limit (stated by Content-Length, or counted as it comes when no length is sent) are refused with the
    URL and the reason, leaving no partial file; within the limit the bytes arrive whole."""
    import http.server
    import threading

    from avemo.media.fetch import fetch, max_download_bytes

    base, site, _ = http_site
    (site / "watch.html").write_text("<html><body>a video page</body></html>")
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (site / "big.mp4").write_bytes(payload)
    folder = tmp_path / "downloads"
    with pytest.raises(MediaError, match=r"watch\.html.*is a web page \(text/html\), not a media file"):
        fetch(f"{base}/watch.html", folder)
    with pytest.raises(MediaError, match=r"big\.mp4.*is 300,000 bytes, more than the 100,000 bytes"):
        fetch(f"{base}/big.mp4", folder, max_bytes=100_000)
    assert fetch(f"{base}/big.mp4", folder, max_bytes=300_000).read_bytes() == payload

    class NoLength(http.server.BaseHTTPRequestHandler):  # close-delimited body, no Content-Length
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoLength)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/stream.mp4"
        with pytest.raises(MediaError, match="sent more than the 100,000 bytes"):
            fetch(url, folder, max_bytes=100_000)
        monkeypatch.setenv("AVEMO_MAX_DOWNLOAD_MB", "0.2")
        assert max_download_bytes() == 200_000
        with pytest.raises(MediaError, match=r"the 200,000 bytes a download may be \(AVEMO_MAX_DOWNLOAD_MB\)"):
            fetch(url, folder)
    finally:
        httpd.shutdown()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in folder.glob("big-*.mp4*")])  # no .part left behind


def test_a_public_only_download_refuses_local_and_private_addresses(http_site, tmp_path):
    """``public_only`` (what the service fetches with): the address each connection reached is judged, so a
    loopback server (by address or by name) is refused before any request is sent (a redirect opens its own
    connection, judged alike)."""
    from avemo.media.fetch import fetch, is_public

    base, site, requested = http_site
    (site / "clip.mp4").write_bytes(b"\0" * 100)
    port = base.rsplit(":", 1)[1]
    for url in (f"{base}/clip.mp4", f"http://localhost:{port}/clip.mp4"):
        with pytest.raises(MediaError, match=r"at (127\.0\.0\.1|::1), not a public address"):
            fetch(url, tmp_path / "d", public_only=True)
    assert not requested  # refused before a request was sent
    assert fetch(f"{base}/clip.mp4", tmp_path / "d").stat().st_size == 100  # the default fetches anywhere
    assert not any(is_public(a) for a in ("127.0.0.1", "10.1.2.3", "192.168.0.5", "172.16.0.1", "169.254.169.254",
                                          "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                                          "224.0.0.1"))
    assert all(is_public(a) for a in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"))
