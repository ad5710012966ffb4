"""The reduced cocotb set (``montpipe.sim.plans.reduced``) on Icarus Verilog and Verilator.

Each (simulator, design) builds in its own directory under ``build/sim/``; the full-size
Paillier shapes run in ``make sim``. ``MONTPIPE_SIM_SEED`` replays other vectors.
"""

import os

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")
pytest.importorskip("cocotb_tools", reason="cocotb tests need pip install .[sim]")

from montpipe.sim import plans
from montpipe.sim.runner import (
    SimulatorMissingError,
    prepare,
    run,
    summarise,
)

SEED = int(os.environ.get("MONTPIPE_SIM_SEED", "2026"))
JOBS = plans.reduced(SEED)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_reduced_set(simulator, job):
    try:
        prepare(simulator)
    except SimulatorMissingError as exc:
        pytest.skip(f"{exc} — the cocotb tests on {simulator} did not run")
    summary = summarise(job, run(job, simulator))
    assert summary["operations_checked"] > 0, f"seed {SEED}: nothing was checked"
    for shape in summary["shapes"]:
        assert shape["model_equals_measured"], f"seed {SEED}: {shape}"
        assert 0 < shape["multiplier_utilisation"] <= 1, shape


def test_unknown_simulator_and_design_are_named():
    with pytest.raises(ValueError, match="unknown simulator 'questa'"):
        prepare("questa")
    from montpipe.sim.runner import _make_design

    with pytest.raises(ValueError, match="unknown design 'fifo'"):
        _make_design("fifo", {})


def test_missing_icarus_is_reported(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimulatorMissingError, match="apt-get install iverilog"):
        prepare("icarus")
