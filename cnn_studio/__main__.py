from cnn_studio.app import main

raise SystemExit(main())
