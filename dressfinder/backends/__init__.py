"""Vector backends other than the embedded FAISS store (``dressfinder.store.Store``, the default).

* ``milvus``: products' vectors and metadata in a Milvus collection (``MilvusStore``): Milvus Lite
  (embedded, a local ``.db`` file) or a Milvus server/cluster (``http://host:19530``).
"""

from __future__ import annotations

BACKENDS = ("faiss", "milvus")


def __getattr__(name: str):
    if name == "MilvusStore":  # pymilvus is imported only when asked for
        from .milvus import MilvusStore

        return MilvusStore
    raise AttributeError(name)
