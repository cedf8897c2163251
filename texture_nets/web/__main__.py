"""`python -m texture_nets.web`: the same as `texture-nets serve`."""

import sys

from texture_nets.web.serve import main

sys.exit(main())
