"""Throughput of the ``sim`` backend: the ``fpga`` backend's host code over the simulated board.

``python -m montpipe.bench.sim`` (part of ``make bench``) sends one batch per shape (two
requests per lane) through :class:`~montpipe.driver.backends.sim.SimBackend` — every result
computed by the Verilator model of the link and the lanes, every one checked against gmpy2
here — and reports exponentiations per second of wall time, simulated cycles per second, and
the cycle model's count for the same batch (the simulation's cycles include the link's).
Writes ``build/bench/sim.json`` and ``sim.md``.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import gmpy2

from ..device.model import batch_cycles, exponent_digits, montgomery_words
from ..driver.backends.sim import SimBackend
from ..sim.board import SIM_CONFIG
from ._publish import publish

#: (what it is at 1024-bit Paillier keys, modulus bits, exponent bits)
SHAPES = [
    ("512-bit modulus, 512-bit exponent", 512, 512),
    ("CRT half: 1024-bit modulus (p²), 512-bit exponent", 1024, 512),
    ("DJN encryption: 2048-bit modulus (n²), 512-bit exponent", 2048, 512),
    ("standard encryption: 2048-bit modulus (n²), 1024-bit exponent", 2048, 1024),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=SIM_CONFIG.lanes)
    ap.add_argument("--shapes", type=int, default=len(SHAPES), help="the first N shapes only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)

    config = replace(SIM_CONFIG, lanes=args.lanes)
    rng = random.Random(args.seed)
    rows = []
    for label, mod_bits, exp_bits in SHAPES[:args.shapes]:
        backend = SimBackend(config)           # a fresh board: its cycle count is this shape's
        try:
            m = rng.getrandbits(mod_bits) | 1 | 1 << (mod_bits - 1)
            count = 2 * config.lanes
            bases = [rng.randrange(m) for _ in range(count)]
            exps = [rng.getrandbits(exp_bits) | 1 << (exp_bits - 1) for _ in range(count)]
            backend.powmod([2], [3], m)        # the context, outside the timing
            started = time.perf_counter()
            got = backend.powmod(bases, exps, m)
            wall = time.perf_counter() - started
        finally:
            backend.close()
        if got != [int(gmpy2.powmod(b, e, m)) for b, e in zip(bases, exps, strict=True)]:
            raise SystemExit(f"{label}: the simulated board's results differ from gmpy2's")
        stats = backend.stats.as_dict()
        s = montgomery_words(mod_bits, config.width)
        model = batch_cycles(config.lanes, s, config.window,
                             [exponent_digits(e, config.window) for e in exps], False,
                             config.width)
        rows.append({"shape": label, "modulus_bits": mod_bits, "exponent_bits": exp_bits,
                     "batch": count, "wall_s": round(wall, 3),
                     "ops_per_s": round(count / wall, 4),
                     "simulated_cycles": stats["simulated_cycles"],
                     "cycles_per_s": round(stats["simulated_cycles"] / wall),
                     "model_cycles": model, "retries": stats["retries"]})
    command = "python -m montpipe.bench.sim" + (f" --lanes {args.lanes}"
                                                if args.lanes != SIM_CONFIG.lanes else "")
    md = (f"Measured by `{command}` (simulated board: {config.lanes} lanes, W = "
          f"{config.width}, window {config.window}, N_MAX {config.n_max_bits} bits; Verilator "
          f"behind a pseudo-terminal, the fpga backend's host code; one batch of "
          f"{2 * config.lanes} per shape, every result checked against gmpy2).\n\n"
          "| shape | exponentiations/s (wall) | simulated cycles/s | cycles simulated | "
          "cycle model, device alone |\n|---|---|---|---|---|\n")
    for r in rows:
        md += (f"| {r['shape']} | {r['ops_per_s']:.3g} | {r['cycles_per_s'] / 1e6:.2f} M | "
               f"{r['simulated_cycles']:,} | {r['model_cycles']:,} |\n")
    publish(args.out, "sim", {"command": command, "config": config.__dict__, "rows": rows},
            md, args.update_readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
