"""Optional dependencies: the one place that imports a module of an extra and, when it is not
installed, says in one line which extra to install.

The core (``pip install dressfinder``) indexes, searches and serves with the shipped default encoder.
The extras: ``train`` (torch, keras, the EfficientNet-Lite0 packages, scikit-learn),
``milvus`` (pymilvus, milvus-lite), ``dask`` (dask, distributed); ``dev`` has them all plus the
test tools.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DressfinderError


class MissingExtra(DressfinderError):
    """A feature whose optional dependencies are not installed."""

    status = 501


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module``; when it (or the package it lives in) is not installed, raise
    ``MissingExtra`` naming the extra: ``pip install 'dressfinder[EXTRA]'``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # the module, or one it needs, is not installed
        missing = (e.name or module).split(".")[0]
        raise MissingExtra(f"{feature or module} needs the optional '{extra}' dependencies "
                           f"({missing} is not installed); "
                           f"install them with: pip install 'dressfinder[{extra}]'") from None
