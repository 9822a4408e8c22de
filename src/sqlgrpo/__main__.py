"""``python -m sqlgrpo`` runs the CLI."""

import sys

from sqlgrpo.cli import main

sys.exit(main())
