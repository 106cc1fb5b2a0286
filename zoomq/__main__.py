"""`python -m zoomq ...` is the `zoomq` command."""

import sys

from zoomq.cli import main

sys.exit(main())
