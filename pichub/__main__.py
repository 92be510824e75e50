"""`python -m pichub` and the zipapp's entry point."""

from pichub.cli import main

raise SystemExit(main())
