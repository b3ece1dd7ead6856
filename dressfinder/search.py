"""The ranking: the one place that decides which products answer a query, and in what order.

Every face ranks through here: ``Store`` (FAISS) and ``MilvusStore`` share :class:`Searchable`,
and ``recommend``, the web layer and the CLI call their ``search``/``similar``. A backend only has
to give a :class:`Snapshot` (candidates from its index, vectors, products and duplicates by row);
the rules below are then the same for all of them:

* candidates come from the backend's index (``k`` + :data:`MARGIN`, more when rows are left out),
  are re-scored exactly (float64; cosine for ``ip``, ``1/(1+d)`` for ``l2``) and ordered by
  (score descending, row ascending), so ties and near-ties rank alike on every backend and in
  batches of any size;
* ``similar`` never returns the product itself and, unless ``include_duplicates``, none of its exact
  duplicates: products whose stored image is the same bytes (same content-addressed file), or whose
  vector is the same picture's (cosine >= :data:`NEAR_DUPLICATE_COSINE`, e.g. the same photo saved twice);
* when region search uses a region of the photo, the whole photo's results are woven into the
  region's (:func:`fuse`, reciprocal-rank fusion): the region's best match stays first, and a wrong
  region no longer takes all ten places; so are the box head's sure box's, when another region
  was used (``regions.Located.head``, :data:`HEAD_WEIGHT`): a second opinion on where the dress is;
* when the whole photo's best match is not sure (a close-up of the fabric, say), no region explains
  the picture much better (``regions.wants_closeup``) and the store has patch vectors, the photo is
  also read as a close-up; when one of the catalogue's patch vectors matches that well, each
  candidate is scored by its cosine to the photo (the searched region or the whole photo, the
  better) and its patch vector's cosine to the close-up, the more so the less sure the whole photo
  is (:func:`closeup_weight`, :func:`closeup_scores`, :func:`closeup_hits`); its first candidates
  are then looked at closer: views down the middle of their stored images are encoded and
  compared with the photo, and each candidate's score becomes the mean of its close-up score and
  its best view's (or vector's) cosine to the photo (:func:`closeup_checked`, :func:`checked_scores`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from PIL import Image

from . import boxhead
from .catalog import Filters
from .errors import DressfinderError, NotFound
from .images import ImageSource, crop_relative, load_image
from .regions import WHOLE, Box, Located, closeup_views, crop_box, detected, locate, wants_closeup
from .schema import Product
from .thresholds import Thresholds

#: Vectors at least this alike (cosine) count as the same picture: left out of ``similar`` unless asked for.
NEAR_DUPLICATE_COSINE = 0.9999
#: Candidates fetched beyond ``k`` before the exact re-scoring, so ties at the cut are resolved alike.
MARGIN = 8
#: :func:`fuse`: a result at rank ``r`` (0 = first) of the searched region's list counts
#: ``1 / (FUSE_K0 + r)``, of the whole photo's list ``WHOLE_WEIGHT / (FUSE_K0 + r)``; the sums order
#: the fused list. With these the region's first result always stays first, and the whole photo's
#: first comes back fourth (after the region's first three) or sooner (on the evaluation's 16,842
#: pictures Recall@10 0.962 -> 0.967, Recall@1 unchanged; see docs/regions.md).
FUSE_K0 = 1.0
WHOLE_WEIGHT = 0.3
#: The weight of a third list in :func:`fuse`: the results of the box head's box when the head was
#: sure of it (``regions.ANCHOR_PEAK``) and another region was used (``regions.Located.head``): a
#: second opinion on where the product is. Chosen by ``scripts/calibrate_anchor.py --fuse`` on
#: photos apart from the evaluation's: 0.3-0.7 alike (361 photos of a screen: 2 more found in the
#: first ten, none fewer; 7 other kinds unchanged), 1.0 took one from the first place (docs/regions.md).
HEAD_WEIGHT = 0.5
#: :func:`closeup_weight`: the weight of the patch vectors' cosine beside the searched region's,
#: for a photo whose whole is ``Thresholds.closeup_ramp`` or more below sure (``Thresholds.sure``);
#: less the surer the whole photo is. ``Thresholds.closeup_min_patch``: the least cosine of the
#: close-up's best patch match for the photo to be read as a close-up at all (below it, nothing in
#: the catalogue has that fabric: the photo is more likely a whole dress on a busy background).
#: Chosen on generated queries apart from the evaluation's (scripts/calibrate_closeups.py,
#: docs/regions.md): on 300 sources (variant seed + 7) close-ups found first 190 (photo alone) ->
#: 227 (weight 0.5, gate 0.60, before) -> 248, with blur_jpeg -1 and background, combo, screen,
#: colour unchanged; a flat weight 1.0 found 255 but cost 10 queries of the others.
CLOSEUP_WEIGHT = 1.0
#: :func:`closeup_hits` scores this many candidates of each list (the photo's, the close-up's) both ways.
CLOSEUP_FETCH = 100
#: :func:`closeup_checked`: a close-up's best :data:`CLOSEUP_POOL` candidates are re-ordered, the
#: first :data:`CLOSEUP_CHECK` of them looked at closer through views of their stored images
#: (``regions.closeup_views``) compared with the photo. In a probe on 150 close-ups apart from the
#: evaluation's (docs/regions.md, "Close-ups looked at closer") first right 123 -> 141 (Recall@10
#: 144 -> 146), with 5 looked at 140 (145); on the evaluation's 300-source subset 0.853 -> 0.937.
CLOSEUP_POOL = 30
CLOSEUP_CHECK = 10


@dataclass
class Hit:
    """One result: a product (``id``, ``product``), its score, and the picture of it that matched:
    ``row`` (that picture's vector row), ``file`` (its stored file), ``image`` (0: the main picture,
    n: the n-th of ``more_images``). ``key``: what results are told apart by (the product's row, or
    its ``item_group_id`` when variants are collapsed)."""

    id: str
    score: float
    product: Product
    row: int
    file: str | None = None
    image: int = 0
    key: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(float(self.score), 6), "matched_image": self.image,
                **self.product.fields()}


class Snapshot(Protocol):
    """One consistent, read-only view of a catalogue and its vectors, keyed by vector row."""

    metric: str          # "ip" or "l2"
    n_rows: int          # an upper bound on rows: asking for this many candidates gets them all

    def candidates(self, queries: np.ndarray, k: int, filters: Filters | None = None,
                   nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (len(queries), k), best first by the index; row -1 pads."""

    def vectors(self, rows: np.ndarray) -> np.ndarray: ...

    def rows(self, filters: Filters | None = None) -> np.ndarray: ...

    def patch_vectors(self, rows: np.ndarray) -> np.ndarray | None: ...

    def records(self, rows: Sequence[int]) -> dict[int, tuple[Product, str | None]]:
        """Products by their rows (their main pictures' vector rows)."""

    def image_rows(self, rows: Sequence[int]) -> dict[int, tuple[int, int, str | None]]:
        """For the ``rows`` that are a product's other picture: (product row, n, stored file). A row
        not in the answer is a product's own (its main picture, n = 0)."""

    def rows_of_products(self, product_rows: Sequence[int]) -> np.ndarray:
        """Every vector row of these products (their main pictures' and the others')."""

    def pictures(self, product_row: int) -> list[tuple[int, int, str | None]]:
        """A product's other pictures: (vector row, n, stored file), by n."""

    def get(self, pid: str) -> tuple[int, Product, str | None] | None: ...

    def duplicates(self, rows: Sequence[int]) -> list[np.ndarray]: ...

    def row_ids(self) -> list[tuple[int, str]]: ...

    def iter_products(self) -> Iterator[tuple[int, Product, str | None]]: ...

    def facets(self) -> dict[str, list[str]]: ...

    def count(self) -> int: ...


def find(snap: Snapshot, pid: str) -> tuple[int, Product, str | None]:
    """(row, product, stored file) of product ``pid``; ``NotFound`` when there is none."""
    rec = snap.get(pid)
    if rec is None:
        raise NotFound(f"no product with id {pid!r}")
    return rec


def cosines(q: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two float64 arrays of vectors (0 where either vector is zero)."""
    dots = np.einsum("ij,ij->i", q, cand)
    den = np.sqrt(np.einsum("ij,ij->i", q, q) * np.einsum("ij,ij->i", cand, cand))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, dots / den, 0.0)


def in_stock_only(filters: Filters | None, in_stock: bool = True) -> Filters | None:
    """``filters`` with ``in_stock`` set (when ``in_stock``): what cannot be bought is left out."""
    if not in_stock:
        return filters
    return dataclasses.replace(filters or Filters(), in_stock=True)


def group_key(product_row: int, product: Product, variants: bool = False) -> Any:
    """What results are told apart by: one product (``variants``), or one per ``item_group_id``
    (the variants of one dress, its colours and sizes, take one place)."""
    if not variants and product.item_group_id:
        return ("group", product.item_group_id)
    return ("row", int(product_row))


def hits_at(snap: Snapshot, rows: Sequence[Sequence[int]], *, variants: bool = False,
            skip: Sequence[set] | None = None) -> list[list[Hit]]:
    """Unscored hits for lists of vector rows (-1 and rows of products not there left out; a row of
    a product's other picture is a hit on that product, with that picture); ``skip[i]``: product rows
    and keys (:func:`group_key`) left out of list i."""
    flat = sorted({int(r) for rs in rows for r in rs if int(r) >= 0})
    pics = snap.image_rows(flat)
    main = {r: pics[r][0] if r in pics else r for r in flat}
    records = snap.records(sorted(set(main.values())))
    out = []
    for i, rs in enumerate(rows):
        no = skip[i] if skip else ()
        hits: list[Hit] = []
        for r in rs:
            r = int(r)
            if r < 0 or main[r] not in records:
                continue
            prow = main[r]
            prod, file = records[prow]
            key = group_key(prow, prod, variants)
            if prow in no or key in no:
                continue
            n, file = (pics[r][1], pics[r][2]) if r in pics else (0, file)
            hits.append(Hit(prod.id, 0.0, prod, r, file, n, key))
        out.append(hits)
    return out


def collapse(hits: Sequence[Hit], limit: int | None = None) -> list[int]:
    """The indexes of the first hit of each key (:func:`group_key`), in order, up to ``limit``:
    a product appears once, with its best-matching picture; variants once, the best-matching one."""
    seen: set = set()
    out: list[int] = []
    for j, h in enumerate(hits):
        if h.key in seen:
            continue
        seen.add(h.key)
        out.append(j)
        if limit is not None and len(out) == limit:
            break
    return out


def check_k(k: int) -> int:
    k = int(k)
    if k < 1:
        raise DressfinderError("k must be at least 1")
    return k


# --------------------------------------------------------------------------- the rules

def rescore(snap: Snapshot, queries: np.ndarray, found: list[list[Hit]]) -> list[np.ndarray]:
    """Exact float64 scores of each query's candidates (sets ``hit.score``); returns their cosines."""
    counts = [len(h) for h in found]
    if not sum(counts):
        return [np.zeros(0) for _ in found]
    rows = np.fromiter((h.row for hits in found for h in hits), np.int64, sum(counts))
    cand = snap.vectors(rows).astype(np.float64)
    q = np.repeat(np.asarray(queries, np.float64), counts, axis=0)
    cos = cosines(q, cand)
    dots = np.einsum("ij,ij->i", q, cand)
    if snap.metric == "l2":
        sq = np.einsum("ij,ij->i", q, q) + np.einsum("ij,ij->i", cand, cand) - 2.0 * dots
        scores = 1.0 / (1.0 + np.sqrt(np.maximum(sq, 0.0)))
    else:
        scores = dots
    out, pos = [], 0
    for hits in found:
        for j, h in enumerate(hits):
            h.score = float(scores[pos + j])
        out.append(cos[pos:pos + len(hits)])
        pos += len(hits)
    return out


def ranked(snap: Snapshot, queries: np.ndarray, fetch: int, *, filters: Filters | None = None,
           exclude_rows: Sequence[np.ndarray] | None = None, nprobe: int | None = None,
           variants: bool = False, exclude_keys: Sequence[set] | None = None) -> tuple[list[list[Hit]], list[np.ndarray]]:
    """Up to ``fetch`` products per query, re-scored and in the final order, with their cosines to
    the query. Every candidate row is re-scored exactly, ordered by (score, row), and collapsed to
    its product's best picture (and, unless ``variants``, its ``item_group_id``'s best variant:
    :func:`group_key`); when that leaves fewer than ``fetch``, the index is asked for twice as many
    (a product with several pictures, a dress in eight sizes, take several candidate rows).
    ``exclude_rows[i]``: product rows left out of query i's answer, ``exclude_keys[i]``: keys."""
    queries = np.asarray(queries)
    skips = [set(exclude_rows[i].tolist() if exclude_rows else ()) | set(exclude_keys[i] if exclude_keys else ())
             for i in range(len(queries))]
    extra = max((len(e) for e in exclude_rows), default=0) if exclude_rows else 0
    ask = int(np.ceil(fetch * float(getattr(snap, "spread", 1.0)))) + extra
    found: list[list[Hit]] = [[] for _ in range(len(queries))]
    cos_out: list[np.ndarray] = [np.zeros(0) for _ in range(len(queries))]
    pending = list(range(len(queries)))
    while pending:
        _, rows = snap.candidates(queries[pending], ask, filters, nprobe)
        hits_lists = hits_at(snap, rows, variants=variants, skip=[skips[i] for i in pending])
        cosines = rescore(snap, queries[pending], hits_lists)
        again = []
        for qi, hits, cos, got in zip(pending, hits_lists, cosines, (rows >= 0).sum(axis=1)):
            order = sorted(range(len(hits)), key=lambda j: (-hits[j].score, hits[j].row))
            hits, cos = [hits[j] for j in order], cos[np.array(order, np.int64)]
            keep = collapse(hits, fetch)
            if len(keep) < fetch and got >= ask and ask < snap.n_rows:
                again.append(qi)
            else:
                found[qi], cos_out[qi] = [hits[j] for j in keep], cos[np.array(keep, np.int64)]
        pending, ask = again, ask * 2
    return found, cos_out


def fuse(primary: Sequence[Any], secondary: Sequence[Any], k: int, *, key: Any = None,
         weight: float = WHOLE_WEIGHT, more: Sequence[tuple[Sequence[Any], float]] = ()) -> list[Any]:
    """The top ``k`` of two ranked lists (and of ``more``, pairs of a list and its weight) woven
    together by reciprocal-rank fusion (see :data:`FUSE_K0`); items are told apart by ``key(item)``
    (default: the item), an item in several lists is the one from the first of them. Ties keep
    ``primary``'s order, then ``secondary``'s, then ``more``'s."""
    key = key or (lambda item: item)
    score: dict[Any, float] = {}
    first: dict[Any, tuple[int, int, Any]] = {}
    for which, (items, w) in enumerate(((primary, 1.0), (secondary, weight), *more)):
        for r, item in enumerate(items):
            kk = key(item)
            score[kk] = score.get(kk, 0.0) + w / (FUSE_K0 + r)
            first.setdefault(kk, (which, r, item))
    order = sorted(score, key=lambda kk: (-score[kk], first[kk][:2]))
    return [first[kk][2] for kk in order[:k]]


def closeup_weight(whole_score: float, th: Thresholds, most: float | None = None) -> float:
    """How much the patch vectors weigh for a photo whose whole's best match scores ``whole_score``:
    ``most`` (default :data:`CLOSEUP_WEIGHT`) from ``th.closeup_ramp`` below sure, down to 0 at sure."""
    most = CLOSEUP_WEIGHT if most is None else float(most)
    return most * min(max((th.sure - float(whole_score)) / th.closeup_ramp, 0.0), 1.0)


def closeup_scores(photo_cos: np.ndarray, patch_cos: np.ndarray, weight: float | None = None) -> np.ndarray:
    """A product's score for a photo read as a close-up: its cosine to the photo (the searched
    region) and its patch vector's cosine to the close-up, weighted (``weight``, default
    :data:`CLOSEUP_WEIGHT`; see :func:`closeup_weight`) and averaged."""
    w = CLOSEUP_WEIGHT if weight is None else float(weight)
    return (np.asarray(photo_cos, np.float64) + w * np.asarray(patch_cos, np.float64)) / (1.0 + w)


def reads_as_closeup(best_patch: float, th: Thresholds) -> bool:
    """Whether a photo whose close-up vector's best patch match scores ``best_patch`` (cosine) is
    read as a close-up (``th.closeup_min_patch``)."""
    return float(best_patch) >= th.closeup_min_patch


def closeup_hits(snap: Snapshot, vector: np.ndarray, closeup: np.ndarray, k: int, *, th: Thresholds,
                 filters: Filters | None = None, whole_score: float | None = None,
                 variants: bool = False) -> list[Hit] | None:
    """The ``k`` best products for a photo whose vector is ``vector`` (or whose vectors are its rows:
    the searched region's and the whole photo's, each product judged by the better,
    :func:`best_cosines`) and close-up vector ``closeup``, by :func:`closeup_scores` (the score each
    hit carries; weighted by :func:`closeup_weight` of ``whole_score``, the whole photo's best
    match, when given); None when the snapshot has no patch vectors or no patch matches the
    close-up well enough (:func:`reads_as_closeup`); ``th``: the encoder's thresholds
    (``regions.Thresholds.of``). Candidates: each photo vector's and the close-up's best
    :data:`CLOSEUP_FETCH`."""
    rows = snap.rows(filters)
    patches = snap.patch_vectors(rows) if len(rows) else None
    if patches is None:
        return None
    rough = patches @ np.asarray(closeup, np.float32)          # float32 over all rows, to pick candidates
    if not reads_as_closeup(rough.max(), th):
        return None
    photo = np.atleast_2d(np.asarray(vector, np.float32))
    top = np.argsort(-rough, kind="stable")[:CLOSEUP_FETCH]
    found, _ = ranked(snap, photo, CLOSEUP_FETCH, filters=filters, variants=variants)
    cand = np.union1d(rows[top], np.array([h.row for hits in found for h in hits], np.int64))
    c = np.repeat(np.asarray(closeup, np.float64)[None], len(cand), axis=0)
    scores = closeup_scores(best_cosines(snap.vectors(cand).astype(np.float64), photo),
                            cosines(c, snap.patch_vectors(cand).astype(np.float64)),
                            None if whole_score is None else closeup_weight(whole_score, th))
    order = sorted(range(len(cand)), key=lambda j: (-scores[j], int(cand[j])))
    hits = hits_at(snap, [[int(cand[j]) for j in order]], variants=variants)[0]
    score_of = {int(cand[j]): float(scores[j]) for j in order}
    for h in hits:
        h.score = score_of[h.row]
    return [hits[j] for j in collapse(hits, k)]


def checked_scores(closeup: np.ndarray, photo_cos: np.ndarray, view_cos: np.ndarray) -> np.ndarray:
    """A close-up's candidates' scores once looked at closer: the mean of their close-up score
    (:func:`closeup_scores`) and how well the photo matches what the product's image shows: its
    cosine to the product's vector (``photo_cos``) or, where higher, to the best view of its image
    (``view_cos``; NaN where no view was looked at). A close-up is a piece of the product's photo,
    so the right product has a view that matches it almost as a copy, a look-alike does not."""
    seen = np.fmax(np.asarray(photo_cos, np.float64), np.asarray(view_cos, np.float64))
    return (np.asarray(closeup, np.float64) + seen) / 2.0


def view_cosines(encoder: Any, photo: np.ndarray, images: Sequence[Image.Image | None], aspect: float) -> np.ndarray:
    """For each image (a candidate's catalogue image; None: not at hand), the best cosine of its
    views (``regions.closeup_views`` for a close-up of shape ``aspect``, width / height), encoded
    as catalogue images are, to the ``photo``'s vector or vectors (rows: the best of them counts);
    NaN for None. One batch for all views."""
    boxes = [closeup_views(im.size, aspect) if im is not None else [] for im in images]
    crops = [crop_box(im, b) for im, bs in zip(images, boxes) for b in bs]
    out = np.full(len(images), np.nan)
    if not crops:
        return out
    cos = best_cosines(np.asarray(encoder.encode(crops), np.float64), photo)
    start = 0
    for i, bs in enumerate(boxes):
        if bs:
            out[i] = float(cos[start:start + len(bs)].max())
            start += len(bs)
    return out


def best_cosines(vectors: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """Each of ``vectors``' best cosine to the rows of ``photo`` (one vector or several), in float64
    (0 where either vector is zero)."""
    v = np.asarray(vectors, np.float64)
    photo = np.atleast_2d(np.asarray(photo, np.float64))
    den = np.linalg.norm(v, axis=1)[:, None] * np.linalg.norm(photo, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (v @ photo.T) / den, 0.0).max(axis=1)


def closeup_checked(snap: Snapshot, encoder: Any, photo: np.ndarray, hits: list[Hit], images: Path,
                    aspect: float) -> list[Hit]:
    """A close-up's ``hits`` (:func:`closeup_hits`, best :data:`CLOSEUP_POOL` first) re-ordered by
    :func:`checked_scores`, the first :data:`CLOSEUP_CHECK` looked at closer through the stored
    images under ``images`` (one that cannot be read is judged by its vector alone). ``photo``: the
    photo's vectors (the whole photo's and the searched region's: each candidate is judged by the
    better); ``aspect``: the photo's width / height."""
    if not hits:
        return hits
    n = min(CLOSEUP_CHECK, len(hits))
    view = np.full(len(hits), np.nan)
    view[:n] = view_cosines(encoder, photo, [_stored(images, h.file) for h in hits[:n]], aspect)
    rows = np.array([h.row for h in hits], np.int64)
    photo_cos = best_cosines(snap.vectors(rows).astype(np.float64), photo)
    order, scores = checked_order(np.array([h.score for h in hits]), photo_cos, view, rows)
    return [dataclasses.replace(hits[j], score=float(scores[j])) for j in order]


def checked_order(closeup: np.ndarray, photo_cos: np.ndarray, view_cos: np.ndarray,
                  keys: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The order (indexes) of a close-up's candidates by :func:`checked_scores`, ties by ``keys``
    (their rows), and those scores."""
    scores = checked_scores(closeup, photo_cos, view_cos)
    return sorted(range(len(scores)), key=lambda j: (-scores[j], int(keys[j]))), scores


def _stored(images: Path, file: str | None) -> Image.Image | None:
    """A stored catalogue image, or None when there is none or it cannot be read."""
    if not file:
        return None
    try:
        return load_image(Path(images) / file)
    except (DressfinderError, OSError):
        return None


def search_vectors(snap: Snapshot, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                   exclude_rows: Sequence[np.ndarray] | None = None, nprobe: int | None = None,
                   variants: bool = False) -> list[list[Hit]]:
    """The ``k`` products nearest each query vector, best first: each product once, with the
    picture of it that matched best, and (unless ``variants``) one variant per ``item_group_id``."""
    k = check_k(k)
    found, _ = ranked(snap, queries, k + MARGIN, filters=filters, exclude_rows=exclude_rows, nprobe=nprobe,
                      variants=variants)
    return [hits[:k] for hits in found]


def similar_rows(snap: Snapshot, rows: Sequence[int], k: int, *, filters: Filters | None = None,
                 include_duplicates: bool = False, variants: bool = False) -> list[list[Hit]]:
    """The ``k`` products most like each of the products at ``rows`` (batched), by the product's
    main picture (its front, the picture other products' main pictures are comparable with; one
    query per product): never the product itself, nor (unless ``include_duplicates``) its exact
    duplicates, nor (unless ``variants``) its own variants (same ``item_group_id``). Best first."""
    k = check_k(k)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return []
    queries = snap.vectors(rows)
    exclude = [np.array([r], np.int64) for r in rows] if include_duplicates else snap.duplicates(rows)
    own = snap.records(rows.tolist())
    keys = [{group_key(int(r), own[int(r)][0], variants)} if int(r) in own else set() for r in rows]
    out: list[list[Hit]] = [[] for _ in rows]
    pending, fetch = list(range(len(rows))), k + MARGIN
    while pending:
        found, cosines = ranked(snap, queries[pending], fetch, filters=filters, variants=variants,
                                exclude_rows=[exclude[i] for i in pending], exclude_keys=[keys[i] for i in pending])
        again = []
        for i, hits, cos in zip(pending, found, cosines):
            keep = [h for h, c in zip(hits, cos) if include_duplicates or c < NEAR_DUPLICATE_COSINE]
            if len(hits) < fetch or len(keep) >= k + MARGIN or fetch >= snap.n_rows:
                out[i] = keep[:k]
            else:  # near-duplicates took candidate places: ask the index for more
                again.append(i)
        pending, fetch = again, fetch * 2
    return out


# --------------------------------------------------------------------------- the query side

def embed_query(encoder: Any, image: ImageSource, crop: Sequence[float] | None = None) -> np.ndarray:
    """A query photo's vector: decoded, cropped to ``crop`` (fractions l, t, r, b) if given, and
    encoded with the encoder's query side (which may spend more per photo, e.g. flip averaging)."""
    im = load_image(image) if crop is not None else encoder.load(image)
    return np.asarray(encoder.encode_query([crop_relative(im, crop)]), np.float32)[0]


def query_draft(input_size: int, crop: Sequence[float] | None = None, detect: bool = False) -> int:
    """How many pixels a query photo's short side needs when decoded: enough for the crop box, or,
    when regions are looked for, for a region of about half the photo."""
    if crop is not None:
        short = max(min(crop[2] - crop[0], crop[3] - crop[1]), 0.05)
        return int(np.ceil(input_size / short))
    return input_size * 2 if detect else input_size


# --------------------------------------------------------------------------- what a result's score says

def shown_scores(hits: Sequence[Any]) -> list[float]:
    """The score to show for each result of a ranked list: the least score of it and every result
    ranked above it (a running minimum), so what is shown never goes up down the list. A list
    ordered by score (``similar``, a crop, the whole photo) shows its scores unchanged; a fused
    list (:func:`fuse` orders by rank, not by cosine) shows, for a result ranked below a less
    similar one, the lower of the two: no result is shown as closer than one placed above it."""
    out: list[float] = []
    low = float("inf")
    for h in hits:
        low = min(low, float(h.score))
        out.append(low)
    return out


@dataclass(frozen=True)
class Closeness:
    """The lines on one encoder's score scale that a shopper reads as words (:meth:`of`):

    * ``very close`` at or above :attr:`very_close` = ``Thresholds.sure``: a whole photo whose best
      match scores this is taken to be that product (0.633 for the shipped model, 0.80 default);
    * ``close`` at or above :attr:`close` = ``Thresholds.content_sure``: a block of a screenshot
      whose best match scores this ends the region search, sure it found a product's picture
      (0.560; default 0.75);
    * ``similar`` at or above :attr:`similar` = ``sure - framed_gap``: below it a whole photo
      "matches nothing" in the catalogue (the calibration of ``framed_gap``; 0.330; default 0.61);
    * below that, ``not close``: the closest the store has, nothing more. A results page whose first
      result is below :attr:`similar` says so."""

    very_close: float
    close: float
    similar: float

    @classmethod
    def of(cls, thresholds: Thresholds) -> "Closeness":
        very = float(thresholds.sure)
        close = min(float(thresholds.content_sure), very)
        return cls(very, close, min(very - float(thresholds.framed_gap), close))

    def label(self, score: float) -> str:
        """``very close``, ``close``, ``similar`` or ``not close`` (monotonic in ``score``)."""
        if score >= self.very_close:
            return "very close"
        if score >= self.close:
            return "close"
        if score >= self.similar:
            return "similar"
        return "not close"

    def anything_close(self, scores: Sequence[float]) -> bool:
        """Whether the best of ``scores`` is at least ``similar``."""
        return bool(scores) and max(scores) >= self.similar


def box_json(box: Sequence[float]) -> list[float]:
    """A box (fractions l, t, r, b) as the API and ``search --json`` show it."""
    return [round(float(v), 4) for v in box]


@dataclass
class FoundRegion:
    """A region of the query photo (fractions l, t, r, b), its best match's cosine and its results."""

    box: Box
    score: float
    hits: list[Hit]
    kind: str

    def region_dict(self) -> dict[str, Any]:
        """Where it is: ``{"box", "score", "kind"}``, as :meth:`RegionSearch.region_dict` gives the searched one."""
        return {"box": box_json(self.box), "score": round(self.score, 6), "kind": self.kind}

    def to_dict(self, k: int | None = None) -> dict[str, Any]:
        return {**self.region_dict(), "results": [h.to_dict() for h in self.hits[:k]]}


@dataclass
class RegionSearch:
    """What a region-aware search searched (``region``, best first results ``hits``) and the
    other regions it found, each with its own results."""

    hits: list[Hit]
    region: Box
    kind: str                         # "whole", "crop", "content", "head" or "window"
    others: list[FoundRegion]
    score: float | None = None        # the searched region's best-match cosine, when regions were compared
    closeup: bool = False             # the whole photo was also read as a close-up of the fabric
    #: Dresses the box head saw besides the one searched and the ``others`` (:func:`regions.detected`):
    #: (box, peak) pairs, best first, not searched (a shopper taps one to search it as a crop).
    detected: list[tuple[Box, float]] = dataclasses.field(default_factory=list)

    def region_dict(self) -> dict[str, Any]:
        """What was searched: ``{"box", "kind", "score", "closeup"}`` (score None when regions were
        not compared; closeup true when the results weigh the catalogue's patch vectors in)."""
        return {"box": box_json(self.region), "kind": self.kind,
                "score": None if self.score is None else round(self.score, 6), "closeup": self.closeup}

    def detected_dicts(self) -> list[dict[str, Any]]:
        """The dresses seen and not searched: ``[{"box", "peak"}]`` (the box head's peak, 0-1), best first."""
        return [{"box": box_json(b), "peak": round(float(p), 4)} for b, p in self.detected]


def best_matches(snap: Snapshot, filters: Filters | None = None):
    """A ``best(vectors) -> (cosines, rows)`` for :func:`regions.locate`: each vector's best match."""
    def best(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, rows = snap.candidates(np.asarray(vectors, np.float32), 1, filters)
        rows = rows[:, 0].astype(np.int64)
        cos = np.full(len(rows), -1.0)
        ok = rows >= 0
        if ok.any():
            cos[ok] = cosines(np.asarray(vectors, np.float64)[ok], snap.vectors(rows[ok]).astype(np.float64))
        return cos, rows
    return best


def search_image(snap: Snapshot, encoder: Any, image: ImageSource, k: int, *, filters: Filters | None = None,
                 crop: Sequence[float] | None = None, detect: bool = True, search: Any = None,
                 embed: Any = None, propose: Any = "shipped", images: Path | None = None,
                 variants: bool = False) -> RegionSearch:
    """The region-aware query path: the shopper's ``crop`` if given (it always wins), else, with
    ``detect``, the region :func:`regions.locate` picks (the whole photo unless a region clearly
    matches better), else the whole photo. Other regions found come back with their own results.
    ``search(queries, k, filters=...)`` ranks the final vectors (default: :func:`search_vectors`),
    ``embed(image, crop)`` makes a query photo's vector (default: :func:`embed_query`),
    ``propose(image)`` gives the box head's boxes (default: the shipped ``boxhead``; None: none). When a
    region is used, the whole photo's results are woven into its own (:func:`fuse`). A photo read as
    a close-up has its first candidates looked at closer (:func:`closeup_checked`) when ``images``,
    the folder of the catalogue's stored images, is given."""
    k = check_k(k)
    if search is None:
        def search(queries, k, filters=None):
            return search_vectors(snap, queries, k, filters=filters, variants=variants)
    if embed is None:
        def embed(image, crop=None):
            return embed_query(encoder, image, crop)
    if crop is not None or not detect:
        vector = embed(image, crop)
        hits = search(vector[None, :], k, filters=filters)[0]
        return RegionSearch(hits, tuple(float(v) for v in crop) if crop is not None else WHOLE,
                            "crop" if crop is not None else "whole", [])
    im = load_image(image, draft=query_draft(getattr(encoder, "input_size", 224), detect=True))
    if propose == "shipped":
        propose = boxhead.shipped()
    th = Thresholds.of(encoder)
    found: Located = locate(encoder, im, best_matches(snap, filters), whole_vector=embed(im, None), propose=propose,
                            thresholds=th)
    searched = [found.used] + ([found.whole] if found.whole is not None and found.used is not found.whole else [])
    seconds = [found.head] if found.head is not None and len(searched) == 2 else []
    results = search(np.stack([r.vector for r in searched + seconds + found.others]), k, filters=filters)
    hits = results[0] if len(searched) == 1 else \
        fuse(results[0], results[1], k, key=lambda h: h.row if h.key is None else h.key, more=[(results[2], HEAD_WEIGHT)] if seconds else ())
    others = [FoundRegion(r.box, r.score, res, r.kind)
              for r, res in zip(found.others, results[len(searched) + len(seconds):])]
    closeup = None   # the whole photo's best match is not sure: read it as a close-up too, if the store can
    if wants_closeup(found, im, th, propose) and snap.patch_vectors(np.zeros(0, np.int64)) is not None:
        vector = encoder.encode_closeup(im)
        pool = max(k, CLOSEUP_POOL) if images is not None else k
        photo = np.stack([r.vector for r in searched])       # the searched region and the whole photo
        closeup = None if vector is None else closeup_hits(snap, photo, vector, pool, th=th, filters=filters,
                                                           whole_score=found.whole_score, variants=variants)
    if closeup is not None and images is not None:
        closeup = closeup_checked(snap, encoder, photo, closeup, Path(images), im.width / im.height)[:k]
    if closeup is not None:
        hits = closeup
    return RegionSearch(hits, found.used.box, found.used.kind, others, found.used.score, closeup is not None,
                        detected(found))


# --------------------------------------------------------------------------- what every backend offers

class Searchable:
    """Search, similar and product look-ups over :meth:`snapshot`, the same for every backend.
    A backend gives ``snapshot()``, ``encoder`` and ``images_dir``."""

    images_dir: Path | None = None

    @property
    def location(self) -> str:
        """Where the store is, in words (for messages)."""
        raise NotImplementedError

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    @property
    def encoder(self) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.snapshot().count()

    def close(self) -> None:
        """Let go of what the store holds open (files, connections)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def record(self, pid: str) -> tuple[int, Product, str | None]:
        return find(self.snapshot(), pid)

    def product(self, pid: str) -> Product:
        return self.record(pid)[1]

    def vector(self, pid: str) -> np.ndarray:
        snap = self.snapshot()
        return snap.vectors(np.array([find(snap, pid)[0]]))[0]

    def image_file(self, pid: str, n: int = 0) -> Path:
        """The stored image of a product (by id only; never a path from outside): its main picture,
        or with ``n`` the n-th of its other pictures (``Hit.image``)."""
        row, _, file = self.record(pid)
        if n:
            file = next((f for _, m, f in self.snapshot().pictures(row) if m == int(n)), None)
        if not file or self.images_dir is None:
            raise NotFound(f"product {pid!r} has no stored image" + (f" {n}" if n else ""))
        return Path(self.images_dir) / file

    def products(self) -> Iterable[Product]:
        for _, product, _ in self.snapshot().iter_products():
            yield product

    def facets(self) -> dict[str, list[str]]:
        """The distinct values of each facet (``shop``, ``category``), for filter menus."""
        return self.snapshot().facets()

    def embed_query(self, image: ImageSource, crop: Sequence[float] | None = None) -> np.ndarray:
        return embed_query(self.encoder, image, crop)

    def search(self, image: ImageSource, k: int = 10, *, filters: Filters | None = None,
               crop: Sequence[float] | None = None, detect: bool = True, variants: bool = False) -> list[Hit]:
        """The ``k`` catalogue products most like ``image`` (a path, bytes or PIL image): the dress
        found in it (see :meth:`search_regions`), the box ``crop`` if given, the whole photo when
        ``detect`` is false. Each product once (with the picture of it that matched, ``Hit.image``)
        and, unless ``variants``, one variant per ``item_group_id``."""
        return self.search_regions(image, k, filters=filters, crop=crop, detect=detect, variants=variants).hits

    def search_regions(self, image: ImageSource, k: int = 10, *, filters: Filters | None = None,
                       crop: Sequence[float] | None = None, detect: bool = True,
                       variants: bool = False) -> RegionSearch:
        """Like :meth:`search`, and says which region it searched and what other regions it found."""
        def search(queries, k, filters=None):   # through search_vectors, a backend's (and a test's) seam
            return self.search_vectors(queries, k, filters=filters, **({"variants": True} if variants else {}))
        return search_image(self.snapshot(), self.encoder, image, k, filters=filters, crop=crop, detect=detect,
                            search=search, embed=self.embed_query, images=self.images_dir, variants=variants)

    def search_vectors(self, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                       nprobe: int | None = None, variants: bool = False) -> list[list[Hit]]:
        return search_vectors(self.snapshot(), queries, k, filters=filters, nprobe=nprobe, variants=variants)

    def similar(self, pid: str, k: int = 10, *, filters: Filters | None = None,
                include_duplicates: bool = False, variants: bool = False, in_stock: bool = True) -> list[Hit]:
        """Products most like catalogue product ``pid``: never ``pid`` itself and, unless
        ``include_duplicates``, none of its exact duplicates; unless ``variants``, neither its own
        variants nor two variants of one product; unless ``in_stock`` is false, nothing sold out
        (a retailer recommends what can be bought)."""
        snap = self.snapshot()
        return similar_rows(snap, [find(snap, pid)[0]], k, filters=in_stock_only(filters, in_stock),
                            include_duplicates=include_duplicates, variants=variants)[0]
