"""``python -m montpipe.fl_demo``: see :mod:`montpipe.fl_demo.run`."""

from .run import main

raise SystemExit(main())
