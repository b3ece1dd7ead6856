"""Settings read from the environment (never at import time: call ``Settings.from_env()``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def cache_dir() -> Path:
    """Where derived artefacts (exported ONNX models) are cached."""
    root = os.environ.get("DRESSFINDER_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "dressfinder" if xdg else Path.home() / ".cache" / "dressfinder"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from e


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a number, got {raw!r}") from e


def _choice_env(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    store: str | None = None
    api_key: str | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_queue: int = 32
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    url_timeout: float = 10.0
    url_max_redirects: int = 5
    allow_private_urls: bool = False
    workers: int = 0                 # web: threads for decoding/encoding/searching (0: min(4, CPUs))
    reload_interval: float = 5.0     # web: seconds between checks for a rebuilt store (0: never)
    precision: str = "auto"          # default encoder's variant for new stores: auto, int8 or fp32

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        cors = os.environ.get("DRESSFINDER_CORS_ORIGINS", "")
        values = dict(
            store=os.environ.get("DRESSFINDER_STORE") or None,
            api_key=os.environ.get("DRESSFINDER_API_KEY") or None,
            max_upload_bytes=_int_env("DRESSFINDER_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_pixels=_int_env("DRESSFINDER_MAX_PIXELS", cls.max_pixels),
            max_queue=_int_env("DRESSFINDER_MAX_QUEUE", cls.max_queue),
            cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()),
            allow_private_urls=os.environ.get("DRESSFINDER_ALLOW_PRIVATE_URLS", "") == "1",
            url_timeout=_float_env("DRESSFINDER_URL_TIMEOUT", cls.url_timeout),
            url_max_redirects=_int_env("DRESSFINDER_URL_MAX_REDIRECTS", cls.url_max_redirects),
            workers=_int_env("DRESSFINDER_WORKERS", cls.workers),
            reload_interval=_float_env("DRESSFINDER_RELOAD_INTERVAL", cls.reload_interval),
            precision=_choice_env("DRESSFINDER_PRECISION", cls.precision, ("auto", "int8", "fp32")),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
