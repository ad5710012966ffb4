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
    exclusive,
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


def test_the_readme_table_of_a_full_run_lists_the_full_size_shapes():
    from montpipe.sim.__main__ import full_size_table, main

    report = {"command": "python -m montpipe.sim --sim verilator --set full --seed 7",
              "version": "Verilator 5.048", "machine": "x86_64", "git_revision": "abc1234",
              "operations_checked": 1266, "jobs": [
                  {"job": "core-paillier-full", "shapes": [
                      {"shape": "modexp 4096/2048", "words": 257, "measured_cycles": 168_845_411,
                       "model_equals_measured": True, "multiplier_utilisation": 0.994},
                      {"shape": "crt half", "words": 129, "measured_cycles": [5, 6],
                       "model_equals_measured": False, "multiplier_utilisation": 0.9}]},
                  {"job": "montmul-w16", "shapes": [
                      {"shape": "small", "words": 8, "measured_cycles": 300,
                       "model_equals_measured": True, "multiplier_utilisation": 0.5}]}]}
    lines = full_size_table(report).splitlines()
    assert "--seed 7 --update-readme" in lines[0] and "revision abc1234" in lines[0]
    assert lines[4] == \
        "| core-paillier-full | modexp 4096/2048 | 257 | 168,845,411 | yes | 99.4 % |"
    assert lines[5] == "| core-paillier-full | crt half | 129 | 5, 6 | NO | 90.0 % |"
    assert len(lines) == 6                       # the small shape is not full size
    with pytest.raises(SystemExit):
        main(["--sim", "icarus", "--update-readme"])


_HOLD = """
import sys, time
from montpipe.sim.runner import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    print(time.monotonic(), flush=True)
"""


def test_a_build_directory_is_held_by_one_process_at_a_time(tmp_path):
    """Parallel make-test workers share build/sim: while one process holds a directory
    another waits for it, and within one thread the hold is re-entrant."""
    import signal
    import subprocess
    import sys
    import time

    def waited_for_itself(signum, frame):
        raise TimeoutError("exclusive() waited for its own thread's hold")

    other = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), "1.0"],
                             stdout=subprocess.PIPE, text=True)
    previous = signal.signal(signal.SIGALRM, waited_for_itself)
    try:
        assert other.stdout.readline().strip() == "held"
        with exclusive(tmp_path):
            got_it = time.monotonic()
            signal.alarm(10)                # a lock that is not re-entrant fails, not hangs
            with exclusive(tmp_path):
                pass
            signal.alarm(0)
        released = float(other.stdout.readline())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        other.wait(timeout=30)
    assert got_it >= released


def test_threads_of_one_process_wait_for_each_other(tmp_path):
    import threading
    import time

    times = {}
    holding = threading.Event()

    def first():
        with exclusive(tmp_path):
            holding.set()
            time.sleep(0.5)
            times["released"] = time.monotonic()

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    with exclusive(tmp_path):
        times["got"] = time.monotonic()
    thread.join(10)
    assert times["got"] >= times["released"]
