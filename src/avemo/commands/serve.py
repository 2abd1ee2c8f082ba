"""``avemo serve``: the HTTP service and its browser page (FastAPI under uvicorn)."""

from __future__ import annotations

import argparse

HELP = "HTTP service and browser page: upload videos, get emotion timelines; live webcam analysis"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, or AVEMO_SERVE_HOST; "
                                                "0.0.0.0 serves other machines: set AVEMO_API_KEY then)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000, or AVEMO_SERVE_PORT)")
    p.add_argument("--dir", default=None, metavar="FOLDER",
                   help="jobs database, uploads and results (default AVEMO_SERVE_DIR or ~/.local/share/avemo/serve)")
    p.add_argument("--workers", type=int, default=None,
                   help="analysis processes, each loading the models once (default: one per two cores, 1-4)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest upload, MB (default 512)")
    p.add_argument("--max-duration", type=float, default=None, help="longest media, seconds (default 1800)")
    p.add_argument("--job-timeout", type=float, default=None, help="longest analysis, seconds (default 900)")
    p.add_argument("--urls", choices=("public", "any", "off"), default=None,
                   help="jobs from an http(s) URL: public (only from public addresses; the default, or "
                        "AVEMO_SERVE_URLS), any (private addresses too: an intranet), off")
    p.add_argument("--cors", default=None, metavar="ORIGINS",
                   help="comma-separated origins allowed by CORS (default: none, CORS off)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from avemo.serve.app import create_app
    from avemo.serve.settings import settings_from_env

    settings = settings_from_env().with_(
        host=args.host, port=args.port, data_dir=Path(args.dir).expanduser() if args.dir else None,
        workers=args.workers, max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration,
        job_timeout_s=args.job_timeout, urls=args.urls,
        cors_origins=tuple(o.strip() for o in args.cors.split(",") if o.strip()) if args.cors else None)
    app = create_app(settings)
    where = "all interfaces" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"avemo serve: data in {settings.data_dir}, {settings.workers} worker(s), listening on {where}:"
          f"{settings.port}{'' if settings.api_key else ' (no API key)'}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                ws_max_size=4 * 1024 * 1024, timeout_graceful_shutdown=10)
    return 0
