"""``python -m backup``: the command line (``backup.cli``)."""

import sys

from backup.cli import main

sys.exit(main())
