"""Where every benchmark's figures go: a JSON record and a Markdown table under ``build/bench/``,
and with ``--update-readme`` the README's generated table of the same name."""

from __future__ import annotations

import json
from pathlib import Path

from .._revision import ROOT

__all__ = ["README", "publish", "update_readme"]

README = ROOT / "README.md"


def publish(out: str | Path, name: str, record: dict, md: str, readme: bool) -> None:
    """Write ``<out>/<name>.json`` and ``<name>.md``, print the table, and with ``readme``
    replace the README's ``bench:<name>`` section with it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    (out / f"{name}.md").write_text(md)
    print("\n" + md)
    if readme:
        update_readme(md, README, name)
        print("README.md table updated")


def update_readme(md: str, readme: Path, name: str = "cpu") -> None:
    """Replace the README text between ``<!-- bench:NAME:start -->`` and ``...:end -->``."""
    text = readme.read_text()
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: the {start} / {end} markers are missing")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{md}{end}{tail}")
