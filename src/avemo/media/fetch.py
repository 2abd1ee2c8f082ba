"""Media at an http(s) URL, downloaded once into a folder so that the analysis reads a local file (it opens a
file several times: probe, pictures, sound).

    fetch("https://example.org/talk.mp4", Path("results/downloads"))  # -> results/downloads/talk.mp4

The file is written as ``<name>.part`` and renamed when complete, beside a ``<name>.url`` note of where it came
from: a later call for the same URL reuses it (``force`` downloads again). Every failure is a
:class:`~avemo.errors.MediaError` naming the URL and the problem: among them a web page where a file was meant (a
video site's page is not its video), a download larger than ``AVEMO_MAX_DOWNLOAD_MB`` (default 16 GB), or one the
disk has no room for. A service fetching on others' behalf passes ``public_only``: every connection (redirects
included) is checked against the address it actually reached, so a URL naming (or redirecting to, or resolving
to) a loopback, private or link-local address is refused.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from avemo.errors import MediaError

URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
TIMEOUT_S = 30.0  #: seconds without a byte before a download is given up
_CHUNK = 1 << 20
#: content types that are never media: a page (often a video site's watch page), or an API's answer
_PAGES = ("text/html", "application/xhtml+xml", "application/json")


def max_download_bytes() -> int:
    """The largest download accepted: ``AVEMO_MAX_DOWNLOAD_MB`` megabytes (default 16384, 16 GB)."""
    text = os.environ.get("AVEMO_MAX_DOWNLOAD_MB", "16384")
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb > 0:
        from avemo.errors import AvemoError

        raise AvemoError(f"AVEMO_MAX_DOWNLOAD_MB must be a positive number of megabytes, got {text!r}")
    return int(mb * 1e6)


def is_url(item: object) -> bool:
    """Whether an input names a URL (``scheme://...``) rather than a file."""
    return isinstance(item, str) and bool(URL.match(item))


def local_name(url: str) -> str:
    """The file name a URL's download gets: the last part of its path, with a short hash of the whole URL
    (two URLs ending alike stay apart)."""
    tail = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or "download"
    tail = re.sub(r"[^\w.-]+", "_", tail)[-120:]
    digest = hashlib.sha1(url.encode()).hexdigest()[:6]
    stem, dot, ext = tail.rpartition(".")
    return f"{stem}-{digest}.{ext}" if dot and stem else f"{tail}-{digest}"


class NotPublicError(OSError):
    """A connection reached an address that is not public (loopback, private, link-local, ...)."""


def is_public(address: str) -> bool:
    """Whether an IP address is globally routable (an IPv4-mapped IPv6 address is judged as its IPv4 one)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _public_connection(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
    sock = socket.create_connection(address, *args, **kwargs)  # type: ignore[arg-type]
    peer = sock.getpeername()[0]
    if not is_public(peer):
        sock.close()
        raise NotPublicError(f"{address[0]} is at {peer}, not a public address; this server fetches only from "
                             "public addresses")
    return sock


class _PublicHTTP(http.client.HTTPConnection):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._create_connection = _public_connection


class _PublicHTTPS(http.client.HTTPSConnection):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._create_connection = _public_connection


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTP, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTPS, req, context=self._context)  # type: ignore[attr-defined]


def _opener(public_only: bool) -> urllib.request.OpenerDirector:
    if not public_only:
        return urllib.request.build_opener()
    # no proxy: the address reached must be the server's own to be judged
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _PublicHTTPHandler, _PublicHTTPSHandler)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n:,} bytes"


def fetch(url: str, folder: Path, *, force: bool = False,
          progress: Callable[[int, int | None], None] | None = None, max_bytes: int | None = None,
          public_only: bool = False) -> Path:
    """Download ``url`` (http or https) into ``folder`` and return the file; ``progress(bytes, total or None)``
    as it comes; more than ``max_bytes`` (default :func:`max_download_bytes`) is refused; with ``public_only``
    only public addresses are fetched from."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise MediaError(url, f"{scheme}:// is a stream, not a file to analyse: play it live with "
                              f"avemo live --source {url}, or save it to a file first")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / local_name(url)
    note = out.with_name(out.name + ".url")
    if not force and out.is_file() and note.is_file() and note.read_text().strip() == url:
        return out
    part = out.with_name(out.name + ".part")
    limit = max_download_bytes() if max_bytes is None else max_bytes
    request = urllib.request.Request(url, headers={"User-Agent": "avemo"})
    try:
        with _opener(public_only).open(request, timeout=TIMEOUT_S) as response, part.open("wb") as f:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            kind = response.headers.get_content_type()
            if kind in _PAGES:
                raise MediaError(url, f"is a web page ({kind}), not a media file: a video site's page is not its "
                                      f"video; give the address of the file itself, or download it first")
            if total is not None and total > limit:
                raise MediaError(url, f"is {_mb(total)}, more than the {_mb(limit)} a download may be "
                                      f"(AVEMO_MAX_DOWNLOAD_MB)")
            free = shutil.disk_usage(folder).free
            if total is not None and total > free:
                raise MediaError(url, f"is {_mb(total)} and {folder} has only {_mb(free)} free")
            done = 0
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                done += len(chunk)
                if done > limit:
                    raise MediaError(url, f"sent more than the {_mb(limit)} a download may be "
                                          f"(AVEMO_MAX_DOWNLOAD_MB); stopped")
                if progress is not None:
                    progress(done, total)
        if total is not None and done < total:
            raise MediaError(url, f"the download stopped after {done} of {total} bytes")
        if done == 0:
            raise MediaError(url, "the server sent an empty file")
    except MediaError:
        part.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise MediaError(url, f"cannot be downloaded: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise MediaError(url, f"cannot be downloaded: {reason}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    shutil.move(part, out)
    note.write_text(url + "\n")
    return out


def fetch_all(urls: list[str], folder: Path, *, force: bool = False,
              progress: Callable[[str, int, int | None], None] | None = None,
              on_error: Callable[[str, MediaError], None] | None = None) -> tuple[dict[Path, str], dict[str, str]]:
    """:func:`fetch` for each URL, one failing alone: the files (each -> its URL) and the failures (URL -> why).
    ``progress(url, bytes, total or None)``; ``on_error(url, error)`` as each failure happens."""
    done: dict[Path, str] = {}
    failed: dict[str, str] = {}
    for url in urls:
        try:
            done[fetch(url, folder, force=force, progress=None if progress is None else
                       (lambda got, total, u=url: progress(u, got, total)))] = url
        except MediaError as exc:
            failed[url] = str(exc)
            if on_error is not None:
                on_error(url, exc)
    return done, failed
