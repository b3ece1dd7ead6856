"""``dressfinder inspect``: a report of a catalogue or a store, for people who would rather look
than read (what the original project's notebooks showed, as one HTML page)::

    dressfinder inspect ../shared/data/f21-dresses/catalog.csv --out report/
    dressfinder inspect stores/shop --out report/

writes ``report/index.html`` with the pictures it shows beside it (``charts/*.png``,
``clusters/*.png``, ``thumbs/*.jpg``) and the numbers as ``report.json``. The folder is
self-contained: it refers to nothing outside itself, so it can be zipped or served as is.

The report has: product count; image formats; width, height and file size histograms;
unreadable files with the reason; exact duplicates (same bytes) and near duplicates (different
files whose embeddings have cosine >= ``--near``), side by side; metadata coverage (title, price,
currency, link, store, category); the price distribution per currency; category and store counts;
and one contact sheet per k-means cluster of the embeddings (10 clusters, as the seed, by
default; a store with an ``ivf`` index shows its own clusters).

A store has embeddings already; a bare catalogue is encoded first with the default encoder
(``--encoder`` to choose, ``--no-embed`` to skip: no near duplicates or clusters then).

Its stages, one module each: ``analysis`` (read the images, embeddings, near duplicates, clusters,
the numbers), ``charts`` (the pictures, Pillow only), ``report`` (the folder and its page, from
``tools/templates/inspect.html``), ``command`` (the CLI's arguments and ``run``).
"""

from __future__ import annotations

from .analysis import Analysis, Item, analyse, summarise
from .report import make_report, write_report

__all__ = ["Analysis", "Item", "analyse", "make_report", "summarise", "write_report"]
