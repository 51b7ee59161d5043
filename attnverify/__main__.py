"""python -m attnverify: the command line (attnverify.cli)."""

import sys

from .cli import main

sys.exit(main())
