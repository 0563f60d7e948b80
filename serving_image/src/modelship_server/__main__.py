from modelship_server.cli import main

raise SystemExit(main())
