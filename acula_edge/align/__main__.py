"""``python -m acula_edge.align``."""

from acula_edge.align.cli import main

raise SystemExit(main())
