"""`python -m trainer` runs the `shelfwatch` command line (the trainer's commands included)."""

import sys

from edge.cli import main

sys.exit(main())
