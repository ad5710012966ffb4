"""Which source a report was made from: the repository's revision, for every generated report."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ROOT", "git_revision"]

#: the repository root, which is the ``montpipe`` package's folder in a checkout
ROOT = Path(__file__).resolve().parent


def git_revision(watch: Sequence[str] = ()) -> str:
    """``HEAD``'s short hash; with ``+modified`` when any of the ``watch`` paths (relative to the
    repository root) differ from it. ``unknown`` outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=ROOT, timeout=10).stdout.strip()
        changed = watch and subprocess.run(
            ["git", "status", "--porcelain", "--", *watch], capture_output=True, text=True,
            cwd=ROOT, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+modified" if changed else "")) if rev else "unknown"
