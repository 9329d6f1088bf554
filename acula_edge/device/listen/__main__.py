"""``python -m acula_edge.device.listen``: the screening CLI with the device's own backends only."""

from acula_edge.device.listen.cli import main

raise SystemExit(main())
