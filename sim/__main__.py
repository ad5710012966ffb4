"""``python -m montpipe.sim``: run the cocotb tests, write ``build/sim/<simulator>/report.json``.

``make sim`` runs the full set on both simulators; ``SIM=icarus`` or ``SIM=verilator`` picks
one; ``--level gate`` (``make sim LEVEL=gate``) simulates the synthesised and routed netlists
instead (``montpipe.sim.gate``, report ``build/sim/gate/report.json``); ``WAVES=1`` writes
waveforms (``dump.vcd`` / ``*.fst`` in each job's directory), and
``--seed`` (or ``MONTPIPE_SIM_SEED``) replays a run's vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

from .._provenance import git_revision, update_readme
from . import plans
from .runner import (
    SIMULATORS,
    SimulationFailedError,
    SimulatorMissingError,
    prepare,
    run,
    summarise,
)


def write_report(path: Path, simulator: str, version: str, which: str, seed: int,
                 jobs: list[dict], command: str, failures: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "simulator": simulator, "version": version, "set": which, "seed": seed,
        "command": command, "git_revision": git_revision(), "machine": platform.machine(),
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "passed": not failures, "failures": failures,
        "operations_checked": sum(j["operations_checked"] for j in jobs),
        "all_cycles_equal_model": all(s["model_equals_measured"] for j in jobs
                                      for s in j["shapes"]),
        "jobs": jobs,
    }, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m montpipe.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", default=os.environ.get("SIM") or "all",
                        choices=[*SIMULATORS, "all"], help="simulator (default: both)")
    parser.add_argument("--set", dest="which", default="full", choices=["reduced", "full"],
                        help="reduced: the make-test set; full: make sim (default)")
    parser.add_argument("--seed", type=int,
                        default=int(os.environ.get("MONTPIPE_SIM_SEED") or
                                    random.SystemRandom().randrange(1 << 31)))
    parser.add_argument("--waves", action="store_true",
                        default=os.environ.get("WAVES", "") not in ("", "0"))
    parser.add_argument("--only", help="run only jobs whose name contains this")
    parser.add_argument("--out", type=Path, default=Path("build/sim"))
    parser.add_argument("--update-readme", action="store_true",
                        help="with --sim verilator --set full: copy the full-size shapes' table "
                             "into the README")
    parser.add_argument("--level", choices=["rtl", "gate"], default="rtl",
                        help="rtl: the Verilog Amaranth writes (default); gate: the ECP5 "
                             "netlists synth_ecp5 and nextpnr make, with the cell models")
    parser.add_argument("--shapes", default="crt,n2",
                        help="gate level: the reference build's shapes of a 2048-bit key "
                             "(crt: a CRT half; n2: the 4096-bit n² with short exponents; "
                             "encrypt: r^n mod n², hours)")
    args = parser.parse_args(argv)
    if args.level == "gate":
        from . import gate

        return gate.main(args)
    if args.update_readme and (args.sim != "verilator" or args.which != "full"):
        parser.error("--update-readme takes the full set on Verilator (--sim verilator "
                     "--set full), the only run with the full-size shapes")

    simulators = SIMULATORS if args.sim == "all" else (args.sim,)
    jobs = (plans.full if args.which == "full" else plans.reduced)(args.seed)
    if args.only:
        jobs = [j for j in jobs if args.only in j.name]
    command = " ".join(["python -m montpipe.sim", f"--sim {args.sim}", f"--set {args.which}",
                        f"--seed {args.seed}"] + (["--waves"] if args.waves else []) +
                       ([f"--only {args.only}"] if args.only else []))
    print(f"montpipe.sim: seed {args.seed} (replay with --seed {args.seed})", flush=True)
    status = 0
    for simulator in simulators:
        try:
            version = prepare(simulator)
        except SimulatorMissingError as exc:
            print(f"montpipe.sim: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"== {version}", flush=True)
        done, failures = [], []
        for job in jobs:
            if simulator not in job.simulators:
                continue
            started = time.perf_counter()
            try:
                summary = summarise(job, run(job, simulator, root=args.out, waves=args.waves))
            except SimulationFailedError as exc:
                failures.append(str(exc))
                print(f"  FAIL {exc}", flush=True)
                status = 1
                continue
            done.append(summary)
            print(f"  ok   {job.name}: {summary['operations_checked']} results checked, "
                  f"{summary['simulated_cycles']:,} cycles at "
                  f"{summary['cycles_per_second'] or 0:,.0f}/s, build {summary['build_s']:.0f} s,"
                  f" {time.perf_counter() - started:.0f} s in all", flush=True)
            for shape in summary["shapes"]:
                if shape["words"] > 60 or "batch" in shape["shape"]:
                    cycles = shape["measured_cycles"]
                    cycles = f"{cycles:,}" if isinstance(cycles, int) else str(cycles)
                    print(f"       {shape['shape']}: {cycles} cycles "
                          f"(model {'=' if shape['model_equals_measured'] else '!='}), "
                          f"multipliers {100 * shape['multiplier_utilisation']:.1f} % busy")
        report = args.out / simulator / "report.json"
        write_report(report, simulator, version, args.which, args.seed, done, command, failures)
        print(f"  wrote {report}")
        if args.update_readme and not failures:
            update_readme(full_size_table(json.loads(report.read_text())), "sim-full")
            print("  README.md table updated")
    return status


def full_size_table(report: dict) -> str:
    """The full-size shapes of a run (more than 60 words: the Paillier shapes and 4096-bit
    products) as Markdown, with the command and revision that measured them."""
    version = report["version"].split(" (")[0]          # without the install path
    rows = [f"Measured by `{report['command']} --update-readme` ({version}, "
            f"{report['machine']}, revision {report['git_revision']}; "
            f"{report['operations_checked']:,} results checked against gmpy2).", "",
            "| job | shape | words | cycles measured | = model | multipliers busy |",
            "|---|---|---|---|---|---|"]
    for job in report["jobs"]:
        for shape in job["shapes"]:
            if shape["words"] <= 60:
                continue
            cycles = shape["measured_cycles"]
            cycles = f"{cycles:,}" if isinstance(cycles, int) else \
                ", ".join(f"{c:,}" for c in cycles)
            rows.append(f"| {job['job']} | {shape['shape']} | {shape['words']} | {cycles} | "
                        f"{'yes' if shape['model_equals_measured'] else 'NO'} | "
                        f"{100 * shape['multiplier_utilisation']:.1f} % |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
