"""``python -m nublado`` runs the ``nublado`` command."""

import sys

from .cli import main

sys.exit(main())
