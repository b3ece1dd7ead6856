"""dressfinder: visual search for dresses.

    from dressfinder import Store
    store = Store.build("shop/catalog.csv", "stores/shop")     # or Store.open("stores/shop")
    hits = store.search("my_photo.jpg", k=10)                  # [Hit(id, score, product), ...]
"""

__version__ = "0.1.0"

from .catalog import Filters  # noqa: E402
from .errors import DressfinderError  # noqa: E402
from .images import load_image  # noqa: E402
from .schema import Product  # noqa: E402


def __getattr__(name):  # heavy modules (faiss, encoders) load on first use, not on import
    if name == "Store":
        from .store import Store

        return Store
    if name == "Hit":
        from .search import Hit

        return Hit
    if name in ("get_encoder", "available_encoders"):
        from . import encoders

        return getattr(encoders, name)
    raise AttributeError(name)


__all__ = ["Store", "Hit", "Product", "Filters", "DressfinderError", "load_image", "get_encoder",
           "available_encoders", "__version__"]
