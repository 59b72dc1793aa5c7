"""`python -m edge` is the `kiosk` command."""

import sys

from edge.cli import main

sys.exit(main())
