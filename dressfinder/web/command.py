"""``dressfinder serve`` (and the seed's ``python app.py`` / ``python api.py``): serve one store."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import DressfinderError
from ..settings import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="store folder (default: $DRESSFINDER_STORE)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=2000, help="port (default 2000)")
    p.add_argument("--threads", type=int, default=None,
                   help="searches run at once (default: $DRESSFINDER_WORKERS or min(4, CPUs))")
    p.add_argument("--max-queue", type=int, default=None,
                   help="searches that may wait before the server answers 503 (default: $DRESSFINDER_MAX_QUEUE or 32)")
    p.add_argument("--reload-interval", type=float, default=None,
                   help="seconds between checks for a rebuilt store, 0 = never (default 5; SIGHUP reloads now)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="check that the store was encoded with this variant of the encoder (queries always use "
                        "the store's; another one is refused). Default $DRESSFINDER_PRECISION or auto")


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from ..backends import open_store
    from ..encoders import refuse_precision_mismatch
    from ..settings import Settings
    from . import create_app

    if not (1 <= args.port <= 65535):
        raise DressfinderError(f"--port must be between 1 and 65535, not {args.port}")
    try:
        settings = Settings.from_env(store=args.store, workers=args.threads, max_queue=args.max_queue,
                                     reload_interval=args.reload_interval)
    except ValueError as e:
        raise DressfinderError(str(e)) from None
    if not settings.store:
        raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE "
                               "(build one with: dressfinder index CATALOG --store DIR)")
    logging.getLogger("dressfinder").setLevel(logging.INFO)
    store = open_store(settings.store, milvus_token=settings.milvus_token)
    refuse_precision_mismatch(store.manifest["encoder"], args.precision or settings.precision,
                              where=f"store {settings.store}")
    app = create_app(store, settings)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    print(f"dressfinder: serving {settings.store} ({len(store)} products) at http://{shown}:{args.port}/"
          f"  (API docs: http://{shown}:{args.port}/docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False,
                limit_concurrency=max(100, 4 * (settings.max_queue + 8)), timeout_graceful_shutdown=10)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of the seed's ``app.py`` / ``api.py``: same options as ``dressfinder serve``."""
    parser = argparse.ArgumentParser(prog=prog or os.path.basename(sys.argv[0]),
                                     description="Serve the dressfinder web app and JSON API for a store.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DressfinderError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
