"""Adapting EfficientNet-Lite0 to a catalogue, so a shopper's photo finds *the* dress.

The retrieval network (``RetrievalNet``)::

    image 224x224 -> EfficientNet-Lite0 (ReLU6, ImageNet weights)
        -> GeM of the head features (1280 @ 7x7)              \\  each L2-normalised,
        -> GeM of block 11's expansion (672 @ 14x14, mid-level) /  concatenated (1952)
        -> minus the catalogue mean, times a learned projection (1952 -> dim) -> L2-normalised

Three ways to fit it, all in ``fit_model`` (``dressfinder train --method contrastive``):

1. **Learned whitening** (closed form, minutes): pairs (photo-like augmented view, clean catalogue
   image) give the covariance of what changes between a shopper's photo and the product picture;
   the projection whitens that away, then keeps the ``dim`` directions in which catalogue images
   differ most (Radenovic et al., "Fine-tuning CNN image retrieval with no human annotation").
2. **Contrastive fine-tuning** of blocks ``split``.. of the network: each step, an augmented view of
   a catalogue image must pick out that image's clean embedding among *all* catalogue images (a
   memory bank of clean embeddings, refreshed as the network changes; InfoNCE with temperature
   ``tau``), plus the symmetric in-batch term. The frozen first blocks run in onnxruntime (3-4x
   faster than torch on a CPU); clean images' frozen features are computed once.
3. The whitening is fitted again on the fine-tuned features.

Training augmentations (``PhotoAugment``) imitate shoppers' photos: random crops and zoom-outs,
new backgrounds, flips, tilts, colour/lighting changes, grayscale, blur, down-scaling and JPEG
loss. They are written independently of the evaluation's variant generator
(``dressfinder/evaluate.py``) and draw from other random streams; a held-out share of the dresses
is kept out of training altogether (``<model>.heldout.txt``) so the evaluation can report it apart.

Everything is resumable: features, the whitening and training checkpoints are kept in a work folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import random
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from ..extras import require

log = logging.getLogger(__name__)

INPUT_SIZE = 224
MID_BLOCK = 11           # block whose expansion activations (672 @ 14x14) give the mid-level part
HEAD_DIM, MID_DIM = 1280, 672
RAW_DIM = HEAD_DIM + MID_DIM
FORMAT = 1               # of the exported model's sidecar JSON


# =========================================================================== the network

def build_backbone():
    """EfficientNet-Lite0 with its ImageNet weights, as trained: ReLU6 activations.

    (``set_swish`` must not be called on a Lite model: it replaces the ReLU6 the weights were
    trained with by Swish, and the features stop making sense.)
    """
    from .effnet import weights_path

    EfficientNet = require("efficientnet_lite_pytorch", "train", "training").EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path())
    model._fc = None        # the ImageNet classifier is not used
    model._dropout = None
    return model.eval()


def _block(block, x):
    """MBConvBlock.forward (Lite: no squeeze-excitation; eval: no drop-connect), also returning the
    expansion activations."""
    a = block._block_args
    inp = x
    if a.expand_ratio != 1:
        x = block._swish(block._bn0(block._expand_conv(x)))
    expanded = x
    x = block._swish(block._bn1(block._depthwise_conv(x)))
    x = block._bn2(block._project_conv(x))
    if block.id_skip and a.stride == 1 and a.input_filters == a.output_filters:
        x = x + inp
    return x, expanded


def _torch():
    return require("torch", "train", "training")


def make_net(dim: int = 512):
    """A ``RetrievalNet`` with ImageNet weights and an identity-like projection (fit it before use)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class GeM(nn.Module):
        def __init__(self, p: float = 3.0, eps: float = 1e-6):
            super().__init__()
            self.p = nn.Parameter(torch.tensor(float(p)))
            self.eps = eps

        def forward(self, x):
            p = self.p.clamp(1.0, 8.0)
            return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    class RetrievalNet(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.net = build_backbone()
            self.gem_head = GeM()
            self.gem_mid = GeM()
            self.register_buffer("mean", torch.zeros(RAW_DIM))
            self.proj = nn.Linear(RAW_DIM, dim, bias=False)
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(dim, RAW_DIM))
            self.dim = dim

        def trunk(self, x, split: int):
            n = self.net
            x = n._swish(n._bn0(n._conv_stem(x)))
            for b in n._blocks[:split]:
                x, _ = _block(b, x)
            return x

        def raw_from(self, x, split: int):
            """Trunk features at ``split`` -> the raw descriptor (two L2-normalised GeM parts)."""
            n = self.net
            mid = None
            for i, b in enumerate(n._blocks):
                if i < split:
                    continue
                x, expanded = _block(b, x)
                if i == MID_BLOCK:
                    mid = expanded
            x = n._swish(n._bn1(n._conv_head(x)))
            return torch.cat([F.normalize(self.gem_head(x), dim=1), F.normalize(self.gem_mid(mid), dim=1)], 1)

        def embed_raw(self, raw):
            return F.normalize(self.proj(raw - self.mean), dim=1)

        def forward(self, x):
            return self.embed_raw(self.raw_from(self.trunk(x, 0), 0))

    return RetrievalNet(dim).eval()


def _trunk_export(net, split: int, with_raw: bool = True):
    """Export helper: image -> trunk features at ``split`` (and the raw descriptor when ``with_raw``)."""
    torch = _torch()

    class W(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = net

        def forward(self, x):
            t = self.m.trunk(x, split)
            return (t, self.m.raw_from(t, split)) if with_raw else t

    return W().eval()


def export_onnx(module, path: Path, outputs: Sequence[str] = ("features",), size: int = INPUT_SIZE) -> Path:
    """Write ``module`` (image batch -> outputs) as ONNX, atomically."""
    import warnings

    torch = _torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, size, size)
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(tmp), input_names=["images"], output_names=list(outputs),
                              dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
                              opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# =========================================================================== training augmentations

def _corner_mask(im: Image.Image, thresh: int = 45) -> np.ndarray | None:
    """Background = what a flood fill from the four corners reaches through pixels within
    ``thresh`` (summed over R, G, B) of the corners' colour. None when the corners do not look like
    one plain backdrop."""
    ndimage = require("scipy.ndimage", "train", "training")
    small = im.copy()
    small.thumbnail((160, 160))
    arr = np.asarray(small, np.int16)
    corners = np.stack([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]])
    if np.abs(corners - corners.mean(0)).max() > 40:
        return None
    near = np.abs(arr - corners.mean(0)).sum(2) <= thresh
    seed = np.zeros_like(near)
    seed[0, 0] = seed[0, -1] = seed[-1, 0] = seed[-1, -1] = True
    fg = ~ndimage.binary_propagation(seed, mask=near)
    share = fg.mean()
    if share < 0.05 or share > 0.95:
        return None
    return np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize(im.size, Image.Resampling.BILINEAR)) > 127


class PhotoAugment:
    """One random shopper-like photo of a catalogue picture (training side)."""

    def __init__(self, backdrops: Sequence[Image.Image] = (), size: int = INPUT_SIZE):
        self.backdrops = list(backdrops)
        self.size = size

    # -- pieces ---------------------------------------------------------------------------
    def backdrop(self, size, r: random.Random) -> Image.Image:
        w, h = size
        c = r.random()
        if c < 0.25:
            return Image.new("RGB", size, tuple(r.randrange(256) for _ in range(3)))
        if c < 0.45:
            a = np.array([r.randrange(256) for _ in range(3)], np.float32)
            b = np.array([r.randrange(256) for _ in range(3)], np.float32)
            t = np.linspace(0, 1, h if r.random() < 0.5 else w, dtype=np.float32)
            t = t[:, None, None] * np.ones((1, w, 1), np.float32) if len(t) == h else \
                t[None, :, None] * np.ones((h, 1, 1), np.float32)
            return Image.fromarray((a + (b - a) * t).astype(np.uint8))
        if c < 0.6:
            g = np.random.default_rng(r.randrange(1 << 30)).integers(0, 256, (r.randint(2, 10), r.randint(2, 10), 3))
            im = Image.fromarray(g.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
            return im.filter(ImageFilter.BoxBlur(r.uniform(0, 3)))
        if not self.backdrops:
            return Image.new("RGB", size, tuple(r.randrange(256) for _ in range(3)))
        src = self.backdrops[r.randrange(len(self.backdrops))]
        sw, sh = src.size
        s = r.uniform(0.3, 1.0)
        cw, ch = max(4, int(sw * s)), max(4, int(sh * s))
        x, y = r.randrange(sw - cw + 1), r.randrange(sh - ch + 1)
        im = src.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)
        if r.random() < 0.7:
            im = im.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 6)))
        return im

    def new_background(self, im: Image.Image, r: random.Random) -> Image.Image:
        w, h = im.size
        mask = _corner_mask(im) if r.random() < 0.85 else None
        zoom = r.uniform(1.0, 1.6)
        cw, ch = int(w * zoom * r.uniform(0.8, 1.3)), int(h * zoom)
        cw, ch = max(cw, w), max(ch, h)
        canvas = self.backdrop((cw, ch), r)
        x, y = r.randrange(cw - w + 1), r.randrange(ch - h + 1)
        if mask is None:
            canvas.paste(im, (x, y))
        else:
            alpha = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.BoxBlur(1))
            canvas.paste(im, (x, y), alpha)
        return canvas

    @staticmethod
    def resized_crop(im: Image.Image, r: random.Random, lo: float = 0.35) -> Image.Image:
        w, h = im.size
        for _ in range(10):
            area = r.uniform(lo, 1.0) * w * h
            ratio = math.exp(r.uniform(math.log(0.7), math.log(1.4)))
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 8 <= cw <= w and 8 <= ch <= h:
                x, y = r.randrange(w - cw + 1), r.randrange(h - ch + 1)
                return im.crop((x, y, x + cw, y + ch))
        return im

    @staticmethod
    def colour(im: Image.Image, r: random.Random) -> Image.Image:
        ops = [lambda i: ImageEnhance.Brightness(i).enhance(r.uniform(0.55, 1.45)),
               lambda i: ImageEnhance.Contrast(i).enhance(r.uniform(0.55, 1.45)),
               lambda i: ImageEnhance.Color(i).enhance(r.uniform(0.4, 1.6)),
               PhotoAugment.hue(r), PhotoAugment.channel_gain(r), PhotoAugment.shade(r)]
        r.shuffle(ops)
        for op in ops[:r.randint(1, 4)]:
            im = op(im)
        return im

    @staticmethod
    def hue(r: random.Random):
        shift = r.randint(-14, 14)

        def f(im):
            h, s, v = im.convert("HSV").split()
            h = h.point(lambda x: (x + shift) % 256)
            return Image.merge("HSV", (h, s, v)).convert("RGB")
        return f

    @staticmethod
    def channel_gain(r: random.Random):
        g = [r.uniform(0.8, 1.2) for _ in range(3)]
        gamma = math.exp(r.uniform(-0.4, 0.4))

        def f(im):
            lut = []
            for gi in g:
                lut += [min(255, int(255 * (min(1.0, v / 255 * gi)) ** gamma)) for v in range(256)]
            return im.point(lut)
        return f

    @staticmethod
    def shade(r: random.Random):
        strength = r.uniform(0.2, 0.6)
        horizontal = r.random() < 0.5
        flip = r.random() < 0.5

        def f(im):
            w, h = im.size
            ramp = np.linspace(1 - strength / 2, 1 + strength / 2, w if horizontal else h, dtype=np.float32)
            if flip:
                ramp = ramp[::-1]
            gain = ramp[None, :, None] if horizontal else ramp[:, None, None]
            return Image.fromarray(np.clip(np.asarray(im, np.float32) * gain, 0, 255).astype(np.uint8))
        return f

    @staticmethod
    def tilt(im: Image.Image, r: random.Random) -> Image.Image:
        arr = np.asarray(im)
        fill = tuple(int(v) for v in arr[0, 0])
        return im.rotate(r.uniform(-18, 18), resample=Image.Resampling.BILINEAR, expand=r.random() < 0.5,
                         fillcolor=fill)

    @staticmethod
    def degrade(im: Image.Image, r: random.Random) -> Image.Image:
        if r.random() < 0.6:
            im = im.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 3.0)) if r.random() < 0.75
                           else ImageFilter.BoxBlur(r.uniform(1, 2.5)))
        if r.random() < 0.6:
            w, h = im.size
            f = r.uniform(0.3, 0.9)
            im = im.resize((max(8, int(w * f)), max(8, int(h * f))), Image.Resampling.BILINEAR)
        return PhotoAugment.jpeg(im, r.randint(6, 60))

    @staticmethod
    def jpeg(im: Image.Image, q: int) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(q))
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    # -- the whole chain ----------------------------------------------------------------------
    def __call__(self, im: Image.Image, r: random.Random) -> Image.Image:
        im = im.convert("RGB")
        if r.random() < 0.4:
            im = self.new_background(im, r)
        if r.random() < 0.6:
            im = self.resized_crop(im, r)
        if r.random() < 0.5:
            im = ImageOps.mirror(im)
        if r.random() < 0.25:
            im = self.tilt(im, r)
        if r.random() < 0.7:
            im = self.colour(im, r)
        if r.random() < 0.2:
            im = ImageOps.grayscale(im).convert("RGB")
        if r.random() < 0.4:
            im = self.degrade(im, r)
        elif r.random() < 0.5:
            im = self.jpeg(im, r.randint(40, 95))
        return im


def to_array(im: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The network's input for one image (same as the encoder's preprocess)."""
    from ..images import fit_square

    arr = np.asarray(fit_square(im.convert("RGB"), size), dtype=np.float32)
    return ((arr - 127.0) / 128.0).transpose(2, 0, 1)


class AugmentedViews:
    """Dataset: item (index, round) -> augmented network input; randomness from (seed, round, index)."""

    def __init__(self, data: Sequence[bytes], backdrops: Sequence[bytes], seed: int, size: int = INPUT_SIZE):
        self.data = data
        self.backdrop_bytes = backdrops
        self.seed = seed
        self.size = size
        self._aug: PhotoAugment | None = None

    def _augment(self) -> PhotoAugment:
        if self._aug is None:
            from ..images import load_image

            self._aug = PhotoAugment([load_image(b, draft=256) for b in self.backdrop_bytes], self.size)
        return self._aug

    def view(self, index: int, round_: int) -> np.ndarray:
        from ..images import load_image

        r = random.Random(f"{self.seed}:{round_}:{index}")
        im = load_image(self.data[index], draft=self.size)
        return to_array(self._augment()(im, r), self.size)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, item):
        index, round_ = item
        return index, self.view(index, round_)


# =========================================================================== whitening

def learned_whitening(clean: np.ndarray, views: np.ndarray, view_of: np.ndarray, dim: int,
                      shrink: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection (dim, d)) whitening what changes between a photo and its product picture.

    ``clean``: (n, d) raw descriptors of catalogue images; ``views``: (m, d) of augmented views;
    ``view_of``: (m,) row of ``clean`` each view was made from.
    """
    clean = np.asarray(clean, np.float64)
    views = np.asarray(views, np.float64)
    d = clean.shape[1]
    mean = clean.mean(0)
    diff = views - clean[view_of]
    cs = diff.T @ diff / len(diff)
    cs += shrink * np.trace(cs) / d * np.eye(d)
    w, v = np.linalg.eigh(cs)
    p1 = (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T           # cs^(-1/2)
    x = (clean - mean) @ p1.T
    cd = x.T @ x / len(x)
    w2, v2 = np.linalg.eigh(cd)
    top = np.argsort(w2)[::-1][:dim]
    proj = v2[:, top].T @ p1
    return mean.astype(np.float32), proj.astype(np.float32)


# =========================================================================== fitting

@dataclass
class FitConfig:
    dim: int = 512
    epochs: float = 0.0          # contrastive fine-tuning epochs over the training images (0: whitening only)
    batch: int = 48
    split: int = 11              # blocks [0, split) stay frozen
    lr: float = 1e-5             # AdamW moves every weight by ~lr a step: keep it small for pretrained blocks
    head_lr: float = 1e-4
    tau: float = 0.05
    views: int = 2               # augmented views per training image for fitting the whitening
    holdout: float = 0.1         # share of the query-like images kept out of training entirely
    seed: int = 1234             # training randomness (the evaluation uses other seeds)
    val_every: int = 200         # steps between validations
    ckpt_every: int = 50         # steps between checkpoints
    backdrops: int = 300
    time_budget: float | None = None   # seconds: stop training (cleanly, resumable) after this long
    refit_whitening: bool = True       # fit the whitening again after fine-tuning (kept if it validates better)
    train_proj: str = "whitened"       # projection during fine-tuning: the learned whitening, or "pca" (a rotation)


def is_query_like(pid: str) -> bool:
    return "dress" in pid.lower()


def holdout_ids(ids: Sequence[str], share: float) -> set[str]:
    """A deterministic share of the query-like ids (all ids when none is query-like)."""
    if share <= 0:
        return set()
    pool = [i for i in ids if is_query_like(i)] or list(ids)
    return {i for i in pool if zlib.crc32(("holdout:" + i).encode("utf-8")) % 1000 < share * 1000}


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, total: int, desc: str, unit: str = "img"):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not self.enabled, dynamic_ncols=True,
                    file=sys.stderr)

    def say(self, msg: str):
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)


def _save_atomic(obj_or_fn: Callable[[Path], None], path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")   # same suffix: np.savez adds none
    obj_or_fn(tmp)
    os.replace(tmp, path)


def _ort_session(path: Path, threads: int | None = None):
    from .onnx_runtime import OnnxModel

    return OnnxModel(path, threads)


def _run_ort(session, arrays_iter, n: int, bar) -> list[np.ndarray]:
    outs = None
    for batch in arrays_iter:
        res = session.session.run(None, {session.input_name: np.ascontiguousarray(batch, np.float32)})
        if outs is None:
            outs = [[] for _ in res]
        for o, r in zip(outs, res):
            o.append(r)
        bar.update(len(batch))
    return [np.concatenate(o) for o in outs] if outs else []


def _batched(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _features(session, producer: Callable[[int], np.ndarray], n: int, bar, batch: int = 32,
              threads: int = 2) -> list[np.ndarray]:
    """Run ``producer(i)`` (an input array) for i < n through the session, decoding in threads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        def batches():
            for chunk in _batched(range(n), batch):
                yield np.stack(list(pool.map(producer, chunk)))
        return _run_ort(session, batches(), n, bar)


def fit_model(images: Sequence[str], ids: Sequence[str], out: str | Path, *, config: FitConfig | None = None,
              work: str | Path | None = None, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Fit the retrieval network to a catalogue; write ``out`` (.onnx) with ``out``.json beside it.

    Resumable: every stage keeps its results in ``work`` (default ``<out>.work``).
    """
    torch = _torch()
    from ..errors import DressfinderError
    from ..images import load_image

    cfg = config or FitConfig()
    out = Path(out)
    work = Path(work) if work else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    say = _Progress(progress)
    torch.set_num_threads(max(1, min(4, len(os.sched_getaffinity(0)))))
    t_start = time.perf_counter()

    cfg_path = work / "config.json"
    if cfg_path.exists() and resume:
        old = json.loads(cfg_path.read_text())
        if {k: old.get(k) for k in ("dim", "split", "seed", "holdout")} != \
                {k: getattr(cfg, k) for k in ("dim", "split", "seed", "holdout")}:
            raise DressfinderError(f"{work} holds a run with other settings ({old}); use another --work or delete it")
    cfg_path.write_text(json.dumps(asdict(cfg), indent=2))

    # -- the images, held-out ones set aside ---------------------------------------------------------
    held = holdout_ids(ids, cfg.holdout)
    say.say(f"catalogue: {len(ids)} images; {len(held)} held out of training")
    data: list[bytes] = []
    keep: list[int] = []
    for i, p in enumerate(images):
        if ids[i] in held:
            continue
        try:
            with open(p, "rb") as f:
                b = f.read()
            load_image(b, draft=64)
        except (OSError, DressfinderError):
            continue
        data.append(b)
        keep.append(i)
    if len(data) < 8:
        raise DressfinderError("need at least 8 readable training images")
    n = len(data)
    rng = np.random.default_rng(cfg.seed)
    backdrops = [data[j] for j in rng.choice(n, size=min(cfg.backdrops, n), replace=False)]
    aug = AugmentedViews(data, backdrops, cfg.seed)
    held_list = sorted(held)
    held_data = []
    for pid in held_list:
        try:
            with open(images[ids.index(pid)], "rb") as f:
                held_data.append(f.read())
        except OSError:
            held_data.append(b"")
    val_aug = AugmentedViews(held_data, backdrops, cfg.seed + 7919)

    net = make_net(cfg.dim)
    split = cfg.split
    if not 0 <= split <= MID_BLOCK:
        raise DressfinderError(f"--split must be between 0 and {MID_BLOCK}")

    def clean_input(b: bytes) -> np.ndarray:
        return to_array(load_image(b, draft=INPUT_SIZE))

    # -- stage 1: frozen trunk features of the clean images, raw descriptors, augmented views -------------
    feats_path = work / "features.npz"
    if not feats_path.exists():
        onnx_path = export_onnx(_trunk_export(net, split), work / "trunk-raw.onnx", ("trunk", "raw"))
        sess = _ort_session(onnx_path)
        with say.bar(n, "clean features") as bar:
            trunk, raw = _features(sess, lambda i: clean_input(data[i]), n, bar)
        order, views_raw = [], []
        with say.bar(n * cfg.views, "augmented views") as bar:
            for v in range(cfg.views):
                _, r = _features(sess, lambda i, v=v: aug.view(i, -1 - v), n, bar)
                views_raw.append(r)
                order.append(np.arange(n))
        held_ok = [j for j, b in enumerate(held_data) if b]
        with say.bar(len(held_ok) * 3, "held-out features") as bar:
            h_trunk, h_raw = _features(sess, lambda j: clean_input(held_data[held_ok[j]]), len(held_ok), bar)
            hv_trunk, hv_raw = [], []
            for v in range(2):
                t, r = _features(sess, lambda j, v=v: val_aug.view(held_ok[j], v), len(held_ok), bar)
                hv_trunk.append(t)
                hv_raw.append(r)
        _save_atomic(lambda p: np.savez(p, trunk=trunk.astype(np.float16), raw=raw,
                                        views_raw=np.concatenate(views_raw), view_of=np.concatenate(order),
                                        h_trunk=h_trunk.astype(np.float16), h_raw=h_raw,
                                        hv_trunk=np.concatenate(hv_trunk).astype(np.float16),
                                        hv_raw=np.concatenate(hv_raw),
                                        hv_of=np.concatenate([np.arange(len(held_ok))] * 2),
                                        held_ok=np.array(held_ok, np.int64)), feats_path)
        del sess
    z = np.load(feats_path)
    trunk, raw = z["trunk"], z["raw"]
    h_trunk, hv_trunk, hv_of = z["h_trunk"], z["hv_trunk"], z["hv_of"]

    # -- stage 2: learned whitening on the pretrained features (the starting point) --------------------------
    white_path = work / "whitening-0.npz"
    if not white_path.exists():
        mean, proj = learned_whitening(raw, z["views_raw"], z["view_of"], cfg.dim)
        _save_atomic(lambda p: np.savez(p, mean=mean, proj=proj), white_path)
    w0 = np.load(white_path)
    history: dict[str, Any] = {"val": [], "loss": []}

    def set_whitening(mean, proj):
        with torch.no_grad():
            net.mean.copy_(torch.from_numpy(np.asarray(mean, np.float32)))
            net.proj.weight.copy_(torch.from_numpy(np.asarray(proj, np.float32)))

    set_whitening(w0["mean"], w0["proj"])

    def validate(bank: np.ndarray | None = None) -> dict[str, float]:
        """Held-out photos (training-style augmentation, own seed) against catalogue + held-out images."""
        with torch.no_grad():
            if bank is None:
                bank = embed_trunk(trunk)
            hc = embed_trunk(h_trunk)
            hv = embed_trunk(hv_trunk)
        allv = np.concatenate([bank, hc])
        target = len(bank) + hv_of
        sims = hv @ allv.T
        top = np.argsort(-sims, axis=1)[:, :10]
        r1 = float((top[:, 0] == target).mean()) if len(top) else float("nan")
        r10 = float((top == target[:, None]).any(1).mean()) if len(top) else float("nan")
        return {"recall@1": r1, "recall@10": r10}

    def embed_trunk(t: np.ndarray, batch: int = 256) -> np.ndarray:
        out_ = []
        for i in range(0, len(t), batch):
            x = torch.from_numpy(np.asarray(t[i:i + batch], np.float32))
            out_.append(net.embed_raw(net.raw_from(x, split)).numpy())
        return np.concatenate(out_) if out_ else np.zeros((0, cfg.dim), np.float32)

    # -- stage 3: contrastive fine-tuning --------------------------------------------------------------------
    steps_per_epoch = max(1, n // cfg.batch)
    total_steps = int(round(cfg.epochs * steps_per_epoch))
    if total_steps > 0 and cfg.train_proj == "pca":
        # a well-conditioned space to fine-tune in: the whitening's large gains would amplify every
        # change of the features; it is fitted again afterwards (stage 4)
        centred = raw - raw.mean(0)
        _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 8000)], full_matrices=False)
        set_whitening(raw.mean(0), vt[:cfg.dim] * math.sqrt(cfg.dim))
    ckpt_path = work / "checkpoint.pt"
    trained_steps = 0
    if total_steps > 0:
        trained_steps = _contrastive(net, cfg, aug, trunk, n, steps_per_epoch, total_steps, ckpt_path, resume,
                                     validate, embed_trunk, history, say, work, t_start)
        # -- stage 4: whitening again, on the fine-tuned features ---------------------------------------------
        white_path = work / f"whitening-{trained_steps}.npz"
        if not cfg.refit_whitening:
            pass
        elif not white_path.exists():
            sess = _ort_session(export_onnx(_trunk_export(net, split), work / "trunk-raw-tuned.onnx",
                                            ("trunk", "raw")))
            with say.bar(n * (1 + cfg.views), "refit whitening") as bar:
                _, raw_t = _features(sess, lambda i: clean_input(data[i]), n, bar)
                views_t = []
                for v in range(cfg.views):
                    views_t.append(_features(sess, lambda i, v=v: aug.view(i, -101 - v), n, bar)[1])
            mean, proj = learned_whitening(raw_t, np.concatenate(views_t), np.concatenate([np.arange(n)] * cfg.views),
                                           cfg.dim)
            _save_atomic(lambda p: np.savez(p, mean=mean, proj=proj), white_path)
            del sess
        before = validate()
        if not cfg.refit_whitening:
            final = before
        else:
            final = _choose_whitening(net, white_path, before, validate, set_whitening, say)
    else:
        final = validate()
    history["final_val"] = final
    say.say(f"held-out validation: R@1 {final['recall@1']:.3f}  R@10 {final['recall@10']:.3f}")

    # -- export ------------------------------------------------------------------------------------------
    export_onnx(net, out)
    held_path = out.with_name(out.stem + ".heldout.txt")
    held_path.write_text("".join(f"{h}\n" for h in held_list))
    meta = {
        "format": FORMAT, "name": "effnet-tuned", "dim": cfg.dim, "input_size": INPUT_SIZE, "metric": "ip",
        "preprocess": "RGB, longer side to 224, white padding to 224x224, (x - 127) / 128",
        "config": asdict(cfg), "training_images": n, "held_out": len(held_list),
        "held_out_file": held_path.name, "steps": trained_steps, "validation": final,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out.with_name(out.stem + ".json")).write_text(json.dumps(meta, indent=2) + "\n")
    (work / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    return {**meta, "history": history}


def _contrastive(net, cfg: FitConfig, aug: AugmentedViews, trunk: np.ndarray, n: int, steps_per_epoch: int,
                 total_steps: int, ckpt_path: Path, resume: bool, validate, embed_trunk, history, say,
                 work: Path, t_start: float) -> int:
    torch = _torch()
    F = torch.nn.functional
    split = cfg.split

    # trainable: blocks >= split, head conv/bn, GeM exponents, projection
    for p in net.parameters():
        p.requires_grad = False
    body = []
    for b in net.net._blocks[split:]:
        body += list(b.parameters())
    body += list(net.net._conv_head.parameters()) + list(net.net._bn1.parameters())
    head = [net.gem_head.p, net.gem_mid.p, net.proj.weight]
    for p in body + head:
        p.requires_grad = True
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr, "weight_decay": 1e-5},
                             {"params": head, "lr": cfg.head_lr, "weight_decay": 0.0}])
    base_lrs = [cfg.lr, cfg.head_lr]
    warm = min(50, total_steps // 10 + 1)

    step = 0
    bank = None
    settings = {k: getattr(cfg, k) for k in ("epochs", "batch", "split", "lr", "head_lr", "tau", "dim", "seed",
                                             "train_proj")}
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck.get("settings") != settings:
            from ..errors import DressfinderError

            raise DressfinderError(f"{ckpt_path} was made with other settings ({ck.get('settings')}); "
                                   "use the same ones, --no-resume, or another --work")
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        step = int(ck["step"])
        bank = ck["bank"]
        history.update(ck["history"])
        say.say(f"resuming contrastive training at step {step}/{total_steps}")
    if bank is None:
        say.say("memory bank: embedding the catalogue")
        with torch.no_grad():
            bank = embed_trunk(trunk)
        history["val"].append({"step": 0, **validate(bank)})
        v0 = history["val"][-1]
        say.say(f"step 0: held-out R@1 {v0['recall@1']:.3f}  R@10 {v0['recall@10']:.3f}")
    bank_t = torch.from_numpy(bank)

    trunk_onnx = export_onnx(_trunk_export(net, split, with_raw=False), work / f"trunk-{split}.onnx", ("trunk",))
    trunk_sess = _ort_session(trunk_onnx, threads=None)

    def save(step_: int):
        _save_atomic(lambda p: torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step_,
                                           "settings": settings,
                                           "bank": bank_t.numpy(), "history": history}, p), ckpt_path)

    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)

    def batch_indices(s: int) -> np.ndarray:
        epoch, k = divmod(s, steps_per_epoch)
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        return perm[k * cfg.batch:(k + 1) * cfg.batch]

    def load_views(s: int):
        idx = batch_indices(s)
        epoch = s // steps_per_epoch
        return idx, np.stack(list(pool.map(lambda i: aug.view(int(i), epoch), idx)))

    bar = say.bar(total_steps, "contrastive", unit="step")
    bar.update(step)
    pending = pool.submit(load_views, step) if step < total_steps else None
    t_run = time.perf_counter()
    try:
        while step < total_steps:
            idx, views = pending.result()
            pending = pool.submit(load_views, step + 1) if step + 1 < total_steps else None
            lr_scale = min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * lr_scale
            t_aug = torch.from_numpy(trunk_sess(views))
            t_clean = torch.from_numpy(np.asarray(trunk[idx], np.float32))
            z = net.embed_raw(net.raw_from(torch.cat([t_aug, t_clean]), split))
            za, zc = z[:len(idx)], z[len(idx):]
            idx_t = torch.from_numpy(idx)
            # photo -> its catalogue image among all catalogue images (bank; this batch's rows fresh)
            # (the bank's columns of this batch's images are replaced by their fresh embeddings)
            logits_bank = (za @ bank_t.T).index_fill(1, idx_t, -1e4)
            own = (za * zc).sum(1, keepdim=True)
            in_batch = (za @ zc.T).masked_fill(torch.eye(len(idx), dtype=torch.bool), -1e4)
            logits = torch.cat([own, in_batch, logits_bank], 1) / cfg.tau
            loss_q = F.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
            loss_c = F.cross_entropy((zc @ za.T) / cfg.tau, torch.arange(len(idx)))
            loss = loss_q + 0.5 * loss_c
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                bank_t[idx_t] = zc.detach()
            step += 1
            history["loss"].append([step, round(loss_q.item(), 4), round(loss_c.item(), 4)])
            bar.update(1)
            bar.set_postfix(loss=f"{loss_q.item():.3f}", lr=f"{cfg.lr * lr_scale:.1e}")
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch:   # refresh the whole bank with the current network
                with torch.no_grad():
                    bank_t = torch.from_numpy(embed_trunk(trunk))
            if step % cfg.val_every == 0 or end_of_epoch or step == total_steps:
                v = validate(bank_t.numpy())
                history["val"].append({"step": step, "epoch": round(step / steps_per_epoch, 2), **v,
                                       "seconds": round(time.perf_counter() - t_start, 1)})
                say.say(f"\nstep {step} (epoch {step / steps_per_epoch:.2f}): held-out R@1 {v['recall@1']:.3f}  "
                        f"R@10 {v['recall@10']:.3f}  loss {loss_q.item():.3f}")
                (work / "history.json").write_text(json.dumps(history, indent=2) + "\n")
            if step % cfg.ckpt_every == 0 or step == total_steps:
                save(step)
            if cfg.time_budget and time.perf_counter() - t_run > cfg.time_budget and step < total_steps:
                save(step)
                say.say(f"\ntime budget reached at step {step}/{total_steps}; rerun with --resume to go on")
                break
    finally:
        bar.close()
        if pending is not None:
            pending.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
    if step < total_steps:
        from ..errors import DressfinderError

        raise DressfinderError(f"training stopped at step {step} of {total_steps}; rerun with --resume")
    for p in net.parameters():
        p.requires_grad = False
    net.eval()
    return step


def _choose_whitening(net, white_path: Path, before: dict, validate, set_whitening, say) -> dict:
    """Use the refitted whitening if it validates better than the trained projection."""
    keep = (net.mean.clone().numpy(), net.proj.weight.detach().clone().numpy())
    wt = np.load(white_path)
    set_whitening(wt["mean"], wt["proj"])
    after = validate()
    if after["recall@1"] + after["recall@10"] < before["recall@1"] + before["recall@10"]:
        set_whitening(*keep)
        say.say(f"refitted whitening not better ({after} vs {before}): kept the trained projection")
        return before
    say.say(f"refitted whitening: {after} (trained projection: {before})")
    return after
