"""Training the box head: where a product's photo is in a bigger picture (``dressfinder.boxhead``).

Self-supervised: the pictures are composed by ``dressfinder.tools.scenes`` from product photos (a
phone screenshot of a post, a shop page with other products in view, a photo of a laptop screen,
a product small among clutter, the photo alone), which know where they put the photo; most source
photos are first cut to a random shape (:func:`reshape`: upright to wide), so the head does not
learn one shape of photo. The network::

    picture, longer side 320, padded square -> EfficientNet-Lite0 (ImageNet weights, frozen)
        -> block 10 (112 @ 20x20) and block 15 (320 @ 10x10, upsampled) concatenated
        -> 1x1 conv 96, ReLU, 3x3 conv 96, ReLU, 3x3 conv 96 (dilated 2), ReLU -> 1x1 conv: 5 maps @ 20x20
           * "centre-ness" (logit): how central this cell is inside the photo's box, 0 outside,
           * its distances to the box's left, top, right and bottom (softplus; fractions of the square).

Only the head is trained (the frozen trunk's features are computed once and kept in memory), so
a few thousand pictures train it in minutes on a CPU. ``scripts/train_box_head.py`` makes the
shipped ``dressfinder/models/boxhead.onnx``.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..images import fit_square
from .network import torch_module

SIZE = 320                 # the head's input: the picture's longer side, padded to a square
GRID = SIZE // 16          # its output maps are GRID x GRID
FEAT_BLOCK = 10            # last block at stride 16 (112 channels)
#: The share of each kind of picture among the training examples ("photo": the photo alone).
MIX = {"screen": 0.40, "scene": 0.25, "social": 0.12, "shop": 0.13, "photo": 0.10}
#: The share of source photos cut to another shape first, and the shapes (width / height) drawn
#: evenly in log scale: the product photos it is trained on may all be square (fashion-products-9k
#: are), while a shop's dress photo is mostly upright (2:3, 3:4); a head trained on squares only
#: guesses a hidden edge (a white studio backdrop on a white page) where a square's would be.
RESHAPE_SHARE = 0.75
ASPECTS = (0.45, 1.35)


def square_box(size: tuple[int, int], box: Sequence[float]) -> np.ndarray:
    """A box in fractions of a ``size`` picture -> fractions of its padded square (``fit_square``)."""
    w, h = size
    s = max(w, h)
    ox, oy = (s - w) / 2 / s, (s - h) / 2 / s
    return np.array([ox + box[0] * w / s, oy + box[1] * h / s, ox + box[2] * w / s, oy + box[3] * h / s],
                    np.float32)


def _example(args) -> tuple[np.ndarray, np.ndarray]:
    """One training picture (SIZE square, uint8) and its photo's box in the square, from a seed."""
    from ..tools import scenes

    paths, i, seed, kinds, weights = args
    rng = np.random.default_rng([seed, i])
    im = reshape(Image.open(paths[int(rng.integers(len(paths)))]).convert("RGB"), rng)
    pool = [Image.open(paths[int(j)]).convert("RGB") for j in rng.integers(0, len(paths), 8)]
    kind = kinds[int(rng.choice(len(kinds), p=weights))]
    if kind == "photo":
        pic, box = im, (0.0, 0.0, 1.0, 1.0)
    else:
        pic, box = scenes.make_picture(im, kind, rng, pool)
    if kind in ("social", "shop", "photo"):
        box = tight_box(pic, box)
    return np.asarray(fit_square(pic, SIZE)), square_box(pic.size, box)


def reshape(im: Image.Image, rng) -> Image.Image:
    """``im`` cut to a random shape (:data:`ASPECTS`) about a point near its centre, for
    :data:`RESHAPE_SHARE` of the photos; the others as they are."""
    if rng.random() >= RESHAPE_SHARE:
        return im
    w, h = im.size
    aspect = float(np.exp(rng.uniform(np.log(ASPECTS[0]), np.log(ASPECTS[1]))))
    nw, nh = (min(w, round(h * aspect)), h) if aspect < w / h else (w, min(h, round(w / aspect)))
    x, y = int(rng.integers(0, w - nw + 1)), int(rng.integers(0, h - nh + 1))
    cx, cy = (w - nw) // 2, (h - nh) // 2          # near the centre: the product stays in view
    x, y = (x + 3 * cx) // 4, (y + 3 * cy) // 4
    return im.crop((x, y, x + max(8, nw), y + max(8, nh)))


def tight_box(pic: Image.Image, box: Sequence[float], tol: int = 28) -> tuple[float, float, float, float]:
    """The part of ``box`` that differs from the flat colour around it (a product photo's white
    backdrop on a white page is not told from the page, so it is not asked for); ``box`` as it is
    when its surround is not flat."""
    arr = np.asarray(pic.convert("RGB"), np.int16)
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
    m = max(2, min(w, h) // 100)
    ring = np.concatenate([arr[max(0, y0 - m):y0, x0:x1].reshape(-1, 3), arr[y1:y1 + m, x0:x1].reshape(-1, 3),
                           arr[y0:y1, max(0, x0 - m):x0].reshape(-1, 3), arr[y0:y1, x1:x1 + m].reshape(-1, 3)])
    if box == (0.0, 0.0, 1.0, 1.0):      # the photo alone: its own border is the surround
        ring = np.concatenate([arr[:m].reshape(-1, 3), arr[-m:].reshape(-1, 3), arr[:, :m].reshape(-1, 3),
                               arr[:, -m:].reshape(-1, 3)])
    if len(ring) == 0:
        return tuple(box)
    bg = np.median(ring, axis=0)
    if (np.abs(ring - bg).max(axis=1) <= tol).mean() < 0.8:
        return tuple(box)
    ys, xs = np.nonzero(np.abs(arr[y0:y1, x0:x1] - bg).max(axis=2) > tol)
    if len(xs) < 0.05 * (x1 - x0) * (y1 - y0):
        return tuple(box)
    return ((x0 + xs.min()) / w, (y0 + ys.min()) / h, (x0 + xs.max() + 1) / w, (y0 + ys.max() + 1) / h)


def make_examples(paths: Sequence[str], n: int, seed: int, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` composed pictures from the product photos at ``paths``, and their boxes."""
    from tqdm import tqdm

    kinds = list(MIX)
    weights = np.array([MIX[k] for k in kinds]) / sum(MIX.values())
    jobs = [(list(paths), i, seed, kinds, weights) for i in range(n)]
    with ProcessPoolExecutor(workers) as ex:
        out = list(tqdm(ex.map(_example, jobs, chunksize=16), total=n, desc="pictures", dynamic_ncols=True))
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def targets(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: centre-ness inside the box (0 outside) and the distances to its edges (n, 4, G, G)."""
    c = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID
    cx, cy = c[None, None, :], c[None, :, None]
    b = boxes[:, :, None, None]
    dist = np.stack(np.broadcast_arrays(cx - b[:, 0], cy - b[:, 1], b[:, 2] - cx, b[:, 3] - cy), 1)
    inside = (dist > 0).all(axis=1)
    d = np.maximum(dist, 1e-6)
    centre = np.sqrt(np.minimum(d[:, 0], d[:, 2]) / np.maximum(d[:, 0], d[:, 2])
                     * np.minimum(d[:, 1], d[:, 3]) / np.maximum(d[:, 1], d[:, 3]))
    return np.where(inside, centre, 0.0).astype(np.float32), dist.astype(np.float32)


def _modules(torch):
    nn = torch.nn
    F = torch.nn.functional
    from .network import block_outputs, build_backbone

    class Trunk(nn.Module):
        """Frozen EfficientNet-Lite0: features at stride 16 (block 10) and 32 (block 15)."""

        def __init__(self):
            super().__init__()
            self.net = build_backbone()

        def forward(self, x):
            mid, deep = block_outputs(self.net, x, (FEAT_BLOCK,))
            return mid, deep

    class Head(nn.Module):
        def __init__(self, width: int = 96):
            super().__init__()
            self.a = nn.Conv2d(112 + 320, width, 1)
            self.b = nn.Conv2d(width, width, 3, padding=1)
            self.c = nn.Conv2d(width, width, 3, padding=2, dilation=2)
            self.out = nn.Conv2d(width, 5, 1)

        def forward(self, mid, deep):
            x = torch.cat([mid, F.interpolate(deep, size=mid.shape[-2:], mode="nearest")], 1)
            x = self.out(F.relu(self.c(F.relu(self.b(F.relu(self.a(x)))))))
            return x[:, 0], F.softplus(x[:, 1:])

    class BoxNet(nn.Module):
        """image (n, 3, SIZE, SIZE), scaled (x - 127) / 128 -> centre-ness (n, G, G), edges (n, 4, G, G)."""

        def __init__(self, trunk, head):
            super().__init__()
            self.trunk, self.head = trunk, head

        def forward(self, x):
            logit, dist = self.head(*self.trunk(x))
            return torch.sigmoid(logit), dist

    return Trunk, Head, BoxNet


def trunk_features(trunk, pictures: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The frozen trunk's two feature maps for uint8 pictures (n, SIZE, SIZE, 3), float16."""
    from tqdm import tqdm

    torch = torch_module()
    mids, deeps = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(pictures), batch), desc="features", dynamic_ncols=True):
            x = torch.from_numpy(((pictures[i:i + batch].astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2))
            mid, deep = trunk(x)
            mids.append(mid.numpy().astype(np.float16))
            deeps.append(deep.numpy().astype(np.float16))
    return np.concatenate(mids), np.concatenate(deeps)


def fit_head(head, mid: np.ndarray, deep: np.ndarray, boxes: np.ndarray, *, epochs: int, seed: int,
             batch: int = 64, lr: float = 2e-3) -> list[float]:
    """Train the head on cached features: BCE on centre-ness, L1 on the edges weighted by it."""
    torch = torch_module()
    F = torch.nn.functional
    torch.manual_seed(seed)
    centre, dist = targets(boxes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(mid) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    history = []
    head.train()
    for epoch in range(epochs):
        order, total = rng.permutation(len(mid)), 0.0
        for i in range(0, len(order), batch):
            j = np.sort(order[i:i + batch])
            m, d = torch.from_numpy(mid[j].astype(np.float32)), torch.from_numpy(deep[j].astype(np.float32))
            if rng.random() < 0.5:     # mirror: the box mirrors too
                m, d = m.flip(-1), d.flip(-1)
                c, e = torch.from_numpy(centre[j][..., ::-1].copy()), torch.from_numpy(dist[j][:, [2, 1, 0, 3], :, ::-1].copy())
            else:
                c, e = torch.from_numpy(centre[j]), torch.from_numpy(dist[j])
            logit, pred = head(m, d)
            w = c[:, None]
            loss = F.binary_cross_entropy_with_logits(logit, c) * 10 + (w * (pred - e).abs()).sum() / w.sum().clamp(min=1) * 5
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(j)
        history.append(total / len(mid))
        print(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}", flush=True)
    head.eval()
    return history


def cached_examples(paths: Sequence[str], n: int, seed: int, work: Path, workers: int = 2):
    """:func:`make_examples`, kept in ``work`` (composing them is most of the time)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"pictures-{n}-{seed}-{len(paths)}-{RESHAPE_SHARE}-{ASPECTS[0]}-{ASPECTS[1]}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["pictures"], z["boxes"]
    pictures, boxes = make_examples(paths, n, seed, workers)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, pictures=pictures, boxes=boxes)
    os.replace(tmp, path)
    return pictures, boxes


def train(paths: Sequence[str], out: Path, *, n: int, epochs: int, seed: int, work: Path,
          val_share: float = 0.1, workers: int = 2) -> dict:
    """Compose pictures, train the head, export ``out`` (.onnx) with a ``.json`` of how it was made."""
    torch = torch_module()
    from .export import export_onnx

    t0 = time.time()
    pictures, boxes = cached_examples(paths, n, seed, work, workers)
    Trunk, Head, BoxNet = _modules(torch)
    trunk = Trunk().eval()
    mid, deep = trunk_features(trunk, pictures)
    n_val = int(len(mid) * val_share)
    head = Head()
    history = fit_head(head, mid[n_val:], deep[n_val:], boxes[n_val:], epochs=epochs, seed=seed)
    net = BoxNet(trunk, head).eval()
    val = validate(net, pictures[:n_val], boxes[:n_val])
    export_onnx(net, out, outputs=("centre", "edges"), size=SIZE)
    info = {"format": 1, "size": SIZE, "grid": GRID, "pictures": n, "validation_pictures": n_val, "mix": MIX,
            "epochs": epochs, "seed": seed, "loss": history, "validation": val,
            "minutes": round((time.time() - t0) / 60, 1)}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, out.with_suffix(".json"))
    return info


def validate(net, pictures: np.ndarray, boxes: np.ndarray) -> dict:
    """IoU of the best decoded box with the true one, on pictures kept out of training."""
    from ..boxhead import decode
    from ..regions import iou

    torch = torch_module()
    ious = []
    with torch.no_grad():
        for i in range(0, len(pictures), 32):
            x = torch.from_numpy(((pictures[i:i + 32].astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2))
            centre, edges = net(x)
            for c, e, b in zip(centre.numpy(), edges.numpy(), boxes[i:i + 32]):
                found = decode(c, e)
                ious.append(max([iou(f[0], b) for f in found[:1]], default=0.0))
    ious = np.array(ious)
    return {"n": int(len(ious)), "mean_iou": round(float(ious.mean()), 3) if len(ious) else None,
            "iou_over_0.5": round(float((ious > 0.5).mean()), 3) if len(ious) else None,
            "iou_over_0.7": round(float((ious > 0.7).mean()), 3) if len(ious) else None}
