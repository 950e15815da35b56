"""``python -m tools.edge STACK --port PORT --upstream HOST:PORT`` (see ``tools.edge.run``)."""

import sys

from tools.edge.run import main

sys.exit(main())
