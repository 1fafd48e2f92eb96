from pixcam.cli import main

raise SystemExit(main())
