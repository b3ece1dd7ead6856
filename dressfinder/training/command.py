"""``dressfinder train``: train an encoder on a catalogue.

* ``--method autoencoder`` (the seed's model): the 32x32 convolutional autoencoder, saved as
  ``.keras``; Keras prints the training and validation loss of every epoch.
* ``--method contrastive``: adapts EfficientNet-Lite0 to the catalogue (``dressfinder/training/``):
  learned whitening from photo-like augmented views, then contrastive fine-tuning of the upper
  blocks against a memory bank of every catalogue image, then the whitening again. Writes
  ``OUT.onnx`` (use it with ``--encoder effnet-tuned --model OUT.onnx``), ``OUT.json`` (settings,
  validation), ``OUT.heldout.txt`` (images kept out of training) and a work folder with the
  checkpoints and ``history.json`` (loss and held-out validation curve). ``--resume`` (the
  default) continues an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalogue folder or CSV to train on")
    p.add_argument("--out", required=True,
                   help="model file to write (.keras for autoencoder, .onnx for contrastive)")
    p.add_argument("--method", choices=["autoencoder", "contrastive"], default="autoencoder",
                   help="autoencoder: the seed's model; contrastive: fine-tune EfficientNet-Lite0 (default: autoencoder)")
    p.add_argument("--epochs", type=float, default=None,
                   help="epochs (autoencoder default 20; contrastive default 2, 0 = whitening only)")
    p.add_argument("--batch", type=int, default=None, help="batch size (autoencoder 128, contrastive 48)")
    p.add_argument("--dim", type=int, default=512, help="contrastive: descriptor dimension (default 512)")
    p.add_argument("--split", type=int, default=11, help="contrastive: first fine-tuned block, 0-11 (default 11)")
    p.add_argument("--lr", type=float, default=1e-5, help="contrastive: learning rate of the network (default 1e-5)")
    p.add_argument("--head-lr", type=float, default=1e-4,
                   help="contrastive: learning rate of the pooling and projection (default 1e-4)")
    p.add_argument("--tau", type=float, default=0.05, help="contrastive: softmax temperature (default 0.05)")
    p.add_argument("--train-proj", choices=["whitened", "pca"], default="whitened",
                   help="contrastive: projection while fine-tuning: the learned whitening, or a PCA rotation "
                        "(the whitening is fitted again after fine-tuning either way)")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="contrastive: share of the dresses kept out of training, for validation (default 0.1)")
    p.add_argument("--seed", type=int, default=1234, help="training randomness (default 1234)")
    p.add_argument("--screen-views", type=float, default=0.0, metavar="SHARE",
                   help="contrastive: share of augmented views made photos of a screen (moiré, glare; default 0)")
    p.add_argument("--closeup-views", type=float, default=0.0, metavar="SHARE",
                   help="contrastive: share of augmented views made close-ups of the fabric (default 0)")
    p.add_argument("--work", default=None, help="contrastive: folder for features and checkpoints (default OUT.work)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="contrastive: start over instead of continuing from the work folder")
    p.add_argument("--resume", dest="resume", action="store_true", help="continue an interrupted run (default)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="contrastive: stop after this long (checkpointed; --resume goes on)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(resume=True)


def run(args: argparse.Namespace) -> int:
    from ..catalog import read_catalog
    from ..errors import DressfinderError

    products = read_catalog(args.catalog).products
    if not products:
        raise DressfinderError(f"catalogue {args.catalog} has no images")
    out = Path(args.out)
    if args.method == "autoencoder":
        from .autoencoder import train_from_sources

        if out.suffix != ".keras":
            raise DressfinderError("--out for the autoencoder must end in .keras")
        hist = train_from_sources([p.image for p in products], out, progress=not args.quiet,
                                  epochs=int(args.epochs if args.epochs is not None else 20),
                                  **({"batch_size": args.batch} if args.batch else {}))
        curve = out.with_name(out.stem + ".history.json")
        curve.write_text(json.dumps(hist, indent=2) + "\n")
        last = {k: round(v[-1], 5) for k, v in hist.items() if v}
        print(f"wrote {out} (final {', '.join(f'{k} {v}' for k, v in last.items())}; curve in {curve})",
              file=sys.stderr)
        return 0

    from .config import FitConfig
    from .fit import fit_model

    if out.suffix != ".onnx":
        raise DressfinderError("--out for the contrastive method must end in .onnx")
    if not 0 <= args.holdout < 1:
        raise DressfinderError("--holdout must be in [0, 1)")
    if not (0 <= args.screen_views <= 1 and 0 <= args.closeup_views <= 1):
        raise DressfinderError("--screen-views and --closeup-views must be in [0, 1]")
    cfg = FitConfig(dim=args.dim, epochs=float(args.epochs if args.epochs is not None else 2), split=args.split,
                    lr=args.lr, head_lr=args.head_lr, tau=args.tau, train_proj=args.train_proj,
                    holdout=args.holdout, seed=args.seed,
                    screen_views=args.screen_views, closeup_views=args.closeup_views,
                    batch=args.batch or FitConfig.batch,
                    time_budget=args.time_budget * 60 if args.time_budget else None)
    meta = fit_model([p.image for p in products], [p.id for p in products], out, config=cfg,
                     work=Path(args.work) if args.work else None, resume=args.resume, progress=not args.quiet)
    v = meta["validation"]
    print(f"wrote {out} ({meta['dim']}-d, {meta['steps']} fine-tuning steps, {meta['seconds']:.0f} s); "
          f"held-out validation R@1 {v['recall@1']:.3f} R@10 {v['recall@10']:.3f}", file=sys.stderr)
    print(f"its cosines may spread unlike the shipped model's: fit the region search's thresholds to them with "
          f"python -m dressfinder.training.fit_thresholds {args.catalog} --model {out} --write", file=sys.stderr)
    return 0
