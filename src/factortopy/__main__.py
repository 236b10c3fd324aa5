from factortopy.cli import main

raise SystemExit(main())
