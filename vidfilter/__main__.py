"""``python -m vidfilter`` runs the command-line interface."""

from vidfilter.cli import main

raise SystemExit(main())
