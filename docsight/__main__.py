from docsight.cli import main

raise SystemExit(main())
