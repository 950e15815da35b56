"""``python -m tools.pr_comment``: the workflow's commands (``tools.pr_comment.cli``)."""

import sys

from tools.pr_comment.cli import main

if __name__ == "__main__":
    sys.exit(main())
