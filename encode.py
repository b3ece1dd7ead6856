"""Seed name: encode a catalogue into a searchable store. Same as `dressfinder index`."""
import sys

from dressfinder.cli import main

if __name__ == "__main__":
    sys.exit(main(["index", *sys.argv[1:]]))
