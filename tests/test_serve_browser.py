"""The page in a real headless browser (Debian's Chromium driven by Selenium) against a real server:
upload a talking-face clip, wait for the result, check that the three timelines are drawn, that the
cursor follows the playing video and that a click on the timeline seeks; then the live tab with
Chromium's fake camera and microphone playing the shared RAVDESS clip and its speech."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import requests

from avemo.labels import EMOTIONS
from avemo.serve.harness import ServerProcess, chromium, chromium_available, looped_clip

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium and chromium-driver are not "
                                                                 "installed (make test's set-up installs them)")

# the page's timeline geometry (app.js): left margin, top, row height, gap between rows
LEFT, TOP, ROW_H, GAP = 58, 6, 56, 10


def _y4m(video: Path, out: Path, side: int = 480, fps: int = 15) -> Path:
    """The clip as a Y4M file, the format Chromium's fake camera reads."""
    import av

    from avemo.media import iter_frames

    with av.open(str(out), "w", format="yuv4mpegpipe") as c:
        stream = c.add_stream("rawvideo", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for f in iter_frames(video, float(fps), max_side=side):
            for packet in stream.encode(av.VideoFrame.from_ndarray(f.image, format="rgb24").reformat(
                    width=side, height=side, format="yuv420p")):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data: Path) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("serve-browser") / "data", workers=1,
                        env={"AVEMO_SERVE_URLS": "any"}).start()  # the URL test's site is on this machine
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> Path:
    """8 s of the RAVDESS actor with her own speech (several windows), H.264 + AAC."""
    return looped_clip(8.0, tmp_path_factory.mktemp("clip") / "talking_face_8s.mp4",
                       video=clips["ravdess_mp4"], audio=clips["ravdess_wav"])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]):
    y4m = _y4m(clips["ravdess_mp4"], tmp_path_factory.mktemp("camera") / "face.y4m")
    driver = chromium(extra_flags=("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                   f"--use-file-for-fake-video-capture={y4m}",
                                   f"--use-file-for-fake-audio-capture={clips['ravdess_wav']}"))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


ROW_COVERAGE_JS = """
const [left, top, rowH, gap] = arguments;
const c = document.getElementById('timeline');
const dpr = window.devicePixelRatio || 1;
const ctx = c.getContext('2d');
const out = [];
for (let r = 0; r < 3; r++) {
  const x0 = Math.round((left + 2) * dpr), x1 = Math.round(c.width - 10 * dpr);
  const y = Math.round((top + r * (rowH + gap) + rowH * 0.5) * dpr);
  const px = ctx.getImageData(x0, y - 12, x1 - x0, 24).data;
  let coloured = 0, total = 0;
  for (let i = 0; i < px.length; i += 4) {
    total++;
    const [R, G, B] = [px[i], px[i + 1], px[i + 2]];
    const grey = Math.abs(R - G) < 6 && Math.abs(G - B) < 6;  // background, hatching, cursor
    if (!grey || R < 160) coloured++;
  }
  out.push(coloured / total);
}
return out;
"""


def test_upload_result_timeline_cursor_and_seek(browser, server: ServerProcess, clip: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done", 180, "the job to finish in the page")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    job = requests.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()
    assert job["filename"] == clip.name and job["status"] == "done"
    windows = job["result"]["windows"]
    canvas = browser.find_element(By.ID, "timeline")
    assert int(canvas.get_attribute("data-windows")) == len(windows) >= 5

    # the three rows are drawn: face and voice found all along this clip, so every row is coloured
    assert all(w["source"] == "av" for w in windows)
    coverage = browser.execute_script(ROW_COVERAGE_JS, LEFT, TOP, ROW_H, GAP)
    assert all(c > 0.95 for c in coverage), coverage
    assert browser.find_element(By.ID, "dominant").text.lower() == job["summary"]["dominant"]
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert len(hrefs) == 4 and all(requests.get(h, timeout=30).status_code == 200 for h in hrefs)
    assert clip.name in browser.find_element(By.ID, "jobs").text
    # the labels as subtitles: a track of the player, loaded by the browser with one cue per labelled window
    _wait(lambda: browser.execute_script("const t = document.querySelector('#player track'); if (!t) return -1;"
                                         "t.track.mode = 'hidden'; return t.track.cues ? t.track.cues.length : 0;")
          == sum(w["label"] is not None for w in windows), 30, "the subtitle cues")

    # the video plays and the cursor follows it
    _wait(lambda: browser.execute_script("return document.getElementById('player').readyState") >= 2, 60,
          "the video to load")
    state = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const v = document.getElementById('player');
        v.muted = true;
        v.play().then(() => done('playing'), (e) => done('error: ' + e.message));""")
    assert state == "playing"
    cursor0 = float(canvas.get_attribute("data-cursor"))
    x0 = int(canvas.get_attribute("data-cursor-x"))
    time.sleep(2.0)
    now = browser.execute_script("return document.getElementById('player').currentTime")
    cursor1 = float(canvas.get_attribute("data-cursor"))
    x1 = int(canvas.get_attribute("data-cursor-x"))
    assert now > 1.0 and cursor1 > cursor0 + 0.8 and abs(cursor1 - now) < 0.5 and x1 > x0 + 20
    shot = tmp_path / "serve_page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    browser.execute_script("document.getElementById('player').pause()")

    # a click three quarters along the timeline seeks there
    width = canvas.size["width"]
    target_x = LEFT + 0.75 * (width - LEFT - 8)
    ActionChains(browser).move_to_element_with_offset(canvas, int(target_x - width / 2), 0).click().perform()
    duration = max(w["end"] for w in windows)
    seek = browser.execute_script("return document.getElementById('player').currentTime")
    assert seek == pytest.approx(0.75 * duration, abs=0.25)
    assert float(canvas.get_attribute("data-cursor")) == pytest.approx(seek, abs=0.1)
    now = browser.find_element(By.ID, "now").text
    assert "window" in now and "weights: " in now  # what the fused answer rests on


def test_a_video_without_an_audio_track_says_so(browser, server: ServerProcess, clips: dict[str, Path]) -> None:
    """The shared RAVDESS video has no audio track: the summary says so (not "no speech") and the voice row stays
    empty while the face row is drawn."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(clips["ravdess_mp4"]))
    summary = browser.find_element(By.ID, "summary")
    _wait(lambda: "no audio track" in summary.text, 180, "the summary of the video without audio")
    assert "voice: no audio track" in summary.text and "face: " in summary.text
    in_colour = ROW_COVERAGE_JS.replace(  # pixels of an emotion's colour only (not the hatching of empty windows)
        "if (!grey || R < 160) coloured++;",
        "if (Object.values(COLORS).some((h) => Math.abs(parseInt(h.slice(1, 3), 16) - R) < 8 && "
        "Math.abs(parseInt(h.slice(3, 5), 16) - G) < 8 && Math.abs(parseInt(h.slice(5, 7), 16) - B) < 8)) "
        "coloured++;")
    face, voice, _ = browser.execute_script(in_colour, LEFT, TOP, ROW_H, GAP)
    assert face > 0.5 and voice == 0, (face, voice)  # band edges blend colours: not every face pixel is one
    assert "voice: no audio track" in browser.find_element(By.ID, "now").text


def test_live_tab_with_the_fake_camera_and_microphone(browser, server: ServerProcess) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-start").click()
    live = browser.find_element(By.ID, "live")
    _wait(lambda: int(live.get_attribute("data-events") or 0) >= 10, 120, "ten live events")
    assert browser.find_element(By.ID, "live-error").get_attribute("hidden") is not None, \
        browser.find_element(By.ID, "live-error").text
    assert browser.find_element(By.ID, "live-label").get_attribute("textContent") in EMOTIONS
    _wait(lambda: live.get_attribute("data-last-source") == "av", 30, "an event with both the face and the voice")
    rtt = live.get_attribute("data-median-rtt")
    assert rtt and 0 < int(rtt) < 5000
    browser.find_element(By.ID, "live-stop").click()
    status = browser.find_element(By.ID, "live-status")
    _wait(lambda: status.text.startswith("stopped:"), 30, "the session summary")
    assert "events" in status.text


def test_live_tab_transcribes_when_asked(browser, server: ServerProcess) -> None:
    """The live tab's "transcribe" option: the fake microphone's sentence comes back as words under the label,
    said not to weigh (it states no feeling)."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-text").click()
    browser.find_element(By.ID, "live-start").click()
    words = browser.find_element(By.ID, "live-words")
    _wait(lambda: words.is_displayed() and "door" in words.text.lower(), 150, "the sentence's words")
    assert "not fused" in words.text
    browser.find_element(By.ID, "live-stop").click()
    status = browser.find_element(By.ID, "live-status")
    _wait(lambda: status.text.startswith("stopped:"), 60, "the session summary")


def test_live_tab_boxes_each_face_when_asked(browser, server: ServerProcess) -> None:
    """The live tab's "all faces" option: the fake camera's face gets a box over the camera picture, in its
    label's colour, with that label (the main face starred) above it."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-faces").click()
    browser.find_element(By.ID, "live-start").click()
    layer = browser.find_element(By.ID, "cam-faces")
    _wait(lambda: layer.find_elements(By.CSS_SELECTOR, ".live-face"), 120, "a face box over the camera")
    box = layer.find_element(By.CSS_SELECTOR, ".live-face")
    label = box.get_attribute("data-label")
    assert label in EMOTIONS and box.text.startswith(f"★ {label} ")
    cam, rect = browser.find_element(By.ID, "cam").rect, box.rect
    assert cam["x"] <= rect["x"] and rect["x"] + rect["width"] <= cam["x"] + cam["width"] + 1
    assert cam["y"] <= rect["y"] and rect["y"] + rect["height"] <= cam["y"] + cam["height"] + 1
    assert 0.1 * cam["height"] < rect["height"] < cam["height"]
    browser.find_element(By.ID, "live-stop").click()
    status = browser.find_element(By.ID, "live-status")
    _wait(lambda: status.text.startswith("stopped:"), 60, "the session summary")


def test_a_file_on_the_web_is_analysed_from_its_address(browser, server: ServerProcess, clips: dict[str, Path],
                                                          http_site) -> None:
    """The address field: the server fetches the file (a real local site; this server allows private addresses)
    and the page shows its result under the file's name; a missing file is said in the notice."""
    import shutil

    from selenium.webdriver.common.by import By

    base, site, served = http_site
    shutil.copy(clips["cremad_sad"], site / "sad.flv")
    browser.get(server.url + "/")

    def ask(url: str) -> None:
        field = browser.find_element(By.ID, "url")
        field.clear()
        field.send_keys(url)
        browser.find_element(By.ID, "url-go").click()

    ask(f"{base}/missing.flv")
    notice = browser.find_element(By.ID, "notice")
    _wait(lambda: notice.is_displayed() and "HTTP 404" in notice.text, 60, "the download's failure")
    ask(f"{base}/sad.flv")
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done"
          and browser.find_element(By.ID, "result-title").text == "sad.flv", 180, "the fetched file's result")
    assert set(served) == {"/missing.flv", "/sad.flv"} and served.count("/sad.flv") == 1


def test_a_photo_shows_its_figure_not_a_timeline(browser, server: ServerProcess, clips: dict[str, Path],
                                                 tmp_path: Path) -> None:
    """A photo dropped on the page: the figure (the photo with its face box beside the probabilities) where a
    video's player and timeline would be, the face's emotion as the headline, and "photo" in the jobs list."""
    import cv2
    from selenium.webdriver.common.by import By

    from avemo.media import iter_frames

    frame = next(f.image for f in iter_frames(clips["ravdess_mp4"], 1.0) if f.time >= 1.0)
    photo = tmp_path / "portrait.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    browser.get(server.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done"
          and browser.find_element(By.ID, "result-title").text == photo.name, 120, "the photo's job to finish")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    assert job["filename"] == photo.name and job["media"]["kind"] == "image"
    figure = browser.find_element(By.ID, "photo")
    _wait(lambda: browser.execute_script("return document.getElementById('photo').naturalWidth") > 0, 30,
          "the figure to load")
    assert figure.is_displayed() and figure.get_attribute("src").endswith(job["links"]["png"])
    for hidden in ("player", "no-video", "timeline-wrap"):
        assert not browser.find_element(By.ID, hidden).is_displayed(), hidden
    assert browser.find_element(By.ID, "dominant").text.lower() == job["summary"]["face_dominant"]
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert len(hrefs) == 3 and all(requests.get(h, timeout=30).status_code == 200 for h in hrefs)
    row = next(tr for tr in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr") if photo.name in tr.text)
    assert "photo" in row.find_elements(By.TAG_NAME, "td")[3].text


def test_transcribed_speech_gets_a_text_row_and_its_words(browser, server: ServerProcess,
                                                          clips: dict[str, Path]) -> None:
    """The page's "transcribe" option: the job is sent with ``text=true``, its timeline gains a text row under the
    fused one, and the line under the timeline gives the window's words."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "opt-text")
    box.click()
    assert box.is_selected()
    browser.find_element(By.ID, "file").send_keys(str(clips["ravdess_wav"]))
    result = browser.find_element(By.ID, "result")
    canvas = browser.find_element(By.ID, "timeline")
    _wait(lambda: result.get_attribute("data-state") == "done" and canvas.get_attribute("data-rows")
          == "face voice fused text", 180, "the transcribed job's timeline")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    assert job["options"] == {"text": True} and job["filename"] == clips["ravdess_wav"].name
    now = browser.find_element(By.ID, "now").text.lower()
    assert "text:" in now and ("door" in now or "kids" in now or "talking" in now), now
    coverage = browser.execute_script(ROW_COVERAGE_JS.replace("r < 3", "r < 4"), LEFT, TOP, ROW_H, GAP)
    assert coverage[3] > 0.95, coverage  # the text row is drawn all along (pale: words without a feeling)


def test_the_settings_go_with_the_upload_and_a_bad_one_is_said_before_it(browser, server: ServerProcess,
                                                                         clips: dict[str, Path]) -> None:
    """The page's analysis settings: the window, step and face rate given go with the upload (the job's options,
    its windows' lengths and steps, the summary line); a value out of the server's bounds is refused with the
    server's reason shown, and no job is made."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    language = browser.find_element(By.ID, "opt-language")
    assert not language.is_enabled()  # the language goes with transcription only
    before = len(requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"])
    browser.find_element(By.ID, "opt-window").send_keys("90")
    browser.find_element(By.ID, "file").send_keys(str(clips["ravdess_wav"]))
    notice = browser.find_element(By.ID, "notice")
    _wait(lambda: notice.is_displayed() and "window must be within 0.5 to 60" in notice.text, 30, "the refusal")
    assert len(requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"]) == before

    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    for name, value in (("window", "2"), ("hop", "0.5"), ("fps", "2")):
        browser.find_element(By.ID, f"opt-{name}").send_keys(value)
    browser.find_element(By.ID, "file").send_keys(str(clips["ravdess_wav"]))
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done", 180, "the job with settings")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    assert job["options"] == {"window": 2.0, "hop": 0.5, "fps": 2.0}, job["options"]
    windows = requests.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()["result"]["windows"]
    starts = [w["start"] for w in windows]
    assert len(windows) >= 3 and all(abs(b - a - 0.5) < 1e-6 for a, b in zip(starts, starts[1:]))
    assert all(abs(w["end"] - w["start"] - 2.0) < 1e-6 for w in windows[:-1])
    assert "2 s windows, every 0.5 s, 2 face frames/s" in browser.find_element(By.ID, "summary").text


def test_a_stretch_of_the_file_is_analysed_when_asked(browser, server: ServerProcess, clip: Path) -> None:
    """*from* / *to* in the settings (seconds or mm:ss): the job analyses that stretch, its windows in the file's
    times, and the summary says so; a time that is none is refused on the page, before any upload."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    before = len(requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"])
    browser.find_element(By.ID, "opt-start").send_keys("1:99")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    notice = browser.find_element(By.ID, "notice")
    _wait(lambda: notice.is_displayed() and "is not a time" in notice.text, 30, "the refusal")
    assert len(requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"]) == before

    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    browser.find_element(By.ID, "opt-start").send_keys("0:02")
    browser.find_element(By.ID, "opt-end").send_keys("6.5")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done"
          and "from 2.0 s to 6.5 s" in browser.find_element(By.ID, "summary").text, 180, "the stretch's job")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    assert job["options"] == {"start": 2.0, "end": 6.5}
    windows = requests.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()["result"]["windows"]
    assert windows[0]["start"] == 2.0 and windows[-1]["end"] == 6.5


def test_every_face_gets_its_timeline_and_its_box(browser, server: ServerProcess, clips: dict[str, Path],
                                                  tmp_path: Path) -> None:
    """*Every face* in the settings: a video of two people gives a button per face; the main face is chosen first,
    the other one's button redraws the timeline and the summary from its own windows, and the chosen face is
    boxed on the playing video where it is (the left person on the left, the right one on the right)."""
    import cv2
    from selenium.webdriver.common.by import By

    from avemo.media import iter_frames, write_video

    rav = [cv2.resize(f.image, (360, 360)) for f in iter_frames(clips["ravdess_mp4"], 10.0)]
    cre = [cv2.resize(f.image, (480, 360)) for f in iter_frames(clips["cremad_hap"], 10.0)]
    two = write_video(tmp_path / "two_people.mp4",
                      (np.concatenate([rav[i % len(rav)], cre[i % len(cre)]], axis=1) for i in range(40)), 10.0)
    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    browser.find_element(By.ID, "opt-all-faces").click()
    browser.find_element(By.ID, "file").send_keys(str(two))
    result = browser.find_element(By.ID, "result")
    _wait(lambda: result.get_attribute("data-state") == "done"
          and browser.find_element(By.ID, "result-title").text == two.name, 180, "the two-face job")
    job = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"][0]
    assert job["options"] == {"all_faces": True}
    full = requests.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()
    windows = full["result"]["windows"]
    assert sorted({w["track"] for w in windows}) == [0, 1]
    tracks = browser.find_element(By.ID, "tracks")
    buttons = tracks.find_elements(By.TAG_NAME, "button")
    assert tracks.is_displayed() and [b.text for b in buttons] == ["face 0", "face 1"]
    canvas = browser.find_element(By.ID, "timeline")
    for button in (buttons[1], buttons[0]):
        button.click()
        track = int(button.get_attribute("data-track"))
        assert tracks.get_attribute("data-track") == str(track) and "active" in button.get_attribute("class")
        assert canvas.get_attribute("data-windows") == str(sum(w["track"] == track for w in windows))
        mine = full["summary"]["tracks"][str(track)]
        assert browser.find_element(By.ID, "dominant").text.lower() == (mine["dominant"] or "—")
        browser.execute_script("const p = document.getElementById('player'); p.currentTime = 2.0;")
        box = browser.find_element(By.ID, "facebox")
        _wait(lambda b=box, t=track: b.is_displayed() and b.get_attribute("data-track") == str(t), 30, "the face box")
        player = browser.find_element(By.ID, "player")
        centre = box.location["x"] + box.size["width"] / 2 - player.location["x"]
        assert (centre < player.size["width"] * 360 / 840) == (track == 0), (track, centre, player.size)
