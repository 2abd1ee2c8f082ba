"""The HTTP service: :func:`create_app` builds the FastAPI application.

Routes (JSON unless said otherwise; every error is ``{"error": {"code", "message"}}`` with a 4xx/5xx)::

    GET    /                          the browser page (static files under /static/)
    GET    /healthz                   liveness and worker readiness (never needs the API key)
    GET    /v1/models                 the shipped bundles, their settings and model cards
    POST   /v1/analyze[?wait=true]    upload a video or audio file -> 202 {job}; with wait, 200 {job + result}
    GET    /v1/jobs                   jobs, newest first (?limit, ?offset, ?status)
    GET    /v1/jobs/{id}              status, progress; when done the summary and the timeline
    GET    /v1/jobs/{id}/timeline.csv | timeline.json | plot.png | video
    DELETE /v1/jobs/{id}              remove a job and its files (a running one is stopped)
    WS     /v1/live                   webcam frames and microphone audio in, running labels out
    GET    /openapi.json              the OpenAPI schema

With an API key set (``AVEMO_API_KEY``), every route but ``/healthz`` needs it: header
``X-API-Key`` or ``Authorization: Bearer``, or the ``avemo_key`` cookie that ``/?key=...`` sets for
the page (the browser then sends it with every request and the WebSocket).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from avemo import __version__
from avemo.errors import MediaError
from avemo.serve import engine
from avemo.serve.errors import ApiError, not_found
from avemo.serve.livesocket import live_session
from avemo.serve.settings import Settings, settings_from_env
from avemo.serve.store import STATUSES, Job, JobStore
from avemo.serve.uploads import Received, display_name, receive_upload
from avemo.serve.workers import WorkerPool

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
KEY_COOKIE = "avemo_key"
_OPEN_PATHS = frozenset({"/healthz"})
_MEDIA_TYPES = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm", "wav": "audio/wav",
                "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}
_DOWNLOADS = {"timeline.csv": ("csv", "text/csv"), "timeline.json": ("json", "application/json"),
              "plot.png": ("png", "image/png"), "timeline.vtt": ("vtt", "text/vtt")}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, with its job store and worker pool (started and stopped with the app)."""
    settings = (settings or settings_from_env()).check()
    store = JobStore(settings.data_dir)
    pool = WorkerPool(store, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queued, failed = store.recover()
        if failed:
            log.warning("%d job(s) were running when the server stopped; marked failed", len(failed))
        pool.start()
        for job_id in queued:
            pool.submit(job_id)
        app.state.live_slots = asyncio.Semaphore(settings.live_sessions)
        yield
        await run_in_threadpool(pool.stop)
        store.close()

    app = FastAPI(title="avemo", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Audio-visual emotion recognition: face, voice and fused emotions over time.")
    app.state.settings, app.state.store, app.state.pool = settings, store, pool
    _add_error_handlers(app)
    _add_auth(app, settings)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ---- the page and health ---------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        key = request.query_params.get("key")
        if key is not None and settings.api_key:  # the key has been checked: keep it in a cookie, out of the URL
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict")
            return response
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Liveness and worker readiness")
    def healthz() -> dict[str, Any]:
        status = pool.status()
        return {"status": "ok", "version": __version__, "workers": status["workers"], "ready": status["ready"],
                "busy": status["busy"], "queued": status["queued"]}

    @app.get("/v1/models", summary="The shipped model bundles and their cards")
    def models() -> dict[str, Any]:
        return {"analysis": pool.model_names, "bundles": _bundles()}

    # ---- jobs ------------------------------------------------------------------------------------
    @app.post("/v1/analyze", status_code=202, summary="Upload a video or audio file to analyse",
              responses={200: {"description": "with ?wait=true: the finished job and its result"},
                         202: {"description": "the job, queued"}},
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def analyze(request: Request, wait: bool = Query(False, description="answer with the result when it "
                                                                               "is ready within the wait limit"),
                      filename: str | None = Query(None, description="file name for a raw-body upload"),
                      text: bool = Query(False, description="also transcribe the speech offline (Whisper base) and "
                                                            "give each window's words and their emotions (English "
                                                            "text model; slower)"),
                      language: str | None = Query(None, description="with text: the speech's language as a "
                                                                      "Whisper code (en, de, ...); default detected"),
                      window: float | None = Query(None, description="window length, seconds (default 3)"),
                      hop: float | None = Query(None, description="step between windows, seconds (default 1)"),
                      fps: float | None = Query(None, description="face sampling rate, frames per second "
                                                                  "(default 5)"),
                      all_faces: bool = Query(False, description="a timeline for every face (up to 4; windows told "
                                                                 "apart by their track) instead of the main face's"),
                      start: float | None = Query(None, description="analyse from this second of the file (default 0)"),
                      end: float | None = Query(None, description="analyse up to this second (default: the end)"),
                      url: str | None = Query(None, description="analyse the file at this http(s) URL instead of an "
                                                                "upload (fetched by the server; only from public "
                                                                "addresses unless the server allows more)")
                      ) -> Response:
        if pool.queued >= settings.max_queued:
            raise ApiError(503, "busy", f"{pool.queued} jobs are waiting already; try again later")
        options = await run_in_threadpool(_options, text, language, {"window": window, "hop": hop, "fps": fps})
        if all_faces:
            options["all_faces"] = True
        options.update(_stretch(start, end))
        if url is not None:
            if int(request.headers.get("content-length") or 0) > 0:
                raise ApiError(400, "bad_request", "give a url or upload a file, not both")
            received = await run_in_threadpool(_fetch_url, url, store, settings)
            options["url"] = url
        else:
            received = await receive_upload(request, store.new_incoming(), settings.max_upload_bytes)
        try:
            media = await run_in_threadpool(engine.check_media, received.path, received.filename)
            _check_stretch(received.filename, media["duration"], options, settings.max_duration_s)
            job = await run_in_threadpool(store.create, received.path, filename=received.filename,
                                          size=received.size, media=media, options=options)
        except MediaError as exc:
            raise _media_error(exc) from None
        finally:
            received.path.unlink(missing_ok=True)  # moved into the job when accepted
        pool.submit(job.id)
        if wait:
            deadline = time.monotonic() + settings.wait_s
            while time.monotonic() < deadline:
                job = await run_in_threadpool(store.get, job.id)
                if job is None or job.status in ("done", "failed"):
                    break
                await asyncio.sleep(0.1)
            if job is None:
                raise not_found("job")
            if job.status in ("done", "failed"):
                return JSONResponse(await run_in_threadpool(_job_view, store, job, True), status_code=200)
        return JSONResponse(_job_view(store, job, False), status_code=202,
                            headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs", summary="Jobs, newest first")
    def jobs(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
             status: str | None = Query(None, description=f"one of {', '.join(STATUSES)}")) -> dict[str, Any]:
        if status is not None and status not in STATUSES:
            raise ApiError(422, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
        return {"jobs": [_job_view(store, j, False) for j in store.list(limit=limit, offset=offset, status=status)],
                "counts": store.counts()}

    @app.get("/v1/jobs/{job_id}", summary="A job: status, progress, and when done its summary and timeline")
    def job(job_id: str) -> dict[str, Any]:
        return _job_view(store, _get(store, job_id), True)

    @app.get("/v1/jobs/{job_id}/{name}", summary="A result file: timeline.csv, timeline.json, plot.png or video")
    def job_file(job_id: str, name: str) -> Response:
        found = _get(store, job_id)
        if name not in (*_DOWNLOADS, "video"):
            raise not_found(f"result file {name!r}")
        if found.status != "done":
            raise ApiError(409, "not_ready", f"job {job_id} is {found.status}" +
                           (f": {found.error}" if found.error else "; its results are not there yet"))
        key, media_type = _DOWNLOADS.get(name, ("video", None))
        file = found.files.get(key)
        if file is None:
            raise ApiError(404, "not_found", "this job has no video a browser can play" if key == "video"
                           else f"this job has no {name}")
        path = store.job_dir(job_id) / file
        if key == "png" and not path.is_file() and (path.parent / found.files["json"]).is_file():
            path = engine.plot_png(path.parent)
        if not path.is_file():
            raise ApiError(404, "not_found", f"the {name} of job {job_id} is missing on the server")
        if key == "video":
            media_type = "video/mp4" if file == "preview.mp4" else _MEDIA_TYPES.get(found.media.get("format"),
                                                                                     "application/octet-stream")
            return FileResponse(path, media_type=media_type)
        stem = Path(found.filename).stem or "upload"
        return FileResponse(path, media_type=media_type, filename=f"{stem}.{name}")

    @app.delete("/v1/jobs/{job_id}", summary="Remove a job and its files (stopping it when running)")
    def delete_job(job_id: str) -> dict[str, Any]:
        found = _get(store, job_id)
        if found.status == "running":
            pool.cancel(job_id)
        store.delete(job_id)
        return {"deleted": job_id, "was": found.status}

    # ---- live ------------------------------------------------------------------------------------
    @app.websocket("/v1/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        if settings.api_key and not _key_ok(settings.api_key, ws.headers, ws.cookies, ws.query_params):
            await ws.send_json({"type": "error", "code": "unauthorized", "message": "a valid API key is required"})
            await ws.close(1008)
            return
        await live_session(ws, settings, ws.app.state.live_slots)

    return app


# ---- helpers -------------------------------------------------------------------------------------------
_bundle_cache: list[dict[str, Any]] = []


def _bundles() -> list[dict[str, Any]]:
    if not _bundle_cache:
        _bundle_cache.extend(engine.bundles_info())
    return _bundle_cache


def _get(store: JobStore, job_id: str) -> Job:
    found = store.get(job_id)
    if found is None:
        raise not_found(f"job {job_id!r}")
    return found


def _job_view(store: JobStore, job: Job, with_result: bool) -> dict[str, Any]:
    out = job.to_dict()
    base = f"/v1/jobs/{job.id}"
    out["links"] = {"self": base, **{key: f"{base}/{name}" for name, (key, _) in _DOWNLOADS.items()
                                     if key in job.files}}
    if "video" in job.files:
        out["links"]["video"] = f"{base}/video"
    if with_result and job.status == "done":
        doc = json.loads((store.job_dir(job.id) / job.files["json"]).read_text())
        out["result"] = {"windows": doc.get("windows", []), "metadata": doc.get("metadata", {})}
    return out


def _options(text: bool, language: str | None, numbers: dict[str, float | None]) -> dict[str, Any]:
    """A job's analysis options (those the client gave), checked before its upload is read."""
    out: dict[str, Any] = {"text": True} if text else {}
    if language is not None:
        if not text:
            raise ApiError(422, "invalid_request", "language applies to text (the transcript's language); add "
                                                   "text=true")
        from avemo.text.transcribe import whisper_languages

        known = whisper_languages()
        if language not in known:
            raise ApiError(422, "invalid_request", f"unknown language {language!r}; Whisper knows {', '.join(known)}")
        out["language"] = language
    for name, value in numbers.items():
        if value is None:
            continue
        low, high = engine.OPTION_BOUNDS[name]
        if not low <= value <= high:  # NaN fails too
            raise ApiError(422, "invalid_request", f"{name} must be within {low:g} to {high:g}, got {value:g}")
        out[name] = float(value)
    return out


def _stretch(start: float | None, end: float | None) -> dict[str, float]:
    """A job's ``start`` / ``end`` (seconds of the file), checked before its upload is read."""
    if (start is not None and not (math.isfinite(start) and start >= 0)) or (
            end is not None and not (math.isfinite(end) and end > (start or 0.0))):
        raise ApiError(422, "invalid_request", f"start and end must give 0 <= start < end seconds, got start "
                                               f"{start}, end {end}")
    return {k: float(v) for k, v in (("start", start), ("end", end)) if v is not None}


def _fetch_url(url: str, store: JobStore, settings: Settings) -> Received:
    """The file at ``url``, fetched into the incoming folder as an upload would arrive (its size limit, and with
    ``urls=public`` only from public addresses)."""
    import shutil
    import urllib.parse
    import uuid

    from avemo.media.fetch import fetch

    if settings.urls == "off":
        raise ApiError(403, "urls_off", "this server does not fetch URLs (AVEMO_SERVE_URLS=off): upload the file")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "bad_url", f"{url[:200]!r} is not an http(s) URL")
    folder = store.incoming / f"{uuid.uuid4().hex}.d"
    try:
        path = fetch(url, folder, max_bytes=settings.max_upload_bytes, public_only=settings.urls == "public")
        dest = store.new_incoming()
        shutil.move(path, dest)
    except MediaError as exc:
        if "a download may be" in exc.problem:
            raise ApiError(413, "too_large", f"{url}: larger than the limit of {settings.max_upload_mb:g} MB",
                           limit_bytes=settings.max_upload_bytes) from None
        raise ApiError(422, "download_failed", str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    name = display_name(urllib.parse.unquote(Path(parts.path).name) or parts.hostname)
    return Received(dest, name, dest.stat().st_size)


def _check_stretch(filename: str, duration: float, options: dict[str, Any], limit: float) -> None:
    """The stretch a job analyses (``start`` / ``end`` of its options, else the whole file) lies within the file
    and within the service's length limit."""
    begin = options.get("start", 0.0)
    if duration and begin > duration - 0.05:
        raise ApiError(422, "invalid_request", f"{filename}: start {begin:g} s lies beyond its {duration:.2f} s")
    length = min(options.get("end", duration), duration) - begin
    if length > limit:
        cut = " (or analyse a stretch of it with start and end)" if "start" not in options and "end" not in options \
            else ""
        raise ApiError(422, "too_long", f"{filename}: {length:.1f} s of media to analyse; the limit is {limit:g} s"
                       + cut, limit_seconds=limit)


def _media_error(exc: MediaError) -> ApiError:
    problem = exc.problem
    if "truncated" in problem and "cannot be opened" not in problem:
        return ApiError(422, "truncated", str(exc))
    if "cannot be opened" in problem or "not a media file" in problem:
        return ApiError(415, "not_media", str(exc))
    return ApiError(422, "bad_media", str(exc))


def _key_ok(key: str, headers: Any, cookies: Any, query: Any) -> bool:
    given = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    given = given or cookies.get(KEY_COOKIE) or query.get("key")
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def _add_auth(app: FastAPI, settings: Settings) -> None:
    if not settings.api_key:
        return
    key = settings.api_key

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if request.url.path in _OPEN_PATHS or request.method == "OPTIONS" or \
                _key_ok(key, request.headers, request.cookies, request.query_params):
            return await call_next(request)
        return JSONResponse(ApiError(401, "unauthorized", "a valid API key is required: header X-API-Key, "
                                     "Authorization: Bearer, or open the page as /?key=...").body(),
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        return JSONResponse(ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)).body(),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")} for e in exc.errors()]
        message = "; ".join(f"{d['where']}: {d['problem']}" for d in details) or "invalid request"
        return JSONResponse(ApiError(422, "invalid_request", message, details=details).body(), status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(ApiError(500, "internal_error", f"internal error ({type(exc).__name__})").body(),
                            status_code=500)
