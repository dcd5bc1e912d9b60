"""``python -m benchmarks``: see :mod:`benchmarks.runner` and README.rst."""

import sys

from benchmarks.runner import main

sys.exit(main())
