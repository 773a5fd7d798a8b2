"""``python -m vidfilter.cli`` runs the command-line interface."""

from vidfilter.cli import main

raise SystemExit(main())
