"""``python -m brittle.cli`` runs the command line."""

from brittle.cli import main

main()
