"""``python -m seqagents``: the same as the ``seqagents`` command."""

import sys

from seqagents.cli import main

sys.exit(main())
