"""The retrieval network in torch (``RetrievalNet``) and its input.

::

    image 224x224 -> EfficientNet-Lite0 (ReLU6, ImageNet weights)
        -> GeM of the head features (1280 @ 7x7)              \\  each L2-normalised,
        -> GeM of block 11's expansion (672 @ 14x14, mid-level) /  concatenated (1952)
        -> minus the catalogue mean, times a learned projection (1952 -> dim) -> L2-normalised

torch is imported only when a network is made.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from PIL import Image

from ..extras import require
from ..images import fit_square

INPUT_SIZE = 224
MID_BLOCK = 11           # block whose expansion activations (672 @ 14x14) give the mid-level part
HEAD_DIM, MID_DIM = 1280, 672
RAW_DIM = HEAD_DIM + MID_DIM


def torch_module():
    """torch, imported on first use (the [train] extra)."""
    return require("torch", "train", "training")


def to_array(im: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The network's input for one image (same as the encoder's preprocess)."""
    arr = np.asarray(fit_square(im.convert("RGB"), size), dtype=np.float32)
    return ((arr - 127.0) / 128.0).transpose(2, 0, 1)


def build_backbone():
    """EfficientNet-Lite0 with its ImageNet weights, as trained: ReLU6 activations.

    (``set_swish`` must not be called on a Lite model: it replaces the ReLU6 the weights were
    trained with by Swish, and the features stop making sense.)
    """
    from ..encoders.effnet import weights_path

    EfficientNet = require("efficientnet_lite_pytorch", "train", "training").EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path())
    model._fc = None        # the ImageNet classifier is not used
    model._dropout = None
    return model.eval()


def block_forward(block, x):
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


def block_outputs(model, x, taps) -> list:
    """The stem and every block of an EfficientNet (``build_backbone``) on ``x``: the outputs of the
    blocks numbered in ``taps``, then the last block's."""
    x = model._swish(model._bn0(model._conv_stem(x)))
    out = []
    for i, b in enumerate(model._blocks):
        x, _ = block_forward(b, x)
        if i in taps:
            out.append(x)
    return out + [x]


def _gem_class(torch):
    nn = torch.nn

    class GeM(nn.Module):
        def __init__(self, p: float = 3.0, eps: float = 1e-6):
            super().__init__()
            self.p = nn.Parameter(torch.tensor(float(p)))
            self.eps = eps

        def forward(self, x):
            p = self.p.clamp(1.0, 8.0)
            return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    return GeM


def _retrieval_net_class(torch):
    nn = torch.nn
    F = torch.nn.functional
    GeM = _gem_class(torch)

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
                x, _ = block_forward(b, x)
            return x

        def raw_from(self, x, split: int):
            """Trunk features at ``split`` -> the raw descriptor (two L2-normalised GeM parts)."""
            n = self.net
            mid = None
            for i, b in enumerate(n._blocks):
                if i < split:
                    continue
                x, expanded = block_forward(b, x)
                if i == MID_BLOCK:
                    mid = expanded
            x = n._swish(n._bn1(n._conv_head(x)))
            return torch.cat([F.normalize(self.gem_head(x), dim=1), F.normalize(self.gem_mid(mid), dim=1)], 1)

        def embed_raw(self, raw):
            return F.normalize(self.proj(raw - self.mean), dim=1)

        def forward(self, x):
            return self.embed_raw(self.raw_from(self.trunk(x, 0), 0))

        def body_parameters(self, split: int) -> list:
            """What contrastive fine-tuning changes of the backbone: blocks >= split, head conv/bn."""
            n = self.net
            body = []
            for b in n._blocks[split:]:
                body += list(b.parameters())
            return body + list(n._conv_head.parameters()) + list(n._bn1.parameters())

        def head_parameters(self) -> list:
            """The GeM exponents and the projection."""
            return [self.gem_head.p, self.gem_mid.p, self.proj.weight]

    return RetrievalNet


def make_net(dim: int = 512):
    """A ``RetrievalNet`` with ImageNet weights and an identity-like projection (fit it before use)."""
    return _retrieval_net_class(torch_module())(dim).eval()


def set_projection(net, mean, proj) -> None:
    """Set the network's centring mean and projection (a whitening, or a rotation)."""
    torch = torch_module()
    with torch.no_grad():
        net.mean.copy_(torch.from_numpy(np.asarray(mean, np.float32)))
        net.proj.weight.copy_(torch.from_numpy(np.asarray(proj, np.float32)))


def embed_trunk(net, t: np.ndarray, split: int, batch: int = 256) -> np.ndarray:
    """Embeddings of trunk features at ``split`` (run it under ``torch.no_grad()``)."""
    torch = torch_module()
    out_ = []
    for i in range(0, len(t), batch):
        x = torch.from_numpy(np.asarray(t[i:i + batch], np.float32))
        out_.append(net.embed_raw(net.raw_from(x, split)).numpy())
    return np.concatenate(out_) if out_ else np.zeros((0, net.dim), np.float32)
