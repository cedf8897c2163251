"""Train with texture_nets: see `python train.py --help`."""
import sys

from texture_nets.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
