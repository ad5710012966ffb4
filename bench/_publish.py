"""Where every benchmark's figures go: a JSON record and a Markdown table under ``build/bench/``,
and with ``--update-readme`` the README's generated table of the same name."""

from __future__ import annotations

import json
from pathlib import Path

from .._provenance import update_readme

__all__ = ["publish"]


def publish(out: str | Path, name: str, record: dict, md: str, readme: bool) -> None:
    """Write ``<out>/<name>.json`` and ``<name>.md``, print the table, and with ``readme``
    replace the README's ``bench:<name>`` section with it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    (out / f"{name}.md").write_text(md)
    print("\n" + md)
    if readme:
        update_readme(md, name)
        print("README.md table updated")
