"""The ``MULT18X18D`` model (``sim/mult18x18d.v``) against the ECP5 sysDSP documentation, point
by point (``montpipe.sim.cocotb_mult18x18d``): register stages with their own clock, clock
enable and reset (synchronous and asynchronous), the number of stages between an input and
``P``, signedness, the A/B/C/shift-in sources and the cascade outputs."""

import random

import pytest

pytest.importorskip("cocotb", reason="the cocotb tests need pip install .[sim]")

from montpipe.sim import gate, runner

SEED = random.SystemRandom().randrange(1 << 31)


def _simulator():
    for simulator in ("icarus", "verilator"):
        try:
            runner.prepare(simulator)
            return simulator
        except runner.SimulatorMissingError:
            continue
    pytest.skip("neither Icarus Verilog nor Verilator is installed")


def test_model_follows_the_sysdsp_guide(tmp_path):
    simulator = _simulator()
    harness = tmp_path / "mult18x18d_check.v"
    harness.write_text(gate.mult18x18d_harness(gate.MULT18X18D_CONFIGS))
    plan = {"configs": gate.MULT18X18D_CONFIGS, "seed": SEED, "steps": 600}
    checked = runner.run_sources(
        [harness, runner.MULT18X18D_MODEL], "mult18x18d_check",
        "montpipe.sim.cocotb_mult18x18d", ["mult18x18d_against_the_guide"], plan, simulator,
        tmp_path / "run", name=f"mult18x18d (seed {SEED})")
    test = checked["tests"]["mult18x18d_against_the_guide"]
    assert test["operations"] >= 2 * 600 * len(gate.MULT18X18D_CONFIGS)


def test_the_lanes_configuration_is_among_those_checked():
    """The lanes instantiate the block with input and output registers on CLK0 (two cycles
    from inputs to P): that configuration is one the test above checks."""
    import re

    source = (runner.MULT18X18D_MODEL.parent.parent / "hdl" / "montmul.py").read_text()
    instance = dict(re.findall(r'p_(\w+)="(\w+)"', source))
    lane = gate.MULT18X18D_CONFIGS[1]
    assert {k: v for k, v in instance.items() if v != "NONE" and not k.endswith(("_CE", "_RST"))
            and k not in ("CAS_MATCH_REG", "MULT_BYPASS")} == lane
