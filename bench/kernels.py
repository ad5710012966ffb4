"""Kernel benchmark: the CPU backend's C kernels with and without AVX-512 IFMA, one thread.

``python -m montpipe.bench.kernels`` (part of ``make bench``) times, at the shapes a 2048-bit
Paillier key produces, each kernel on GMP alone and on the 8-lane IFMA path, interleaved, and
writes ``build/bench/kernels.json`` and ``kernels.md`` (the README's kernel figures come from
it). On a CPU without IFMA only the GMP column is measured.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

from ..driver.backends import cpu
from ._publish import publish


def _time(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)
    if not cpu.native_available():
        print("kernel benchmark skipped: the GMP kernels were not built")
        return 0
    native = cpu._native
    had_ifma = cpu.ifma_active()
    n2 = secrets.randbits(4096) | 1 | (1 << 4095)          # n^2 of a 2048-bit key
    p2 = secrets.randbits(2048) | 1 | (1 << 2047)          # p^2 of a 2048-bit key
    batch = 64
    b2 = [secrets.randbelow(p2) for _ in range(batch)]
    b4 = [secrets.randbelow(n2) for _ in range(batch)]
    e1024 = secrets.randbits(1024)
    short = [secrets.randbits(56) for _ in range(batch)]
    window = cpu.fixed_base_window(1024, n2, 64 << 20)
    t0 = time.perf_counter()
    table = native.FixedBase(secrets.randbelow(n2), n2, 1024, window)
    table_seconds = time.perf_counter() - t0
    ct_window = cpu.constant_time_window(1024, n2, 64 << 20)
    ct_table = native.FixedBase(secrets.randbelow(n2), n2, 1024, ct_window, True)
    alphas = [secrets.randbits(1024) for _ in range(batch)]
    rows = [[secrets.randbits(56) * (-1) ** secrets.randbits(1) for _ in range(569)]
            for _ in range(30)]
    cts = [secrets.randbelow(n2) for _ in range(569)]
    cases = {
        "4096-bit mulmod (per element, batch of 1024; no IFMA path)":
            (lambda: native.mulmod(b4 * 16, b4 * 16, n2), batch * 16),
        "CRT decryption half: 2048-bit modulus, 1024-bit exponent (per base)":
            (lambda: native.powmod(b2, e1024, p2), batch),
        "the same, constant time (per base)":
            (lambda: native.powmod(b2, e1024, p2, True), batch),
        f"DJN fixed-base power, 4096-bit modulus, w = {window} (per power)":
            (lambda: table.pow(alphas), batch),
        f"the same, constant time (MONTPIPE_CONSTANT_TIME=1; no IFMA path), w = {ct_window} "
        "(per power)":
            (lambda: ct_table.pow(alphas), batch),
        "per-element 56-bit exponents, 4096-bit modulus (per power)":
            (lambda: native.powmod(b4, short, n2), batch),
        "569×30 multi-exponentiation, 56-bit signed exponents (whole)":
            (lambda: native.multiexp(cts, rows, n2), 1),
    }
    modes = ["gmp", "ifma"] if had_ifma else ["gmp"]
    samples: dict = {name: {mode: [] for mode in modes} for name in cases}
    try:
        for _ in range(args.reps):
            for name, (fn, per) in cases.items():
                for mode in modes:
                    native.ifma(mode == "ifma")
                    samples[name][mode].append(_time(fn, 1) / per)
    finally:
        native.ifma(had_ifma)
    rows_out = {name: {mode: statistics.median(v) for mode, v in by.items()}
                for name, by in samples.items()}
    lines = [
        f"Measured by `python -m montpipe.bench.kernels` (one thread, medians of {args.reps}, "
        f"GMP {native.gmp_version}). DJN table: w = {window}, "
        f"{table.table_bytes / 2**20:.0f} MiB, built in {table_seconds:.2f} s.",
        "",
        "| kernel | GMP | IFMA | IFMA speed-up |" if had_ifma else "| kernel | GMP |",
        "|---|---|---|---|" if had_ifma else "|---|---|",
    ]
    for name, r in rows_out.items():
        unit, scale = ("s", 1) if "whole" in name else ("µs", 1e6)
        cells = f"| {name} | {r['gmp'] * scale:.4g} {unit} |"
        if had_ifma and "no IFMA" in name:
            cells += " — | — |"
        elif had_ifma:
            cells += f" {r['ifma'] * scale:.4g} {unit} | {r['gmp'] / r['ifma']:.2f}× |"
        lines.append(cells)
    md = "\n".join(lines) + "\n"
    publish(args.out, "kernels",
            {"command": "python -m montpipe.bench.kernels", "window": window,
             "table_bytes": table.table_bytes, "table_seconds": table_seconds,
             "seconds": rows_out}, md, args.update_readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
