"""Plumbing shared by the cocotb test modules: the plan the runner wrote, and the records they
write back for the report (both JSON files named by environment variables)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cocotb.simtime import get_sim_time

from .tb import PERIOD_NS

_records: list[dict] = []
_operations = [0]
_started = time.perf_counter()


def plan() -> dict:
    return json.loads(Path(os.environ["MONTPIPE_SIM_PLAN"]).read_text())


def as_int(text: str | int) -> int:
    return int(text, 16) if isinstance(text, str) else text


def record(**fields) -> None:
    """A cycle-checked operation or batch: shape, measured and model cycles, products, words,
    lanes."""
    _records.append(fields)


def checked(count: int = 1) -> None:
    """``count`` more results checked against gmpy2 (or an error status against the spec)."""
    _operations[0] += count


def flush(test: str) -> None:
    """Write what this simulator process has checked so far, with its speed."""
    out = Path(os.environ["MONTPIPE_SIM_OUT"])
    data = json.loads(out.read_text()) if out.exists() else {"tests": {}}
    data["tests"][test] = {
        "records": list(_records),
        "operations": _operations[0],
        "sim_cycles": int(get_sim_time(unit="ns")) // PERIOD_NS,
        "wall_s": time.perf_counter() - _started,
    }
    out.write_text(json.dumps(data))
