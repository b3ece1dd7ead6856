"""Generated text in a hand-written file: replace what lies between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` (the README's tables, docs/scaling.md's latest bench), atomically."""

from __future__ import annotations

import os
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def check(path: Path, name: str) -> str:
    """``path``'s text; a clear error when it cannot be read or lacks the ``name`` block."""
    from ..errors import DressfinderError

    start, end = markers(name)
    try:
        text = path.read_text()
    except OSError as e:
        raise DressfinderError(f"cannot read {path}: {e.strerror}") from None
    a, b = text.find(start), text.find(end)
    if a < 0 or b < a:
        raise DressfinderError(f"{path} has no {start} ... {end} block to replace")
    return text


def splice(path: Path, body: str, name: str) -> None:
    """Put ``body`` between ``path``'s ``name`` markers (the rest of the file is kept byte for byte)."""
    start, end = markers(name)
    text = check(path, name)
    a, b = text.find(start), text.find(end)
    new = text[:a + len(start)] + "\n" + body.rstrip("\n") + "\n" + text[b:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
