"""``python -m tickonce``: the ``tickonce`` command."""

from tickonce._cli import main

main()
