"""``python -m seqagents.cli``: the ``seqagents`` command."""

import sys

from seqagents.cli import main

sys.exit(main())
