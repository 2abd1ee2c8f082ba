// avemo's page: upload a file, follow its job, play it with the face, voice and fused timelines under it;
// earlier jobs; a live tab (webcam + microphone over the /v1/live WebSocket). Plain JavaScript, no CDN.
"use strict";

const COLORS = {
  neutral: "#8c8c8c", calm: "#17becf", happy: "#f2b705", sad: "#1f77b4",
  angry: "#d62728", fearful: "#9467bd", disgust: "#2ca02c", surprised: "#ff7f0e",
};
const ROWS = ["face", "voice", "fused"];  // and "text" below them when the job transcribed the speech
const $ = (id) => document.getElementById(id);

const state = { job: null, windows: [], all: [], boxes: [], track: null, labels: [], rows: ROWS, duration: 0,
                pollTimer: null, jobsTimer: null };

// ---- small helpers --------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.setAttribute("style", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const err = (body && body.error) || { code: "http_" + response.status, message: response.statusText };
    if (response.status === 401) showNotice("This server needs an API key: open the page as /?key=YOUR_KEY.");
    throw Object.assign(new Error(err.message), { code: err.code, status: response.status });
  }
  return body;
}

function showNotice(text) { const n = $("notice"); n.textContent = text; n.hidden = !text; }
const pct = (x) => (x == null ? "" : Math.round(x * 100) + "%");
const fmtTime = (s) => (s == null ? "" : s.toFixed(1) + " s");
const fmtDate = (t) => new Date(t * 1000).toLocaleString();

// ---- tabs -----------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    $("panel-analyse").hidden = tab.dataset.tab !== "analyse";
    $("panel-live").hidden = tab.dataset.tab !== "live";
  });
}

// ---- upload -------------------------------------------------------------------------------------------
const drop = $("drop");
$("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});

function setProgress(label, fraction) {
  $("progress").hidden = false;
  $("progress-label").textContent = label;
  $("progress-pct").textContent = fraction == null ? "" : pct(fraction);
  $("progress-bar").style.width = ((fraction || 0) * 100).toFixed(1) + "%";
}

$("opt-text").addEventListener("change", (e) => { $("opt-language").disabled = !e.target.checked; });

// the upload's query: the transcription option and the settings given (empty fields keep the server's defaults)
function analyzeQuery() {
  const q = new URLSearchParams();
  if ($("opt-text").checked) {
    q.set("text", "true");
    const language = $("opt-language").value.trim().toLowerCase();
    if (language) q.set("language", language);
  }
  for (const name of ["window", "hop", "fps"]) {
    const value = $("opt-" + name).value.trim();
    if (value) q.set(name, value);
  }
  if ($("opt-all-faces").checked) q.set("all_faces", "true");
  for (const name of ["start", "end"]) {
    const value = $("opt-" + name).value.trim();
    if (!value) continue;
    const seconds = clockSeconds(value);
    if (seconds == null) throw new Error(`"${value}" is not a time: give seconds, mm:ss or hh:mm:ss`);
    q.set(name, String(seconds));
  }
  const query = q.toString();
  return query ? "?" + query : "";
}

// seconds from "90", "1:30" or "0:01:30" (null when it is none of them)
function clockSeconds(text) {
  const parts = text.split(":").map(Number);
  if (parts.length > 3 || parts.some((x) => !Number.isFinite(x) || x < 0) || parts.slice(1).some((x) => x >= 60)) {
    return null;
  }
  return parts.reduce((acc, x) => acc * 60 + x, 0);
}

function upload(file) {
  showNotice("");
  const form = new FormData();
  form.append("file", file, file.name);
  let query;
  try { query = analyzeQuery(); } catch (e) { showNotice("Not analysed: " + e.message); return; }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/analyze" + query);
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) setProgress("uploading " + file.name, e.loaded / e.total); };
  xhr.onload = () => {
    const body = xhr.response;
    if (xhr.status >= 400 || !body || !body.id) {
      $("progress").hidden = true;
      const message = (body && body.error && body.error.message) || xhr.statusText || "upload failed";
      showNotice("Not analysed: " + message);
      return;
    }
    setProgress("queued", 0);
    openJob(body.id);
    refreshJobs();
  };
  xhr.onerror = () => { $("progress").hidden = true; showNotice("The upload failed (network error)."); };
  setProgress("uploading " + file.name, 0);
  xhr.send(form);
}

// a file on the web: the server fetches it (only from public addresses, unless it is told otherwise)
$("url-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const url = $("url").value.trim();
  if (url) fromUrl(url);
});

async function fromUrl(url) {
  showNotice("");
  let query;
  try { query = analyzeQuery(); } catch (e) { showNotice("Not analysed: " + e.message); return; }
  const q = new URLSearchParams(query.slice(1));
  q.set("url", url);
  setProgress("fetching " + url, null);
  let r, body = null;
  try {
    r = await fetch("/v1/analyze?" + q.toString(), { method: "POST" });
    body = await r.json().catch(() => null);
  } catch (e) { $("progress").hidden = true; showNotice("The request failed (network error)."); return; }
  if (!r.ok || !body || !body.id) {
    $("progress").hidden = true;
    showNotice("Not analysed: " + ((body && body.error && body.error.message) || r.statusText));
    return;
  }
  setProgress("queued", 0);
  openJob(body.id);
  refreshJobs();
}

// ---- one job --------------------------------------------------------------------------------------------
async function openJob(id) {
  clearTimeout(state.pollTimer);
  state.job = { id };
  const result = $("result");
  result.dataset.state = "loading";
  let job;
  try { job = await api("/v1/jobs/" + id); } catch (e) { showNotice(e.message); return; }
  if (state.job.id !== id) return;
  state.job = job;
  highlightJob(id);
  if (job.status === "queued" || job.status === "running") {
    setProgress(job.status === "queued" ? "waiting for a worker" : "analysing " + job.filename, job.progress);
    state.pollTimer = setTimeout(() => openJob(id), 400);
    return;
  }
  $("progress").hidden = true;
  showResult(job);
}

function showResult(job) {
  const result = $("result");
  result.hidden = false;
  $("result-title").textContent = job.filename;
  const err = $("result-error");
  err.hidden = job.status !== "failed";
  err.textContent = job.status === "failed" ? "Failed: " + job.error : "";
  const player = $("player");
  player.pause();
  for (const t of player.querySelectorAll("track")) t.remove();
  const photo = job.status === "done" && isPhoto(job);  // a photo: its figure instead of player and timeline
  $("photo").hidden = !photo;
  result.classList.toggle("photo", photo);
  $("timeline-wrap").hidden = photo;
  if (photo) $("photo").src = job.links.png;
  else $("photo").removeAttribute("src");
  if (job.status !== "done") {
    result.dataset.state = job.status;
    player.removeAttribute("src");
    player.hidden = true;
    $("no-video").hidden = true;
    state.windows = [];
    state.all = [];
    state.boxes = [];
    state.rows = ROWS;
    $("tracks").hidden = true;
    $("facebox").hidden = true;
    drawTimeline();
    $("summary").replaceChildren();
    $("downloads").replaceChildren();
    $("legend").replaceChildren();
    $("now").textContent = "";
    return;
  }
  const res = job.result || { windows: [], metadata: {} };
  state.all = res.windows;
  state.windows = res.windows;
  state.boxes = faceBoxes(job, res.metadata || {});
  state.labels = (res.metadata && res.metadata.labels) || Object.keys(COLORS);
  state.duration = Math.max(job.media.duration || 0, ...state.windows.map((w) => w.end));
  state.rows = state.windows.some((w) => "transcript" in w) ? [...ROWS, "text"] : ROWS;
  state.absent = {  // what an empty row means in this file
    face: job.media.has_video === false ? "no video track" : "no face",
    voice: job.media.has_audio === false ? "no audio track" : "no speech",
    text: "no words",
  };
  if (photo) {
    player.removeAttribute("src");
    player.hidden = true;
    $("no-video").hidden = true;
  } else if (job.links.video) {
    player.hidden = false;
    $("no-video").hidden = true;
    player.src = job.links.video;
    if (job.links.vtt) {  // the labels as subtitles (the player's captions menu)
      player.append(el("track", { kind: "subtitles", label: "emotions", srclang: "en", src: job.links.vtt }));
    }
  } else {
    player.removeAttribute("src");
    player.hidden = true;
    $("no-video").hidden = false;
  }
  renderLegend();
  renderTracks(job);
  renderDownloads(job);
  result.dataset.state = "done";
  showNow(0);
}

function renderLegend() {
  $("legend").replaceChildren(...state.labels.map((name) =>
    el("span", { style: "--c:" + (COLORS[name] || "#444") }, name)));
}

function bars(dist) {
  const box = el("div", { class: "bars" });
  for (const name of state.labels) {
    const p = dist ? dist[name] || 0 : 0;
    box.append(el("span", {}, name),
      el("div", { class: "track" }, el("div", { class: "fill", style: `width:${(p * 100).toFixed(1)}%;background:${COLORS[name]}` })),
      el("span", {}, pct(p)));
  }
  return box;
}

function isPhoto(job) { return Boolean(job.media && job.media.kind === "image"); }

// ---- several faces (all_faces): one timeline each, chosen with buttons; the chosen face boxed on the video ----
function renderTracks(job) {
  const tracks = [...new Set(state.all.map((w) => w.track).filter((t) => t != null))].sort((a, b) => a - b);
  const bar = $("tracks");
  state.track = null;
  if (tracks.length < 2 || isPhoto(job)) {  // one face (or a photo, whose figure shows every face)
    bar.hidden = true;
    selectTrack(job, null);
    return;
  }
  const faceShare = (t) => { const ws = state.all.filter((w) => w.track === t); return ws.filter((w) => w.face).length / ws.length; };
  const main = tracks.reduce((a, b) => (faceShare(b) > faceShare(a) ? b : a));
  bar.replaceChildren(el("span", { class: "muted" }, `${tracks.length} faces:`),
    ...tracks.map((t) => el("button", { type: "button", "data-track": String(t),
                                        onclick: () => selectTrack(job, t) }, `face ${t}`)));
  bar.hidden = false;
  selectTrack(job, main);
}

function selectTrack(job, track) {
  state.track = track;
  state.windows = track == null ? state.all : state.all.filter((w) => w.track === track);
  for (const b of $("tracks").querySelectorAll("button")) b.classList.toggle("active", b.dataset.track === String(track));
  $("tracks").dataset.track = track == null ? "" : String(track);
  renderSummary(job);
  drawTimeline();
  showBox(cursorTime);
}

// face boxes per sampled frame, as shares of the picture (the analysis's decoded frames: longer side decode_side)
function faceBoxes(job, metadata) {
  const m = job.media || {};
  const turned = Math.abs(m.rotation || 0) % 180 === 90;
  const w = turned ? m.height : m.width, h = turned ? m.width : m.height;
  const side = (metadata.config || {}).decode_side || 640;
  if (!w || !h) return [];
  const s = Math.max(w, h) > side ? side / Math.max(w, h) : 1;
  return (metadata.face_boxes || []).map(([t, track, x0, y0, x1, y1]) =>
    ({ t, track, x0: x0 / (w * s), y0: y0 / (h * s), x1: x1 / (w * s), y1: y1 / (h * s) }));
}

function showBox(t) {
  const box = $("facebox");
  const player = $("player");
  const mine = state.track == null || $("tracks").hidden ? [] : state.boxes.filter((b) => b.track === state.track);
  let best = null;
  for (const b of mine) if (!best || Math.abs(b.t - t) < Math.abs(best.t - t)) best = b;
  if (!best || Math.abs(best.t - t) > 0.5 || player.hidden || !player.videoWidth) { box.hidden = true; return; }
  // the picture inside the element (letterboxed when their shapes differ)
  const ew = player.clientWidth, eh = player.clientHeight;
  const k = Math.min(ew / player.videoWidth, eh / player.videoHeight);
  const pw = player.videoWidth * k, ph = player.videoHeight * k, ox = (ew - pw) / 2, oy = (eh - ph) / 2;
  Object.assign(box.style, { left: `${ox + best.x0 * pw}px`, top: `${oy + best.y0 * ph}px`,
                             width: `${(best.x1 - best.x0) * pw}px`, height: `${(best.y1 - best.y0) * ph}px` });
  const seg = windowAt(t);
  box.style.borderColor = (seg && COLORS[seg.w.label]) || "#fff";
  box.dataset.track = String(state.track);
  box.hidden = false;
}

function renderSummary(job) {
  const all = job.summary || {};
  const s = state.track != null && all.tracks ? (all.tracks[String(state.track)] || all) : all;
  if (isPhoto(job)) {
    $("summary").replaceChildren(
      el("div", { class: "muted" }, "the face's emotion"),
      el("div", { class: "dominant", id: "dominant" }, s.face_dominant || "no face found"),
      el("p", { class: "muted" }, `a photo, ${job.media.width} × ${job.media.height} px · analysed in ${fmtTime(job.elapsed)}`),
      bars(s.fused_distribution));
    return;
  }
  const lines = el("p", { class: "muted" },
    `face: ${s.face_dominant || state.absent.face} · voice: ${s.voice_dominant || state.absent.voice} · ` +
    `face in ${pct(s.face_coverage)} of the windows, speech in ${pct(s.speech_coverage)} · ` +
    `${fmtTime(job.media.duration)}, ${s.windows} window${s.windows === 1 ? "" : "s"} · ` +
    `analysed in ${fmtTime(job.elapsed)}` +
    (s.uncertain_share != null ? ` · uncertain in ${pct(s.uncertain_share)} of the windows` : "") +
    settingsText(job.options));
  $("summary").replaceChildren(
    el("div", { class: "muted" }, "dominant emotion (face and voice fused)"),
    el("div", { class: "dominant", id: "dominant" }, s.dominant || "—"),
    lines, bars(s.fused_distribution));
}

// the settings a job was given, where they differ from the defaults
function settingsText(options) {
  const o = options || {};
  const parts = [];
  if (o.window != null) parts.push(`${o.window} s windows`);
  if (o.hop != null) parts.push(`every ${o.hop} s`);
  if (o.fps != null) parts.push(`${o.fps} face frames/s`);
  if (o.language) parts.push(`speech taken as ${o.language}`);
  if (o.all_faces) parts.push("every face");
  if (o.start != null || o.end != null) parts.push(`from ${fmtTime(o.start || 0)} to ${o.end != null ? fmtTime(o.end) : "the end"}`);
  return parts.length ? " · " + parts.join(", ") : "";
}

function renderDownloads(job) {
  const items = isPhoto(job) ? [["csv", "result (CSV)"], ["json", "result and summary (JSON)"], ["png", "figure (PNG)"]]
    : [["csv", "timeline (CSV)"], ["json", "timeline and summary (JSON)"], ["png", "timeline plot (PNG)"],
       ["vtt", "subtitles (WebVTT)"]];
  $("downloads").replaceChildren(el("div", { class: "muted" }, "downloads"),
    ...items.filter(([k]) => job.links[k]).map(([k, text]) => el("a", { href: job.links[k], download: "" }, text)));
}

// ---- the timeline -------------------------------------------------------------------------------------
const canvas = $("timeline");
const LEFT = 58, TOP = 6, ROW_H = 56, GAP = 10, AXIS = 26;

function xOf(t, width) { return LEFT + (t / (state.duration || 1)) * (width - LEFT - 8); }
function tOf(x, width) { return Math.min(state.duration, Math.max(0, ((x - LEFT) / (width - LEFT - 8)) * state.duration)); }

function segments() {
  // each window drawn around its centre, between the midpoints to its neighbours
  const mids = state.windows.map((w) => (w.start + w.end) / 2);
  return state.windows.map((w, i) => ({
    w, from: i === 0 ? w.start : (mids[i - 1] + mids[i]) / 2,  // a stretch of the file starts at its first window
    to: i === mids.length - 1 ? w.end : (mids[i] + mids[i + 1]) / 2,
  }));
}

function drawTimeline() {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  const height = TOP + state.rows.length * (ROW_H + GAP) + AXIS;
  canvas.style.height = height + "px";
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "left";
  const segs = segments();
  state.rows.forEach((row, r) => {
    const y0 = TOP + r * (ROW_H + GAP);
    ctx.fillStyle = "#eef0f3";
    ctx.fillRect(LEFT, y0, width - LEFT - 8, ROW_H);
    ctx.fillStyle = "#1d2329";
    ctx.textBaseline = "middle";
    ctx.fillText(row, 6, y0 + ROW_H / 2);
    for (const { w, from, to } of segs) {
      const x0 = xOf(from, width), x1 = xOf(to, width);
      let acc = 0;
      let any = false;
      for (const name of state.labels) {
        const p = w[`${row}_${name}`];
        if (p == null) continue;
        any = true;
        ctx.fillStyle = COLORS[name] || "#444";
        ctx.fillRect(x0, y0 + ROW_H * (1 - acc - p), Math.max(1, x1 - x0), ROW_H * p);
        acc += p;
      }
      if (any && row === "text" && w.text_emotion_words === 0) {  // words the fusion leaves out: pale
        ctx.fillStyle = "rgba(255, 255, 255, 0.6)";
        ctx.fillRect(x0, y0, Math.max(1, x1 - x0), ROW_H);
      }
      if (!any) {  // no face / no speech in this window
        ctx.fillStyle = "#c9ced6";
        for (let x = x0; x < x1; x += 6) ctx.fillRect(x, y0, 1, ROW_H);
      }
    }
  });
  // time axis
  const yAxis = TOP + state.rows.length * (ROW_H + GAP) - GAP + 6;
  ctx.fillStyle = "#66707a";
  ctx.textBaseline = "top";
  const step = niceStep(state.duration);
  for (let t = 0; t <= state.duration + 1e-6 && step > 0; t += step) {
    const x = xOf(t, width);
    ctx.fillRect(x, yAxis - 6, 1, 5);
    ctx.textAlign = t === 0 ? "left" : x > width - 30 ? "right" : "center";
    ctx.fillText(t.toFixed(step < 1 ? 1 : 0) + " s", x, yAxis + 1);
  }
  canvas.dataset.windows = String(state.windows.length);
  canvas.dataset.rows = state.rows.join(" ");
  // keep a copy of the drawn timeline: the cursor is drawn over it, and moved by restoring it
  const base = document.createElement("canvas");
  base.width = canvas.width;
  base.height = canvas.height;
  base.getContext("2d").drawImage(canvas, 0, 0);
  canvas._base = base;
  drawCursor();
}

function niceStep(d) {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (d / s <= 12) return s;
  return 1200;
}

let cursorTime = 0;
function drawCursor() {
  if (!state.windows.length || !canvas._base) return;
  const width = canvas.clientWidth || 800;
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(canvas._base, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const x = xOf(cursorTime, width);
  ctx.fillStyle = "#111";
  ctx.fillRect(x - 1, 0, 2, TOP + state.rows.length * (ROW_H + GAP) - GAP + 2);
  canvas.dataset.cursor = cursorTime.toFixed(3);
  canvas.dataset.cursorX = String(Math.round(x));
}

function setCursor(t) {
  cursorTime = t;
  drawCursor();
  showNow(t);
  showBox(t);
}

function windowAt(t) {
  const segs = segments();
  return segs.find((s) => t >= s.from && t <= s.to) || null;
}

function showNow(t) {
  const seg = windowAt(t);
  if (!seg) { $("now").textContent = ""; return; }
  const w = seg.w;
  const top = (row) => {
    let best = null;
    for (const name of state.labels) {
      const p = w[`${row}_${name}`];
      if (p != null && (!best || p > best[1])) best = [name, p];
    }
    return best ? `${best[0]} ${best[1].toFixed(2)}` : ((state.absent || {})[row] || "—");
  };
  // what the fused answer rests on: each modality's weight in the window, and whether it is uncertain
  const weights = Object.keys(w).filter((k) => k.startsWith("weight_") && w[k] > 0)
    .map((k) => `${k.slice(7)} ${pct(w[k])}`).join(", ");
  $("now").textContent = `${t.toFixed(1)} s — window ${w.start.toFixed(1)}–${w.end.toFixed(1)} s · face: ${top("face")} · ` +
    `voice: ${top("voice")} · fused: ${top("fused")}${w.uncertain ? " (uncertain)" : ""}` +
    (weights ? ` · weights: ${weights}` : "") +
    (state.rows.includes("text") ? ` · text: ${top("text")}` +
      (w.text_emotion_words === 0 ? " (pale, left out of the fused answer: no feeling stated)" : "") +
      (w.transcript ? ` — “${w.transcript}”` : "") : "");
}

canvas.addEventListener("click", (e) => {
  if (!state.windows.length) return;
  const rect = canvas.getBoundingClientRect();
  const t = tOf(e.clientX - rect.left, rect.width);
  const player = $("player");
  if (player.getAttribute("src")) player.currentTime = t;
  setCursor(t);
});

function follow() {
  const player = $("player");
  if (state.windows.length && player.getAttribute("src") && Math.abs(player.currentTime - cursorTime) > 0.01) {
    setCursor(player.currentTime);
  }
  requestAnimationFrame(follow);
}
requestAnimationFrame(follow);
window.addEventListener("resize", drawTimeline);

// ---- the jobs list ---------------------------------------------------------------------------------------
async function refreshJobs() {
  clearTimeout(state.jobsTimer);
  let body;
  try { body = await api("/v1/jobs?limit=50"); } catch (e) { state.jobsTimer = setTimeout(refreshJobs, 10000); return; }
  const rows = body.jobs.map((job) => {
    const status = job.status === "running" ? `running ${pct(job.progress)}` : job.status;
    return el("tr", { "data-id": job.id, class: state.job && state.job.id === job.id ? "current" : "" },
      el("td", {}, el("a", { href: "#" + job.id, onclick: (e) => { e.preventDefault(); openJob(job.id); } }, job.filename)),
      el("td", { class: "status-" + job.status, title: job.error || "" }, status),
      el("td", {}, (job.summary && job.summary.dominant) || ""),
      el("td", {}, isPhoto(job) ? "photo" : fmtTime(job.media && job.media.duration)),
      el("td", {}, fmtDate(job.created)),
      el("td", {}, el("button", { type: "button", class: "small", onclick: () => removeJob(job.id) }, "delete")));
  });
  $("jobs").tBodies[0].replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
  const busy = body.jobs.some((j) => j.status === "queued" || j.status === "running");
  state.jobsTimer = setTimeout(refreshJobs, busy ? 1500 : 10000);
}

function highlightJob(id) {
  for (const tr of $("jobs").tBodies[0].rows) tr.classList.toggle("current", tr.dataset.id === id);
}

async function removeJob(id) {
  try { await api("/v1/jobs/" + id, { method: "DELETE" }); } catch (e) { showNotice(e.message); }
  if (state.job && state.job.id === id) {
    clearTimeout(state.pollTimer);
    state.job = null;
    $("player").pause();
    $("player").removeAttribute("src");
    $("result").hidden = true;
    $("result").dataset.state = "empty";
    $("progress").hidden = true;
  }
  refreshJobs();
}

$("refresh").addEventListener("click", refreshJobs);
refreshJobs();
if (location.hash.length === 33) openJob(location.hash.slice(1));

// ---- live -------------------------------------------------------------------------------------------------
const live = { ws: null, stream: null, audioCtx: null, frameTimer: null, t0: 0, sent: new Map(), events: 0,
  latencies: [], rtts: [], pcm: [], pcmLen: 0, ratio: 1 };

function liveStatus(text) { $("live-status").textContent = text; }
function liveError(text) { const e = $("live-error"); e.textContent = text; e.hidden = !text; }
const now = () => (performance.now() - live.t0) / 1000;

function header(kind, t, payloadBytes) {
  const buf = new ArrayBuffer(9 + payloadBytes);
  const view = new DataView(buf);
  view.setUint8(0, kind);
  view.setFloat64(1, t, true);
  return buf;
}

async function liveStart() {
  liveError("");
  const wantAudio = $("live-audio").checked;
  const video = { width: 640, height: 480 };
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video, audio: wantAudio });
  } catch (e) {
    try {  // no microphone (or not allowed): the face alone
      if (!wantAudio) throw e;
      live.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
      liveError("No microphone (" + e.message + "): the face alone.");
    } catch (e2) {
      liveError("No camera: " + e2.message);
      return;
    }
  }
  $("cam").srcObject = live.stream;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  live.events = 0; live.latencies = []; live.rtts = []; live.sent.clear(); live.summary = null;
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
  liveStatus("connecting");
  const hasAudio = live.stream.getAudioTracks().length > 0;
  const text = hasAudio && $("live-text").checked;
  const allFaces = $("live-faces").checked;
  $("live-words").hidden = true;
  $("cam-faces").replaceChildren();
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", video: true, audio: hasAudio, text, all_faces: allFaces }));
  ws.onmessage = (msg) => onLiveMessage(JSON.parse(msg.data), hasAudio);
  ws.onclose = () => { if (!live.summary) liveStatus("stopped"); liveCleanup(); };
  ws.onerror = () => liveError("The connection to the server failed.");
}

async function onLiveMessage(msg, hasAudio) {
  if (msg.type === "loading") liveStatus("loading the models");
  else if (msg.type === "ready") {
    liveStatus("running");
    live.t0 = performance.now();
    startFrames(msg.fps || 5);
    if (hasAudio) await startAudio(msg.sample_rate || 16000);
  } else if (msg.type === "event") showLiveEvent(msg);
  else if (msg.type === "summary") {
    live.summary = msg;
    const lat = msg.latency_ms || {};
    liveStatus(`stopped: ${msg.events} events, median server latency ${lat.median ?? "—"} ms`);
  } else if (msg.type === "error") liveError(msg.message);
}

function startFrames(fps) {
  const video = $("cam");
  const grab = document.createElement("canvas");
  live.frameTimer = setInterval(() => {
    const ws = live.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth || ws.bufferedAmount > 1e6) return;
    const scale = Math.min(1, 640 / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const t = Math.round(now() * 1e4) / 1e4;
    grab.toBlob(async (blob) => {
      if (!blob || ws.readyState !== WebSocket.OPEN) return;
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      const buf = header(1, t, jpeg.length);
      new Uint8Array(buf, 9).set(jpeg);
      live.sent.set(t.toFixed(4), performance.now());
      ws.send(buf);
    }, "image/jpeg", 0.8);
  }, 1000 / fps);
}

async function startAudio(rate) {
  const ctx = new AudioContext();
  live.audioCtx = ctx;
  live.ratio = ctx.sampleRate / rate;
  const source = ctx.createMediaStreamSource(live.stream);
  const onSamples = (samples) => pushAudio(samples, rate);
  if (ctx.audioWorklet) {
    const code = "class Tap extends AudioWorkletProcessor { process(inputs) { const c = inputs[0][0];" +
      " if (c) this.port.postMessage(c.slice(0)); return true; } } registerProcessor('avemo-tap', Tap);";
    await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: "application/javascript" })));
    const node = new AudioWorkletNode(ctx, "avemo-tap");
    node.port.onmessage = (e) => onSamples(e.data);
    source.connect(node);
  } else {
    const node = ctx.createScriptProcessor(2048, 1, 1);
    node.onaudioprocess = (e) => onSamples(e.inputBuffer.getChannelData(0).slice(0));
    source.connect(node);
    node.connect(ctx.destination);
  }
}

function pushAudio(samples, rate) {
  // resample to `rate` by linear interpolation, send 0.1 s at a time as int16
  live.pcm.push(samples);
  live.pcmLen += samples.length;
  const need = Math.ceil(rate * 0.1 * live.ratio);
  if (live.pcmLen < need) return;
  const all = new Float32Array(live.pcmLen);
  let o = 0;
  for (const part of live.pcm) { all.set(part, o); o += part.length; }
  const n = Math.floor(all.length / live.ratio);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const x = i * live.ratio, j = Math.floor(x), f = x - j;
    const v = j + 1 < all.length ? all[j] * (1 - f) + all[j + 1] * f : all[j];
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  }
  const used = Math.round(n * live.ratio);
  live.pcm = used < all.length ? [all.slice(used)] : [];
  live.pcmLen = all.length - used;
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const t = Math.round(now() * 1e4) / 1e4;
  const buf = header(2, t, out.byteLength);
  new Uint8Array(buf, 9).set(new Uint8Array(out.buffer));
  live.sent.set(t.toFixed(4), performance.now());
  ws.send(buf);
}

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function showLiveEvent(ev) {
  live.events += 1;
  $("live").dataset.events = String(live.events);
  $("live").dataset.lastSource = ev.source;
  $("live-count").textContent = String(live.events);
  $("live-label").textContent = ev.label || "—";
  $("live-conf").textContent = ev.confidence != null ? ev.confidence.toFixed(2) : "";
  const sources = { av: "face and voice", face: "face only", voice: "voice only", text: "words only",
                    none: "no face, no speech" };
  $("live-source").textContent = sources[ev.source] || ev.source;
  if (ev.transcript != null) {  // the latest utterance's words, while they count
    const fused = ev.weights && ev.weights.text > 0;
    $("live-words").textContent = `said: “${ev.transcript || "…"}”` +
      (fused ? ` (words weigh ${pct(ev.weights.text)})` : " (no feeling stated: not fused)");
    $("live-words").hidden = false;
  }
  if (ev.faces) showLiveFaces(ev.faces);
  state.labels = state.labels.length ? state.labels : Object.keys(COLORS);
  $("live-bars").replaceChildren(...bars(ev.smoothed).childNodes);
  live.latencies.push(ev.latency_ms);
  const sentAt = live.sent.get(ev.time.toFixed(4));
  if (sentAt != null) live.rtts.push(performance.now() - sentAt);
  if (live.latencies.length > 50) live.latencies.shift();
  if (live.rtts.length > 50) live.rtts.shift();
  if (live.sent.size > 500) live.sent = new Map([...live.sent].slice(-200));
  $("live-latency").textContent = `${Math.round(ev.latency_ms)} ms (median ${Math.round(median(live.latencies))} ms)`;
  const rtt = median(live.rtts);
  $("live-rtt").textContent = rtt == null ? "—" : `median ${Math.round(rtt)} ms`;
  $("live").dataset.medianRtt = rtt == null ? "" : String(Math.round(rtt));
}

// with "all faces": a box per face over the camera picture, in its own label's colour, the label above it
function showLiveFaces(faces) {
  const cam = $("cam");
  if (!cam.videoWidth) return;
  const ew = cam.clientWidth, eh = cam.clientHeight;  // the picture inside the element (letterboxed)
  const k = Math.min(ew / cam.videoWidth, eh / cam.videoHeight);
  const pw = cam.videoWidth * k, ph = cam.videoHeight * k, ox = (ew - pw) / 2, oy = (eh - ph) / 2;
  $("cam-faces").replaceChildren(...faces.map((f) => {
    const [x0, y0, x1, y1] = f.box;
    const color = COLORS[f.label] || "#fff";
    const box = el("div", { class: "facebox live-face", "data-track": String(f.track), "data-label": f.label },
      el("span", { class: "tag" }, `${f.main ? "★ " : ""}${f.label} ${f.confidence.toFixed(2)}`));
    Object.assign(box.style, { left: `${ox + x0 * pw}px`, top: `${oy + y0 * ph}px`, width: `${(x1 - x0) * pw}px`,
                               height: `${(y1 - y0) * ph}px`, borderColor: color, backgroundColor: "transparent" });
    box.querySelector(".tag").style.backgroundColor = color;
    return box;
  }));
}

function liveStop() {
  if (live.ws && live.ws.readyState === WebSocket.OPEN) {
    live.ws.send(JSON.stringify({ type: "stop" }));
    liveStatus("stopping");
  }
  stopCapture();
}

function stopCapture() {
  clearInterval(live.frameTimer);
  live.frameTimer = null;
  if (live.audioCtx) { live.audioCtx.close(); live.audioCtx = null; }
  if (live.stream) { for (const track of live.stream.getTracks()) track.stop(); live.stream = null; }
  live.pcm = []; live.pcmLen = 0;
}

function liveCleanup() {
  stopCapture();
  live.ws = null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("live-start").addEventListener("click", liveStart);
$("live-stop").addEventListener("click", liveStop);
