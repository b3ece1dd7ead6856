"""Typed errors. Every error a user can cause is a DressfinderError with a one-line message.

The CLI prints ``str(err)`` and exits non-zero; the web layer maps ``status`` to an HTTP code.
"""


class DressfinderError(Exception):
    """Base class: a problem with the input or the environment, explained in one line."""

    status = 400


class ImageError(DressfinderError, ValueError):
    """The bytes are not an image we can use."""

    status = 400


class NotAnImage(ImageError):
    status = 415


class ImageTooLarge(ImageError):
    status = 413


class SettingsError(DressfinderError, ValueError):
    """An environment variable with a value dressfinder cannot use."""


class CatalogError(DressfinderError):
    """A catalogue folder or CSV that cannot be read."""


class StoreError(DressfinderError):
    """A store folder that is missing, incomplete or from an incompatible version."""

    status = 500


class NotFound(DressfinderError, KeyError):
    status = 404

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else "not found"


class Conflict(DressfinderError):
    """The change would clash with what is there (e.g. a product id that already exists)."""

    status = 409


class EncoderError(DressfinderError):
    """An encoder that cannot be built or loaded (unknown name, missing model file)."""
