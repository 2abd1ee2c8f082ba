"""The speed benchmark of ``avemo analyze``: a 60 s 720p talking-face video with audio, built from the
shared RAVDESS clip (its face video padded to 1280x720, its own 48 kHz speech as the sound track,
looped), analysed in a fresh child process so peak memory is the analysis's own."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import cache_root, data_root
from avemo.errors import AvemoError
from avemo.provenance import git_commit, machine, peak_rss_mb

CLIP = Path("clips/ravdess/01-01-08-02-01-01-19.mp4")
WAV = Path("clips/ravdess/03-01-08-02-01-01-19.wav")


def build_test_video(seconds: float = 60.0, out: Path | None = None, *, width: int = 1280,
                     height: int = 720, faces: int = 1) -> Path:
    """Loop the shared RAVDESS clip (centred on a ``width`` x ``height`` canvas) with its own audio to
    ``seconds``; H.264 + AAC mp4, cached under ``$AVEMO_CACHE/bench``. ``faces=2``: two people side by side (the
    clip at half the width, and its mirror image beside it)."""
    import av

    from avemo.media import iter_frames, probe, read_audio

    src, wav = data_root() / CLIP, data_root() / WAV
    for p in (src, wav):
        if not p.is_file():
            raise AvemoError(f"{p}: the speed benchmark needs the shared clips (set AVEMO_DATA)")
    if faces not in (1, 2):
        raise AvemoError(f"build_test_video: faces must be 1 or 2, got {faces}")
    out = out or cache_root() / "bench" / (f"talking_face_{int(seconds)}s_{height}p"
                                           + ("_2faces" if faces == 2 else "") + ".mp4")
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = float(probe(src).fps or 30.0)
    clip = [f.image for f in iter_frames(src, None, max_side=height if faces == 1 else width // 2)]
    audio = read_audio(wav, 48000)
    n_frames = int(round(seconds * fps))
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        vs = c.add_stream("libx264", rate=_rate(fps))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "23"}
        aus = c.add_stream("aac", rate=48000, layout="mono")
        canvas = np.full((height, width, 3), 40, np.uint8)
        h, w = clip[0].shape[:2]
        x0, y0 = ((width - w) // 2, 0) if faces == 1 else (0, (height - h) // 2)
        for i in range(n_frames):
            img = clip[i % len(clip)]
            canvas[y0:y0 + h, x0:x0 + w] = img
            if faces == 2:
                canvas[y0:y0 + h, w:2 * w] = img[:, ::-1]
            for pkt in vs.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                c.mux(pkt)
        total = int(seconds * 48000)
        loop = np.resize(audio, total).astype(np.float32)
        for s in range(0, total, 1024):
            frame = av.AudioFrame.from_ndarray(loop[None, s:s + 1024], format="flt", layout="mono")
            frame.sample_rate = 48000
            for pkt in aus.encode(frame):
                c.mux(pkt)
        for stream in (vs, aus):
            for pkt in stream.encode(None):
                c.mux(pkt)
    os.replace(tmp, out)
    return out


def build_test_audio(seconds: float = 60.0) -> Path:
    """The speed video's sound track alone (its AAC stream copied, not re-encoded, into an .m4a), so that a row
    times the voice path by itself: audio decode, VAD and the voice model, no face path."""
    import av

    video = build_test_video(seconds)
    out = video.with_name(video.stem + "_audio.m4a")
    if out.is_file():
        return out
    tmp = out.with_suffix(".part.m4a")
    with av.open(str(video)) as src, av.open(str(tmp), "w", format="ipod") as dst:
        a = src.streams.audio[0]
        stream = dst.add_stream_from_template(a)
        for pkt in src.demux(a):
            if pkt.dts is not None:
                pkt.stream = stream
                dst.mux(pkt)
    os.replace(tmp, out)
    return out


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _child(video: str, config: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child: analyse once to warm up on a short cut, then time the full video."""
    from avemo.inference.analyzer import Analyzer

    threads = int(config.pop("threads", 2))
    if config.get("backend") == "torch":  # the torch backend's own thread count (analysis imports no torch)
        import torch

        torch.set_num_threads(threads)
    analyzer = Analyzer(config.pop("models", "default"), **config)
    t0 = time.perf_counter()
    analyzer.face_model, analyzer.voice_model  # noqa: B018 - load the models before timing
    load_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    timeline = analyzer.analyze(video)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cpu_s": _cpu_seconds() - cpu0, "model_load_s": load_s,
            "stages_s": analyzer.last_times.seconds,
            "windows": len(timeline), "face_windows": int(timeline["face"].sum()),
            "speech_windows": int(timeline["speech"].sum()),
            "text_windows": int((timeline["text_words"].fillna(0) > 0).sum())
            if "text_words" in timeline.columns else 0,
            "peak_rss_mb": peak_rss_mb()}


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_speed_benchmark(seconds: float = 60.0, *, video: Path | None = None, audio_only: bool = False,
                        **config: Any) -> dict[str, Any]:
    """Build (or reuse) the test video and time the Python API (``Analyzer.analyze``) on it in a child process
    (on its sound track alone with ``audio_only``: the voice path by itself)."""
    from avemo.media import probe

    video = video or (build_test_audio(seconds) if audio_only else build_test_video(seconds))
    info = probe(video)
    proc = subprocess.run([sys.executable, "-m", "avemo.bench.speed", str(video), json.dumps(config)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AvemoError(f"speed benchmark child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({
        "video": {"seconds": info.duration, "width": info.width, "height": info.height, "fps": info.fps},
        "realtime_factor": info.duration / result["wall_s"],
        "config": config, "machine": machine(),
    })
    return result


#: The configurations compared side by side in one run of ``avemo bench speed``.
VARIANTS: dict[str, dict[str, Any]] = {
    "default: MediaPipe on every 2nd frame + optical flow, deblocking skipped, int8 face network, face views "
    "alternate (one a frame, mirrored on every other)": {},
    "face views: flip (both on every frame; the default until stop 30)": {"face_tta": "flip"},
    "exact face path (`--exact-faces`): MediaPipe on every frame, deblocking on": {"landmark_every": 1,
                                                                                  "skip_loop_filter": False},
    "deblocking on (the decoder's loop filter not skipped)": {"skip_loop_filter": False},
    "MediaPipe on every 3rd frame + optical flow": {"landmark_every": 3},
    "float face network": {"face_int8": False},
    "face views: none": {"face_tta": "none"},
    "float face network, face views: tencrop": {"face_int8": False, "face_tta": "tencrop"},
    "torch eager (no onnxruntime)": {"backend": "torch", "face_int8": False},
    "voice.ravdess8 (the log-mel CNN) instead of voice.multi6": {
        "models": {"voice": "voice.ravdess8", "fusion": "fusion.fer2013_ravdess"}},
    "face.fer2013 (no blendshape member) instead of face.fervideo": {"models": {"face": "face.fer2013"}},
    "voice path alone (the video's sound track as .m4a): voice.multi6": {"audio_only": True},
    "voice path alone (the video's sound track as .m4a): voice.ravdess8": {
        "audio_only": True, "models": {"voice": "voice.ravdess8", "fusion": "fusion.fer2013_ravdess"}},
}
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"

#: ``avemo bench text``: the default analysis against the same with text from speech (``--text``), side by side
TEXT_VARIANTS: dict[str, dict[str, Any]] = {"default (face + voice)": {},
                                            "`--text` (face + voice + Whisper transcript + text.carer)": {"text": True}}
TEXT_BEGIN, TEXT_END = "<!-- text-cost:begin -->", "<!-- text-cost:end -->"


def render_text_cost(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of ``avemo bench text``: what ``--text`` costs end to end."""
    m = result["machine"]
    rows = list(result["rows"].values())
    v = rows[0]["video"]
    base = rows[0]["wall_s"]
    lines = [TEXT_BEGIN, "## Text from speech: what `avemo analyze --text` costs end to end", "",
             f"The speed benchmark's video ({v['seconds']:.1f} s, {v['width']}x{v['height']} H.264 + AAC, speech "
             "throughout: one RAVDESS sentence looped) through the Python API in a fresh process, models loaded "
             f"before timing, {result['repeat']} rounds with the two rows in turn, all in one run (wall: the "
             "median run [min–max]; CPU and stage times of the median run). Command: `avemo bench text`, commit "
             f"`{result['commit']}`, {result['date']}; machine: {m['platform']}, "
             f"{m.get('cpus', m.get('cpu_count'))} CPUs ({m.get('cpu_model', 'CPU model not recorded')}). "
             "The transcript is made after the audio is read (the whole 16 kHz track is kept), in the voice "
             "thread, on one thread.",
             "", "| configuration | wall (s) | × real time | wall / default | CPU (s) | voice model | text | "
             "windows with words | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        st = r["stages_s"]
        lines.append(f"| {name} | {r['wall_s']:.2f} [{r['wall_min_s']:.2f}–{r['wall_max_s']:.2f}] | "
                     f"{r['realtime_factor']:.1f}× | {r['wall_s'] / base:.2f} | {r['cpu_s']:.2f} | "
                     f"{st.get('voice model', 0):.2f} | {st.get('text', 0):.2f} | "
                     f"{r.get('text_windows', 0)} of {r['windows']} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Compare the rows with each other, not with the speed section's (another run, possibly another "
              "machine). Budget (DESIGN.md): the default analysis ≥ 20× real time; `--text` stays off by default "
              "while its cost would take the default below that budget.", "", TEXT_END]
    return "\n".join(lines)


def write_text_cost(result: dict[str, Any], out: Path) -> Path:
    """(Re)write the text-cost section of ``out``."""
    from avemo.markdown import replace_section

    return replace_section(out, TEXT_BEGIN, TEXT_END, render_text_cost(result))


def run_encodings(seconds: float = 60.0, repeat: int = 3, names: list[str] | None = None) -> dict[str, Any]:
    """Every test encoding (:mod:`avemo.bench.encodings`), ``repeat`` rounds with the files in turn: the decode
    floor, the Python API (models loaded before timing) and the command line end to end, each in a fresh
    process. Each row keeps the median of each measure and the range of the CLI."""
    from avemo.bench.encodings import ENCODINGS, build_video, cli_end_to_end, decode_floor

    names = names or list(ENCODINGS)
    videos = {n: build_video(n, seconds) for n in names}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(max(1, repeat)):
        for n in names:
            run = {"floor": decode_floor(videos[n]), "floor_nolf": decode_floor(videos[n], skip_loop_filter=True),
                   "api": run_speed_benchmark(seconds, video=videos[n])}
            try:  # a failed CLI run is counted and reported, not the end of the whole benchmark
                run["cli"] = cli_end_to_end(videos[n])
            except AvemoError as e:
                run["cli"] = {"failed": str(e)}
            runs[n].append(run)
    rows = {}
    for n, rs in runs.items():
        def med(part: str, key: str, rs=rs) -> float:
            values = sorted(r[part][key] for r in rs if part in r and "failed" not in r[part])
            return values[len(values) // 2] if values else float("nan")

        api = sorted((r["api"] for r in rs), key=lambda a: a["wall_s"])[len(rs) // 2]
        duration = api["video"]["seconds"]
        row = {"encoding": ENCODINGS[n].note, "video": api["video"],
               "floor_s": med("floor", "wall_s"), "floor_cpu_s": med("floor", "cpu_s"),
               "floor_nolf_s": med("floor_nolf", "wall_s"),
               "api_s": med("api", "wall_s"), "api_cpu_s": med("api", "cpu_s"), "stages_s": api["stages_s"],
               "cli_s": med("cli", "wall_s"), "cli_cpu_s": med("cli", "cpu_s"),
               "cli_helper_cpu_s": med("cli", "helper_cpu_s"),
               "cli_helper_peak_rss_mb": med("cli", "helper_peak_rss_mb"),
               "cli_runs_s": [r["cli"].get("wall_s") for r in rs],
               "cli_failures": [r["cli"]["failed"] for r in rs if "failed" in r["cli"]],
               "peak_rss_mb": max(max(r["api"]["peak_rss_mb"], r["cli"].get("peak_rss_mb", 0)) for r in rs)}
        row.update({"cli_realtime": duration / row["cli_s"], "api_realtime": duration / row["api_s"],
                    "api_over_floor": row["api_s"] / row["floor_s"]})
        rows[n] = row
    return {"rows": rows, "repeat": repeat, "seconds": seconds, "commit": git_commit(), "machine": machine(),
            "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


FER_COMPARISON = (
    "External comparison, not a dependency: the `fer` package (face only; `pip install fer` pulls in TensorFlow), "
    "at 5 fps on a 60 s 720x720 H.264 file (x264's default preset), took 28.5 s (2.1x real time) on the machine "
    "of issue #13, where PyAV's decode floor of the same file was 1.33 s and avemo's API 5.0-5.8 s; "
    "`avemo bench speed` does not measure it (no TensorFlow here). Side by side with avemo's command line on one "
    "machine: `python benchmarks/fer_comparison.py --fer-python PY` (`fer` in its own environment; the section "
    "*`fer` beside avemo* below).")


def render_encodings(result: dict[str, Any]) -> list[str]:
    """The per-encoding table of the speed section."""
    lines = [f"### Every common encoding: decode floor, Python API, command line ({result['repeat']} rounds, "
             f"medians; load average {result['load_average'][0]:.1f} at the end; commit `{result['commit']}`)", "",
             "60 s of the talking face in each encoding people bring (`avemo.bench.encodings`). Decode floor: PyAV "
             "alone decoding the video (frame threads, non-reference frames skipped), the issue's measure; beside it "
             "the same with the deblocking filter skipped too, as the analyzer's default decodes since stop 28 "
             "(H.264 and HEVC; VP9 ignores it). API: `Analyzer.analyze` with "
             "the models loaded. CLI: `avemo analyze FILE --out DIR`, process start to files written. Targets "
             "(issue #13): CLI >= 20x real time on every 720p file, API <= 1.5x the decode floor, < 1.5 GB.", "",
             "| file | size | decode floor (s) | floor, deblocking skipped (s) | API (s) | API / floor "
             "| CLI (s) [runs] | CLI × real time | CPU API / CLI (s) | decode | faces | face model | audio decode "
             "| VAD | voice model | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        v, st = r["video"], r["stages_s"]
        runs = ", ".join("failed" if x is None else f"{x:.2f}" for x in r["cli_runs_s"])
        stages = " | ".join(f"{st.get(k, 0):.2f}" for k in ("decode", "faces", "face model", "audio decode", "vad",
                                                             "voice model"))
        nolf = r.get("floor_nolf_s", float("nan"))
        lines.append(f"| `{name}` | {v['width']}x{v['height']} | {r['floor_s']:.2f} | {nolf:.2f} | {r['api_s']:.2f} | "
                     f"{r['api_over_floor']:.2f} | {r['cli_s']:.2f} [{runs}] | {r['cli_realtime']:.1f}× | "
                     f"{r['api_cpu_s']:.2f} / {r['cli_cpu_s']:.2f} | {stages} | {r['peak_rss_mb']:.0f} |")
    helper = [(r["cli_helper_cpu_s"], r["cli_helper_peak_rss_mb"]) for r in result["rows"].values()
              if "cli_helper_peak_rss_mb" in r]
    if helper:
        cpu, mb = [c for c, _ in helper], [m for _, m in helper]
        lines += ["", "The CLI's CPU and peak RSS are its own process's; its plot helper "
                  "(`avemo.inference.plot_worker`, matplotlib imported while the command starts up) adds "
                  f"{min(cpu):.2f}-{max(cpu):.2f} s of CPU and peaks at {min(mb):.0f}-{max(mb):.0f} MB."]
    failed = [f"`{name}`: {why.splitlines()[0]}" for name, r in result["rows"].items()
              for why in r.get("cli_failures", [])]
    if failed:
        lines += ["", f"CLI runs that failed ({len(failed)}; left out of the medians): " + "; ".join(failed) + "."]
    return lines + ["", FER_COMPARISON, ""]


def run_all(seconds: float = 60.0, variants: dict[str, dict[str, Any]] | None = None,
            repeat: int = 3) -> dict[str, Any]:
    """Every variant on the same video, ``repeat`` rounds with the variants in turn (so a change of load
    on the machine touches them all alike); each row keeps the run with the median wall time and the
    range of all of them."""
    variants = variants or VARIANTS
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    names = list(variants)
    run_speed_benchmark(seconds, **dict(variants[names[0]]))  # a warm-up run, not kept (files into the page cache)
    rounds = max(1, repeat)
    for k in range(rounds):
        # each round starts at another row, so that no row always runs first (or after the same one)
        start = k * len(names) // rounds
        for name in names[start:] + names[:start]:
            runs[name].append(run_speed_benchmark(seconds, **dict(variants[name])))
    rows = {}
    for name, rs in runs.items():
        walls = sorted(r["wall_s"] for r in rs)
        row = dict(sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2])
        row.update({"wall_runs_s": [r["wall_s"] for r in rs], "wall_min_s": walls[0], "wall_max_s": walls[-1],
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)})
        rows[name] = row
    return {"rows": rows, "machine": machine(), "commit": git_commit(), "seconds": seconds, "repeat": repeat,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def render(result: dict[str, Any], tta: dict[str, Any] | None = None, path: dict[str, Any] | None = None) -> str:
    """The speed section of BENCHMARKS.md (with the face-view trade-off when ``tta`` is given)."""
    m = result["machine"]
    first = next(iter(result["rows"].values()))
    v = first["video"]
    lines = [BEGIN, "## Speed: `avemo analyze` on 60 s of 720p talking-face video", "",
             f"Video: {v['seconds']:.1f} s, {v['width']}x{v['height']} H.264 @ {v['fps']:.2f} fps with AAC audio, "
             "built from the shared RAVDESS clip (actor 19) and its own speech, looped. Face path sampled at "
             f"5 fps, 3 s windows every 1 s. Machine: {m['platform']}, {m.get('cpu_model', 'CPU')} "
             f"({m.get('cpu_isa', 'vector unit not recorded')}), {m.get('cpus', m.get('cpu_count'))} CPUs, "
             f"torch {m['torch']}. "
             f"Commit `{result['commit']}`, {result['date']}. Command: `avemo bench speed`. Each run is a fresh "
             "process (models loaded before timing; peak RSS includes them). "
             f"After a warm-up run, {result.get('repeat', 1)} rounds, the rows in turn in each round, each round "
             "starting at another row, all in one run: wall time is the median run [min–max], and the stage and "
             "CPU times are those of the median run.",
             "", "| configuration | wall (s) | × real time | CPU (s) | decode | faces | face model | audio decode "
             "| VAD | voice model | fusion | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        st = r["stages_s"]
        cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else "–"
        spread = f" [{r['wall_min_s']:.2f}–{r['wall_max_s']:.2f}]" if "wall_min_s" in r else ""
        stages = " | ".join(f"{st.get(k, 0):.2f}" for k in ("decode", "faces", "face model", "audio decode", "vad",
                                                             "voice model", "fusion"))
        lines.append(f"| {name} | {r['wall_s']:.2f}{spread} | {r['realtime_factor']:.1f}× | {cpu} | {stages} "
                     f"| {r['peak_rss_mb']:.0f} |")
    lines += ["", "Stage times are seconds of wall time inside each stage, summed over its calls: decoding (in its "
              "own prefetch thread), faces (MediaPipe, optical flow, tracking, alignment), the face network (in its "
              "own thread), and the voice path (audio decode, Silero VAD, voice network) in a fourth thread, so the "
              "wall time is about the longest chain plus fusion, not the sum, and a stage's time includes waiting "
              "for a core. CPU is the process's CPU time during the analysis (all threads). Budget (DESIGN.md): "
              "≥ 20× real time, < 1.5 GB peak. The *voice path alone* rows analyse the video's sound track by itself "
              "(its AAC stream copied into an .m4a): audio decode, VAD and the voice model with no face path beside "
              "them, the default voice against `voice.ravdess8`.", ""]
    if result.get("encodings"):
        lines += render_encodings(result["encodings"])
    if path:
        lines += render_face_path(path)
    if tta:
        lines += [f"Face test-time views on FER-2013 PrivateTest ({tta['n']} faces, a fixed evenly spaced subset; "
                  f"`{tta['command']}`, commit `{tta['commit']}`), measured side by side in one run:", "",
                  "| face views | accuracy | macro-F1 | ms per face |", "|---|---|---|---|"]
        for name, r in tta["rows"].items():
            lines.append(f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ms_per_face']:.1f} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def render_face_path(path: dict[str, Any]) -> list[str]:
    """The table of ``benchmarks/face_path.py``: what the fast face path changes, frame by frame."""
    lines = [f"What the fast face path changes (`{path['command']}`, commit `{path['commit']}`): each variant "
             "against the exact path (MediaPipe on every sampled frame, full decoding) on the same frames, with the "
             "shipped face model at the analyzer's settings. Eye error: distance of the eye centres from the exact "
             "path's, as a share of the inter-ocular distance (mean over all frames; mean and max over the frames "
             "carried by flow). The control row changes only MediaPipe's input size, to show how much the exact "
             "path moves by itself. The benchmark videos loop one 3.5 s clip, so their 58 windows are far from "
             "independent; the deblocking filter exists in H.264 and HEVC only (the clips' MPEG-4 and VP6 do not "
             "move). The *views alternate* rows give each frame one view of the face network (mirrored on every "
             "other sampled frame) where the exact path gives two: a single frame moves more (the frame columns), "
             "a window, which pools both views, much less (the window Δp). Δp: the mean absolute difference of the "
             "face probabilities (the crop network's, the blendshape member left out).", "",
             "| variant | video | frames (carried) | frame labels agree | window labels agree | mean abs Δp "
             "(frames) | mean abs Δp (windows) | eye error all | eye error carried (max) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, videos in path["rows"].items():
        for video, r in videos.items():
            carried = f"{r['eye_error_iod_mean']:.3f} ({r['eye_error_iod_max']:.3f})" if r["carried"] else "–"
            lines.append(f"| {name} | {video} | {r['frames']} ({r['carried']}) | {r['label_agreement']:.3f} "
                         f"| {r['window_label_agreement']:.3f} ({r['windows']}) | {r['mean_abs_prob_diff']:.4f} "
                         f"| {_num(r.get('window_mean_abs_prob_diff'))} | {r['eye_error_iod_all_frames']:.3f} "
                         f"| {carried} |")
    return lines + [""]


def write_section(result: dict[str, Any], out: Path, tta: dict[str, Any] | None = None,
                  path: dict[str, Any] | None = None) -> Path:
    """(Re)write the speed section of ``out``."""
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(result, tta, path))


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})))
