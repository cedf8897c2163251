"""Stylize with texture_nets: see `python stylize.py --help`."""
import sys

from texture_nets.cli import stylize_main

if __name__ == "__main__":
    sys.exit(stylize_main())
