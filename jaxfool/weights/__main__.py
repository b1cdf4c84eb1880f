"""``python -m jaxfool.weights``: see :mod:`jaxfool.weights.cli`."""

import sys

from jaxfool.weights.cli import main

sys.exit(main())
