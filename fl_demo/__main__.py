"""``python -m montpipe.fl_demo [lr|secureboost] [options]``: vertical logistic regression
(:mod:`.run`, the default) or vertical SecureBoost (:mod:`.sb_run`)."""

import sys

from . import run, sb_run

args = sys.argv[1:]
if args and args[0] == "secureboost":
    raise SystemExit(sb_run.main(args[1:]))
raise SystemExit(run.main(args[1:] if args and args[0] == "lr" else args))
