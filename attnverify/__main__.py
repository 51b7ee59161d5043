"""python -m attnverify: the command line (attnverify.cli)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while numpy is still loading: the same one line as later
    print("attnverify: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
