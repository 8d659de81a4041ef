"""``python -m s2i ...``: the same as the ``s2i`` console script (:mod:`s2i.cli`)."""
import sys

from .cli import main

sys.exit(main())
