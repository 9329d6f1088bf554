from acula_edge.reports.cli import main

raise SystemExit(main())
