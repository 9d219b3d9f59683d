"""``python -m hwsnn``: the command line (``hwsnn.tools.cli``)."""

import sys

from .tools.cli import main

sys.exit(main())
