"""Where a store's vectors live, and opening a store folder whichever that is.

* ``faiss``: the store folder itself (``dressfinder.store.Store``, the default);
* ``milvus``: products' vectors and metadata in a Milvus collection (``MilvusStore``): Milvus Lite
  (embedded, a local ``.db`` file) or a Milvus server/cluster (``http://host:19530``). Its store folder
  keeps the images and a ``store.json`` that points at the collection.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import StoreError
from ..search import Searchable

BACKENDS = ("faiss", "milvus")


def backend_of(folder: str | Path) -> str:
    """The backend a store folder was built with (``faiss`` when it does not say)."""
    try:
        manifest = json.loads((Path(folder) / "store.json").read_text())
    except (OSError, ValueError):
        return "faiss"   # Store.open explains what is wrong with the folder
    return manifest.get("backend", "faiss") if isinstance(manifest, dict) else "faiss"


def open_store(folder: str | Path, *, milvus_token: str = "") -> Searchable:
    """Open the store in ``folder``: a FAISS store, or the Milvus collection it points at."""
    if backend_of(folder) == "milvus":
        from .milvus import MilvusStore

        pointer = json.loads((Path(folder) / "store.json").read_text())
        try:
            uri, collection = pointer["uri"], pointer["collection"]
        except KeyError as e:
            raise StoreError(f"{folder}/store.json names no Milvus {e.args[0]}") from None
        return MilvusStore.open(uri, collection, token=milvus_token)
    from ..store import Store

    return Store.open(folder)
