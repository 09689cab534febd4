"""``python -m holysheep_cli``: the ``holysheep`` command."""

from . import main

main()
