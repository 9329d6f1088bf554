from acula_edge.data.cli import main

raise SystemExit(main())
