from instructgpt.cli import main

raise SystemExit(main())
