"""Seed name: serve the dressfinder web app and JSON API (same as `dressfinder serve`).

    python app.py --store STORE [--host 127.0.0.1] [--port 2000]     (or set DRESSFINDER_STORE)
"""

import sys

from dressfinder.web.command import main

if __name__ == "__main__":
    sys.exit(main(prog="app.py"))
