"""Seed name: train the autoencoder (or fine-tune an encoder). Same as `dressfinder train`."""
import sys

from dressfinder.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
