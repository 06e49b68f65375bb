"""`python -m edge` runs the `shelfwatch` command line."""

import sys

from edge.cli import main

sys.exit(main())
