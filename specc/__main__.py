from specc.entry import main

raise SystemExit(main())
