"""``python -m s2i ...``: the same as the ``s2i`` console script (:mod:`s2i.app.cli`)."""

import sys

from s2i.app.cli import main

sys.exit(main())
