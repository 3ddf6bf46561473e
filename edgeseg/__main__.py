"""`python -m edgeseg`: the edgeseg command."""

import sys

from .app.cli import main

sys.exit(main())
