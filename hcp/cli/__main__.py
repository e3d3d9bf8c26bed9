"""``python -m hcp.cli``: the same as the ``hcp`` console script."""

import sys

from hcp.cli import main

sys.exit(main())
