"""Settings: every environment variable dressfinder reads, read here and nowhere else (never at
import time: call ``Settings.from_env()``, then pass the values down as arguments).

| variable | setting |
|---|---|
| DRESSFINDER_STORE | store: the store folder for search, serve, recommend when --store is not given |
| DRESSFINDER_API_KEY | api_key: the key that write routes of the API ask for |
| DRESSFINDER_MAX_UPLOAD_BYTES, DRESSFINDER_MAX_PIXELS | the largest upload and decoded photo |
| DRESSFINDER_MAX_QUEUE, DRESSFINDER_WORKERS | the web app's work queue and threads |
| DRESSFINDER_CORS_ORIGINS | comma-separated origins allowed to call the API from a browser |
| DRESSFINDER_PUBLIC_URL | public_url: the server's public base URL, for absolute links (default: each request's own) |
| DRESSFINDER_EMBED_ORIGINS | embed_origins: shops' origins that may frame the embed page and fetch the embed block (CORS) |
| DRESSFINDER_URL_TIMEOUT, DRESSFINDER_URL_MAX_REDIRECTS, DRESSFINDER_ALLOW_PRIVATE_URLS | fetching image_url |
| DRESSFINDER_RELOAD_INTERVAL | seconds between the web app's checks for a changed store |
| DRESSFINDER_MILVUS_URI, MILVUS_TOKEN | the Milvus backend's address and token |
| DRESSFINDER_CACHE (else $XDG_CACHE_HOME/dressfinder, else ~/.cache/dressfinder) | cache: exported models |
| DRESSFINDER_FASHION_MNIST | fashion_mnist: the only folder the demo looks in for Fashion-MNIST |
| DRESSFINDER_PRECISION | precision: the default encoder's variant for new stores (auto, int8, fp32) |
| DRESSFINDER_DRAIN_BYTES, DRESSFINDER_MAX_DECODE_BYTES | the web app: how much of a too-large body is read before the 413; decoding memory per upload |

Variables set for libraries, not read by dressfinder: ``OMP_WAIT_POLICY`` (index.py, before FAISS
loads), ``KERAS_BACKEND=torch`` (before Keras loads), ``OMP_NUM_THREADS`` in worker processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SettingsError


def cache_dir() -> Path:
    """Where derived artefacts (exported ONNX models) are cached (``Settings.cache``)."""
    root = os.environ.get("DRESSFINDER_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "dressfinder" if xdg else Path.home() / ".cache" / "dressfinder"


#: The default encoder's variants one may ask for (--precision, DRESSFINDER_PRECISION).
PRECISIONS = ("auto", "int8", "fp32")
#: Threads (or worker processes) a CPU-bound pool uses by default: at most this many, at most one a CPU.
MAX_DEFAULT_THREADS = 4


def default_threads() -> int:
    """``min(MAX_DEFAULT_THREADS, CPUs this process may use)``: the default size of every pool."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cpus))


def human_bytes(n: int) -> str:
    """A size limit in words: 10485760 -> '10 MB', 30000 -> '29.3 KB'."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from e


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from e


def _choice_env(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _url_env(name: str) -> str | None:
    """An http(s) base URL without a trailing slash, or None when unset."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")) or "?" in raw or "#" in raw:
        raise SettingsError(f"{name} must be an http(s) URL such as https://find.example.com, got {raw!r}")
    return raw.rstrip("/")


def _origin(raw: str, name: str) -> str:
    """One origin (scheme://host[:port]) of a comma-separated list."""
    o = raw.strip().rstrip("/")
    scheme, sep, host = o.partition("://")
    if scheme not in ("http", "https") or not sep or not host or "/" in host or " " in host or ";" in host:
        raise SettingsError(f"{name} must list origins such as https://shop.example, got {raw.strip()!r}")
    return o


@dataclass(frozen=True)
class Settings:
    store: str | None = None
    api_key: str | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    # web: an oversized body up to this size is read and dropped before the 413 goes out, so a
    # client that sends it all before reading gets the 413 instead of a connection reset
    drain_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000
    # web uploads: memory their decoded pixels may take (a 24 MP RGB(A) PNG, or 96 MP gray); JPEGs
    # count at the reduced scale they are decoded at. Catalogue builds have only max_pixels.
    max_decode_bytes: int = 96 * 1024 * 1024
    max_queue: int = 32
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    # web: the base of absolute links in the JSON API and the embed block, e.g. https://find.example.com
    # (None: the request's own base URL)
    public_url: str | None = None
    # web: origins (https://shop.example) allowed to frame /embed/frame/... and to fetch /embed/... (CORS)
    embed_origins: tuple[str, ...] = field(default_factory=tuple)
    url_timeout: float = 10.0
    url_max_redirects: int = 5
    allow_private_urls: bool = False
    workers: int = 0                 # web: threads for decoding/encoding/searching (0: min(4, CPUs))
    reload_interval: float = 5.0     # web: seconds between checks for a rebuilt store (0: never)
    milvus_uri: str | None = None
    milvus_token: str = ""
    cache: Path | None = None
    fashion_mnist: str | None = None
    precision: str = "auto"          # default encoder's variant for new stores: auto, int8 or fp32

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        cors = os.environ.get("DRESSFINDER_CORS_ORIGINS", "")
        embed = os.environ.get("DRESSFINDER_EMBED_ORIGINS", "")
        values = dict(
            store=os.environ.get("DRESSFINDER_STORE") or None,
            api_key=os.environ.get("DRESSFINDER_API_KEY") or None,
            max_upload_bytes=_int_env("DRESSFINDER_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            drain_bytes=_int_env("DRESSFINDER_DRAIN_BYTES", cls.drain_bytes),
            max_pixels=_int_env("DRESSFINDER_MAX_PIXELS", cls.max_pixels),
            max_decode_bytes=_int_env("DRESSFINDER_MAX_DECODE_BYTES", cls.max_decode_bytes),
            max_queue=_int_env("DRESSFINDER_MAX_QUEUE", cls.max_queue),
            cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()),
            public_url=_url_env("DRESSFINDER_PUBLIC_URL"),
            embed_origins=tuple(_origin(o, "DRESSFINDER_EMBED_ORIGINS") for o in embed.split(",") if o.strip()),
            allow_private_urls=os.environ.get("DRESSFINDER_ALLOW_PRIVATE_URLS", "") == "1",
            url_timeout=_float_env("DRESSFINDER_URL_TIMEOUT", cls.url_timeout),
            url_max_redirects=_int_env("DRESSFINDER_URL_MAX_REDIRECTS", cls.url_max_redirects),
            workers=_int_env("DRESSFINDER_WORKERS", cls.workers),
            reload_interval=_float_env("DRESSFINDER_RELOAD_INTERVAL", cls.reload_interval),
            milvus_uri=os.environ.get("DRESSFINDER_MILVUS_URI") or None,
            milvus_token=os.environ.get("MILVUS_TOKEN", ""),
            cache=cache_dir(),
            fashion_mnist=os.environ.get("DRESSFINDER_FASHION_MNIST") or None,
            precision=_choice_env("DRESSFINDER_PRECISION", cls.precision, PRECISIONS),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
