"""Where a generated report comes from (the repository's revision) and where its table goes (the
README's generated sections)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["README", "ROOT", "git_revision", "update_readme"]

#: the repository root, which is the ``montpipe`` package's folder in a checkout
ROOT = Path(__file__).resolve().parent
README = ROOT / "README.md"


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


def update_readme(md: str, name: str, readme: Path = README) -> None:
    """Replace the README text between ``<!-- bench:NAME:start -->`` and ``...:end -->``."""
    text = readme.read_text()
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: the {start} / {end} markers are missing")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{md}{end}{tail}")
