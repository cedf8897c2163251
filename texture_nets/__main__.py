"""`python -m texture_nets COMMAND ...`: the same as the `texture-nets` console script."""

import sys

from texture_nets.cli import main

sys.exit(main())
