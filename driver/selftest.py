"""``python -m montpipe.driver.selftest --port PORT``: is this board's accelerator right?

The first thing to run on a freshly programmed board (``docs/bringup.md``), or with ``--sim``
on the simulated board (started here). Each check is a row of the table it prints; the exit
status is 0 only if every check passes (2: no device to test at all):

* ``caps``: the device answers CAPS in the protocol version this driver speaks, and its build
  parameters are the synthesis report's (``--report``; the committed one for ``--board``);
* ``known-answers``: exponentiations at every operand length the build takes (3 … max words,
  ``--lengths edges`` for the shortest and longest only), on the edge moduli of each length
  (the smallest and largest odd ones, a random one), with bases 0, 1, m − 1 and random and
  exponents 0, 1 and random (one of full length), each against gmpy2;
* ``paillier-1024`` (and ``paillier-2048`` where the build takes 4096-bit moduli): a key
  generated here, a message encrypted with the device's ``r^n mod n²`` and decrypted with its
  CRT halves, equal to the message and to the CPU's ciphertext for the same ``r``;
* ``comb``: fixed-base powers by the device's comb (its table written, two frames of jobs)
  at the widest modulus, exponents 0, all ones and random, against gmpy2 (information only on
  a build without a table);
* ``throughput``: a batch of exponentiations of the largest shape timed and set against the
  cycle model's projection at the build's clock (and the link's byte rate): at least
  ``--floor`` of it passes (information only on the simulated board, whose speed is the
  simulator's);
* ``link``: the device's counters (frames, bad CRCs, errors, timeouts) and the driver's
  (retries, stale responses) show a clean link.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gmpy2

from ..device.model import batch_cycles, exponent_digits, montgomery_words
from ..device.wire import PROTOCOL_VERSION, modexp_request, modexp_wire_bytes
from .backends.fpga import DeviceError, FPGABackend
from .transport import DEFAULT_BAUD

__all__ = ["Check", "main", "run_checks"]

REPORTS = Path(__file__).resolve().parents[1] / "reports" / "synth"


@dataclass
class Check:
    """One row of the table: ``passed`` None is information only (not counted)."""

    name: str
    passed: bool | None
    detail: str
    data: dict = field(default_factory=dict)


def _moduli(rng: random.Random, s: int, width: int) -> list[int]:
    """The smallest and largest odd moduli of ``s`` words, and a random one."""
    high = width * s - 2
    low = max(2, high - width + 1)
    return [(1 << (low - 1)) + 1, (1 << high) - 1,
            rng.getrandbits(high) | 1 | 1 << (high - 1)]


def check_caps(backend: FPGABackend, report: dict | None) -> Check:
    c = backend.caps
    got = {"version": c.version, "width": c.width, "n_max_bits": c.n_max_bits,
           "lanes": c.lanes, "window": c.window, "max_windows": c.max_windows,
           "contexts": c.contexts, "clock_khz": c.clock_khz, "table_entries": c.table_entries}
    problems = []
    if c.version != PROTOCOL_VERSION:
        problems.append(f"protocol {c.version}, driver speaks {PROTOCOL_VERSION}")
    if report is not None:
        want = report["configuration"]
        for key in ("width", "lanes", "window", "max_windows", "contexts", "n_max_bits",
                    "table_entries"):
            if want.get(key) is not None and want[key] != got[key]:
                problems.append(f"{key} {got[key]} where the report built {want[key]}")
        clock = round(report["pll"]["f_out_mhz"] * 1e3)
        if abs(c.clock_khz - clock) > 1:
            problems.append(f"clock {c.clock_khz} kHz where the report's PLL gives {clock}")
    detail = (f"protocol {c.version}, W={c.width}, N_MAX {c.n_max_bits} bits, {c.lanes} lanes, "
              f"window {c.window}, {c.max_windows} windows, {c.contexts} contexts, "
              f"{c.clock_khz} kHz, comb table {c.table_entries} entries")
    return Check("caps", not problems, "; ".join(problems) or detail, got)


def check_known_answers(backend: FPGABackend, rng: random.Random, lengths: str) -> Check:
    c = backend.caps
    max_words = montgomery_words(c.n_max_bits, c.width)
    words = range(3, max_words + 1) if lengths == "all" else sorted({3, max_words})
    max_e = c.max_windows * c.window
    done, wrong = 0, []
    for s in words:
        moduli = _moduli(rng, s, c.width)
        for k, m in enumerate(moduli):
            bases = [0, 1, m - 1, rng.randrange(2, m)]
            exps = [0, 1, rng.getrandbits(32) | 1 << 31]
            if s == words[0] and k == 1:      # the digit memory filled once: a full-length
                exps.append(rng.getrandbits(max_e) | 1 << (max_e - 1))   # exponent
            pairs = [(b, e) for b in bases for e in exps]
            got = backend.powmod([b for b, _ in pairs], [e for _, e in pairs], m)
            for (b, e), value in zip(pairs, got, strict=True):
                done += 1
                if value != int(gmpy2.powmod(b, e, m)):
                    wrong.append(f"{b:#x}^{e:#x} mod {m:#x} ({s} words)")
    fallbacks = backend.stats.extra.get("cpu_powmods", 0)
    detail = (f"{done} exponentiations at {len(words)} lengths ({words[0]}-{words[-1]} words, "
              f"moduli {_moduli(rng, words[0], c.width)[0].bit_length()}-"
              f"{_moduli(rng, words[-1], c.width)[1].bit_length()} bits) equal gmpy2's")
    if wrong:
        detail = f"{len(wrong)} of {done} wrong, first: {wrong[0]}"
    elif fallbacks:
        detail = f"{fallbacks} of {done} went to the CPU: the device did not take them"
    return Check("known-answers", not wrong and not fallbacks, detail,
                 {"checked": done, "wrong": len(wrong), "lengths_words": list(words)})


def check_paillier(backend: FPGABackend, key_bits: int, rng: random.Random) -> Check:
    from . import paillier

    name = f"paillier-{key_bits}"
    if backend.caps.n_max_bits < 2 * key_bits:
        return Check(name, None, f"the build takes moduli up to {backend.caps.n_max_bits} bits; "
                                 f"n² of a {key_bits}-bit key has {2 * key_bits}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        public, private = paillier.generate_paillier_keypair(n_length=key_bits, mode="standard")
    n, nsq = public.n, public.nsquare
    message, r = rng.randrange(n), rng.randrange(1, n)
    before = backend.stats.extra.get("cpu_powmods", 0)
    started = time.perf_counter()
    (obfuscator,) = backend.powmod([r], [n], nsq)
    ciphertext = (1 + message * n) % nsq * obfuscator % nsq
    p, q = private.p, private.q
    # the key was made for this check and is thrown away after it, so its secrets may cross
    # the link: that is what the check is of (a backend keeps secrets on the host by default)
    trusted, backend.trust_device_with_secrets = backend.trust_device_with_secrets, True
    try:
        (xp,) = backend.powmod([ciphertext % private.psquare], [p - 1], private.psquare,
                               secret=True)
        (xq,) = backend.powmod([ciphertext % private.qsquare], [q - 1], private.qsquare,
                               secret=True)
    finally:
        backend.trust_device_with_secrets = trusted
    mp = private.l_function(xp, p) * private.hp % p
    mq = private.l_function(xq, q) * private.hq % q
    decrypted = private.crt(mp, mq)
    seconds = time.perf_counter() - started
    on_cpu = backend.stats.extra.get("cpu_powmods", 0) - before
    problems = []
    if ciphertext != public.raw_encrypt(message, r_value=r):
        problems.append("the device's ciphertext differs from the CPU's for the same r")
    if decrypted != message:
        problems.append("decryption with the device's CRT halves lost the message")
    if on_cpu:
        problems.append(f"{on_cpu} of the 3 exponentiations went to the CPU")
    return Check(name, not problems, "; ".join(problems) or
                 f"r^n mod n² and both CRT halves on the device, round trip in {seconds:.2f} s",
                 {"seconds": round(seconds, 3)})


def check_comb(backend: FPGABackend, rng: random.Random) -> Check:
    """Fixed-base powers by the device's comb at the widest modulus: exponents 0, all ones and
    random ones over the comb's whole length, a lane's worth and more (two frames), against
    gmpy2."""
    c = backend.caps
    if not c.table_entries:
        return Check("comb", None, "the build has no comb table (fixed-base powers run as "
                                   "exponentiations)")
    m = _moduli(rng, montgomery_words(c.n_max_bits, c.width), c.width)[2]
    bits = min(m.bit_length() // 2, 1024)
    handle = backend.fixed_base(rng.randrange(2, m), m, bits)
    if getattr(handle, "shape", None) is None:
        return Check("comb", False, f"a {c.table_entries}-entry table gives no comb for "
                                    f"{bits}-bit exponents")
    exps = [0, (1 << bits) - 1] + [rng.getrandbits(bits) for _ in range(c.lanes)]
    before = backend.stats.extra.get("comb_powers", 0)
    started = time.perf_counter()
    got = handle.pow(exps)
    seconds = time.perf_counter() - started
    wrong = [e for e, v in zip(exps, got, strict=True) if v != pow(handle.base, e, m)]
    on_comb = backend.stats.extra.get("comb_powers", 0) - before
    shape = handle.shape
    detail = (f"{len(exps)} powers of {bits} bits mod a {m.bit_length()}-bit modulus by a "
              f"{shape.tables} x {1 << shape.bits}-entry comb ({shape.products} products each) "
              f"equal gmpy2's, {seconds:.2f} s")
    if wrong:
        detail = f"{len(wrong)} of {len(exps)} powers wrong"
    elif on_comb != len(exps):
        detail = f"{len(exps) - on_comb} of {len(exps)} powers did not run on the comb"
    return Check("comb", not wrong and on_comb == len(exps), detail,
                 {"checked": len(exps), "wrong": len(wrong), "seconds": round(seconds, 3)})


def check_throughput(backend: FPGABackend, clock_hz: float, baud: float, rng: random.Random,
                     floor: float, *, simulated: bool) -> Check:
    c = backend.caps
    # on the simulated board a small shape: its speed is the simulator's, not the device's
    bits = min(c.n_max_bits, 512 if simulated else 2048)
    s = montgomery_words(bits, c.width)
    m = rng.getrandbits(bits) | 1 | 1 << (bits - 1)
    e_bits = min(c.max_windows * c.window, bits // 2)
    count = 2 * c.lanes
    exps = [rng.getrandbits(e_bits) | 1 << (e_bits - 1) for _ in range(count)]
    bases = [rng.randrange(m) for _ in range(count)]
    backend.powmod(bases[:1], exps[:1], m)                # the context loaded, not timed
    started = time.perf_counter()
    backend.powmod(bases, exps, m)
    seconds = time.perf_counter() - started
    digits = [exponent_digits(e, c.window) for e in exps]
    engine = batch_cycles(c.lanes, s, c.window, digits, False, c.width) / clock_hz
    wire = sum(10 * modexp_wire_bytes(s, c.width, len(d)) for d in digits) / baud
    projected = max(engine, wire)
    ratio = projected / seconds if seconds else 0.0
    detail = (f"{count} × {bits}-bit modulus, {e_bits}-bit exponents: {count / seconds:.2f}/s "
              f"measured, {count / projected:.2f}/s projected at {clock_hz / 1e6:g} MHz and "
              f"{baud / 1e6:g} Mbaud ({100 * ratio:.0f} %)")
    data = {"measured_per_s": count / seconds, "projected_per_s": count / projected,
            "clock_hz": clock_hz, "ratio": ratio}
    if simulated:
        return Check("throughput", None, detail + "; simulated: the speed is the simulator's",
                     data)
    return Check("throughput", ratio >= floor, detail + f" (pass at {100 * floor:.0f} %)", data)


#: clock cycles the link takes at most to feed a byte of a request frame to a lane
FEED_CYCLES_PER_BYTE = 5


def busy_possible(caps, clock_hz: float, baud: float) -> bool:
    """Whether a request can find both of the link's request buffers full when the host keeps
    to the flow-control rule: two of the shortest exponentiation frames arriving while the
    longest is still being fed to a lane (``docs/protocol.md``). The device then answers BUSY
    and the host sends the frame again; on a link this fast that is no fault."""
    words = montgomery_words(caps.n_max_bits, caps.width)
    shortest = len(modexp_request(0, 0, 0, [0], width=caps.width, words=3))
    longest = len(modexp_request(0, 0, 0, [0] * caps.max_windows, width=caps.width,
                                 words=words))
    return 2 * shortest * 10 * clock_hz / baud < FEED_CYCLES_PER_BYTE * longest


def check_link(backend: FPGABackend, *, simulated: bool, clock_hz: float,
               baud: float) -> Check:
    status = backend.link_status()
    extra = backend.stats.extra
    causes = extra.get("retry_causes", {})
    # the simulated board delivers a byte every 8 cycles, and a fast UART (ECPIX-5 at
    # 12 Mbaud) one every ~70: a long frame still being fed to a lane while two short ones
    # arrive fills both request buffers, and the third is answered BUSY and sent again
    # (docs/bringup.md); at 3 Mbaud the two short frames take longer than the feed
    excused = causes.get("BUSY", 0) if simulated or busy_possible(backend.caps, clock_hz, baud) \
        else 0
    driver = {"retries": extra.get("retries", 0) - excused, "stale_responses":
              extra.get("stale_responses", 0), "timeouts": extra.get("timeouts", 0)}
    device = {**status, "errors": status["errors"] - excused}
    problems = [f"{k} {v}" for k, v in {**device, **driver}.items()
                if k not in ("frames",) and v]
    causes = ", ".join(f"{k} {v}" for k, v in causes.items())
    detail = (f"device: {status['frames']} frames, {status['bad_crc']} bad CRCs, "
              f"{status['errors']} errors, {status['timeouts']} timeouts; driver: "
              f"{extra.get('retries', 0)} retries{f' ({causes})' if causes else ''}, "
              f"{driver['stale_responses']} stale responses")
    return Check("link", not problems, detail if not problems else
                 "unclean link (" + ", ".join(problems) + "): " + detail, {**status, **driver})


def run_checks(backend: FPGABackend, *, report: dict | None, lengths: str, seed: int,
               floor: float, simulated: bool, baud: float) -> list[Check]:
    """Every check in order; a check that raises is a failed row naming the error."""
    rng = random.Random(seed)
    clock_hz = backend.caps.clock_khz * 1e3
    if report is not None and report.get("fmax_mhz"):
        clock_hz = min(report["fmax_mhz"], report["target_mhz"]) * 1e6
    steps = [("caps", lambda: check_caps(backend, report)),
             ("known-answers", lambda: check_known_answers(backend, rng, lengths)),
             ("paillier-1024", lambda: check_paillier(backend, 1024, rng))]
    if backend.caps.n_max_bits >= 4096:
        steps.append(("paillier-2048", lambda: check_paillier(backend, 2048, rng)))
    steps.append(("comb", lambda: check_comb(backend, rng)))
    steps += [("throughput", lambda: check_throughput(backend, clock_hz, baud, rng, floor,
                                                      simulated=simulated)),
              ("link", lambda: check_link(backend, simulated=simulated, clock_hz=clock_hz,
                                          baud=baud))]
    checks = []
    for name, step in steps:
        try:
            checks.append(step())
        except (DeviceError, OSError, ValueError) as exc:
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
    return checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail"]
    for c in checks:
        result = "PASS" if c.passed else "info" if c.passed is None else "FAIL"
        lines.append(f"{c.name:<{width}}  {result:<6}  {c.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montpipe.driver.selftest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="the board's serial port (/dev/ttyUSB0, COM3, ...)")
    where.add_argument("--sim", action="store_true",
                       help="start a simulated board (Verilator) and test that")
    ap.add_argument("--board", default="ulx3s-85f",
                    help="the board whose committed synthesis report the build is checked "
                         "against (default %(default)s; ignored with --report or --sim)")
    ap.add_argument("--report", type=Path, help="the build's synthesis report.json")
    ap.add_argument("--baud", type=int,
                    help="the link's rate (default: the synthesis report's, else 3 000 000)")
    ap.add_argument("--lengths", choices=["all", "edges"],
                    help="operand lengths for the known answers (default: all on a board, "
                         "edges on the simulated one)")
    ap.add_argument("--floor", type=float, default=0.8,
                    help="throughput that passes, as a fraction of the projection")
    ap.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 31))
    ap.add_argument("--json", type=Path, help="also write the table here as JSON")
    args = ap.parse_args(argv)

    report = None
    if args.port:
        path = args.report or REPORTS / f"{args.board}.json"
        if path.exists():
            report = json.loads(path.read_text())
        elif args.report:
            print(f"selftest: no synthesis report at {path}", file=sys.stderr)
            return 2
    if args.baud is None:
        args.baud = (report or {}).get("configuration", {}).get("baud", DEFAULT_BAUD)
    if args.baud <= 0:
        print(f"selftest: --baud must be a positive number of bits a second, not {args.baud}",
              file=sys.stderr)
        return 2
    lengths = args.lengths or ("edges" if args.sim else "all")
    started = time.perf_counter()
    try:
        if args.sim:
            from .backends.sim import SimBackend

            backend = SimBackend(open_timeout=30)
        else:
            backend = FPGABackend(args.port, baudrate=args.baud)
    except (DeviceError, RuntimeError) as exc:
        print(f"selftest: {exc}", file=sys.stderr)
        return 2
    try:
        checks = run_checks(backend, report=report, lengths=lengths, seed=args.seed,
                            floor=args.floor, simulated=args.sim, baud=args.baud)
    finally:
        backend.close()
    passed = all(c.passed is not False for c in checks)
    print(table(checks))
    print(f"selftest {'PASSED' if passed else 'FAILED'} on "
          f"{'the simulated board' if args.sim else args.port} in "
          f"{time.perf_counter() - started:.0f} s (seed {args.seed})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": "simulated board" if args.sim else args.port, "seed": args.seed,
            "passed": passed, "report": str(args.report or "") or None,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail, **c.data}
                       for c in checks]}, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
