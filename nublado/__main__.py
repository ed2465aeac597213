"""``python -m nublado`` runs the ``nublado`` command."""

from .cli import main

main()
