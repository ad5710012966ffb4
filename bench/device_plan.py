"""Device operations for the federated-learning workload: products, cycles and link bytes of
each candidate design, from the cycle model, for one FL iteration.

``python -m montpipe.bench.device_plan`` prints the tables of the "Device operations" section
of ``docs/gateware-plan.md``. Everything here is arithmetic over the exact product cost of the
lane's product packets (:func:`~montpipe.device.model.packet_cycles`: a stream of them dealt
over the lanes, operands on the request chain) and today's exact exponentiation cost
(:func:`~montpipe.device.model.modexp_cycles`). What is not gateware yet — the link's table
memory and the packet generator that would feed the lanes — is assumed to keep every lane's
next packet waiting at the chain, so the figures are what the lanes can do, not a measurement.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from ..device.config import DeviceConfig
from ..device.model import (
    Command,
    exponent_digits,
    modexp_cycles,
    montgomery_words,
    montmul_cycles,
    packet_cycles,
)
from ..device.wire import modexp_wire_bytes, word_bytes

#: LFE5U-85F
PART_MULTIPLIERS = 156
PART_DP16KD = 208
#: block RAMs the committed reference build uses (reports/synth, ULX3S)
REFERENCE_DP16KD = 93
#: a request or response frame's bytes around its payload: marker, length, opcode, tag, CRC
#: (and the response's status)
FRAME_BYTES = 9 + 10


@dataclass(frozen=True)
class Workload:
    """One FL iteration of the hetero-LR demo at 2048-bit keys, as the backend sees it
    (``python -m montpipe.fl_demo --no-ray --backend model --iterations 2``, halved: the
    default data set's 456 training samples, host 20 and guest 11 matrix rows)."""

    bases: int = 456                # ciphertexts [[d]] of one X.T @ [[d]]
    rows: tuple = (20, 11)          # matrix rows of each party's X.T @ [[d]]
    exponent_bits: int = 56         # |x| of the fixed-point encoded features
    fixed_base: int = 1400          # h_s^α: encryptions and re-randomisations
    alpha_bits: int = 1024          # DJN α at 2048-bit keys
    mulmods: int = 2340             # ct·ct and ct·g^m products
    modulus_bits: int = 4096        # n²

    @property
    def terms(self) -> int:
        return self.bases * sum(self.rows)


def product_cycles(cfg: DeviceConfig, words: int) -> int:
    return montmul_cycles(words, cfg.width)


def streamed_cycles(cfg: DeviceConfig, words: int, command: Command, count: int = 40) -> float:
    """Cycles a lane spends on one ``MUL`` or ``SQUARE`` packet in a long stream of them over
    all lanes (:func:`~montpipe.device.model.packet_cycles`, after each lane's ``BEGIN`` and
    ``LOAD``): the product, the operand's ``s`` beats on the request chain, the
    acknowledgement."""
    lanes = cfg.lanes
    head = [Command.BEGIN] * lanes + [Command.LOAD] * lanes
    before = packet_cycles(lanes, words, head, cfg.width)
    after = packet_cycles(lanes, words, head + [command] * (count * lanes), cfg.width)
    return (after - before) / count


# -- the operations, in Montgomery products --------------------------------------------------

def comb_fixed_base_squarings(e_bits: int, h: int, v: int) -> int:
    columns = -(-e_bits // h)
    return -(-columns // v) - 1


def comb_fixed_base_products(e_bits: int, h: int, v: int) -> int:
    """``h^α`` by a Lim–Lee comb of ``v`` tables of ``2^h`` entries, in constant time:
    ``b = ⌈⌈e/h⌉/v⌉`` steps of a squaring (not before the first) and ``v`` table products (the
    first one a load), then conversion out."""
    columns = -(-e_bits // h)
    steps = -(-columns // v)
    return (steps - 1) + (steps * v - 1) + 1


def comb_multiexp_products(bases: int, rows: int, e_bits: int, h: int, v: int) -> tuple[int, int]:
    """``Π cᵢ^eᵢ`` for ``rows`` rows over shared ``bases`` by a comb over groups of ``h``
    bases, ``v`` groups' tables resident at a time (a chunk): per row and chunk ``e`` steps of
    a squaring and ``v`` table products (the first a load), one product joining the chunk's
    partial to the row's, one conversion out per row; each group's table built on the device
    from its ``h`` uploaded bases, ``2^h − 1 − h`` products. Returns (products, table entries)."""
    groups = -(-bases // h)
    chunks = -(-groups // v)
    per_row = 0
    for c in range(chunks):
        g = min(v, groups - c * v)
        per_row += (e_bits - 1) + (e_bits * g - 1) + (1 if c else 0)
    per_row += 1
    sizes = [min(h, bases - g * h) for g in range(groups)]
    build = sum((1 << k) - 1 - k for k in sizes)
    return rows * per_row + build, v * (1 << h)


def pippenger_products(bases: int, rows: int, e_bits: int, c: int) -> int:
    """Bucket method per row: ``⌈e/c⌉`` windows of one product a base into its bucket and
    ``2(2^c − 1)`` to sum the buckets, ``e`` squarings joining the windows, conversion out."""
    windows = -(-e_bits // c)
    return rows * (windows * (bases + 2 * ((1 << c) - 1)) + e_bits + 1)


def dp16kd(entries: int, words: int, width: int) -> int:
    """Block RAMs (512 × 36 each) holding ``entries`` operands of ``words`` words."""
    return -(-entries * words * math.ceil(width / 36) // 512)


# -- the FL iteration under each design ----------------------------------------------------------

def today(cfg: DeviceConfig, wl: Workload, words: int) -> dict:
    """Every multiexp term and fixed-base power its own MODEXP (window 2), products and sums on
    the CPU: what the model backend projects today."""
    e_digits = exponent_digits((1 << wl.exponent_bits) - 1, cfg.window)
    a_digits = exponent_digits((1 << wl.alpha_bits) - 1, cfg.window)
    per_term = modexp_cycles(words, cfg.window, e_digits, False, cfg.width)
    per_power = modexp_cycles(words, cfg.window, a_digits, True, cfg.width)
    cycles = (wl.terms * per_term + wl.fixed_base * per_power) / cfg.lanes
    link = (wl.terms * modexp_wire_bytes(words, cfg.width, len(e_digits))
            + wl.fixed_base * modexp_wire_bytes(words, cfg.width, len(a_digits)))
    products = wl.terms * (per_term // product_cycles(cfg, words)) \
        + wl.fixed_base * (per_power // product_cycles(cfg, words))
    return {"products": products, "cycles": cycles, "link_bytes": link, "tables": 0}


def streamed(cfg: DeviceConfig, wl: Workload, words: int, *, fb_h: int, fb_v: int,
             me_h: int, me_v: int) -> dict:
    """The chosen design: operands in a table memory of the link, streamed into the lanes one
    product at a time (comb fixed-base powers, comb multi-exponentiation)."""
    wb = words * word_bytes(cfg.width)
    e_bits = wl.exponent_bits + 1            # exponents offset by 2^56 to make them unsigned
    fb = wl.fixed_base * comb_fixed_base_products(wl.alpha_bits, fb_h, fb_v)
    squarings = wl.fixed_base * comb_fixed_base_squarings(wl.alpha_bits, fb_h, fb_v)
    me = 0
    for rows in wl.rows:
        p, me_entries = comb_multiexp_products(wl.bases, rows, e_bits, me_h, me_v)
        me += p
        groups = -(-wl.bases // me_h)
        chunks = -(-groups // me_v)
        squarings += rows * chunks * (e_bits - 1)
    products = fb + me
    # squarings stream no operand; every other product streams one (OUT counted as a MUL)
    cycles = (squarings * streamed_cycles(cfg, words, Command.SQUARE)
              + (products - squarings) * streamed_cycles(cfg, words, Command.MUL)) / cfg.lanes
    columns = -(-wl.alpha_bits // fb_h)
    fb_link = wl.fixed_base * (math.ceil(columns * fb_h / 8) + wb) + 2 * FRAME_BYTES
    me_link = 0
    for rows in wl.rows:
        groups = -(-wl.bases // me_h)
        me_link += (wl.bases * wb                                   # bases, once
                    + rows * groups * math.ceil(e_bits * me_h / 8)  # packed column indices
                    + rows * wb + 4 * FRAME_BYTES)                  # results
    return {"products": products, "cycles": cycles, "link_bytes": fb_link + me_link,
            "tables": fb_v * (1 << fb_h) + me_entries,
            "fixed_base_products": fb, "multiexp_products": me}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clock-mhz", type=float, nargs="+", default=[75.0, 125.0])
    ap.add_argument("--python-paillier-s", type=float, default=13.5,
                    help="python-paillier's measured seconds per iteration "
                         "(python -m montpipe.bench.fl --sizes 2048)")
    args = ap.parse_args(argv)

    cfg, wl = DeviceConfig(), Workload()
    words = montgomery_words(wl.modulus_bits, cfg.width)
    pc = product_cycles(cfg, words)
    bound = 2 * words * words + words
    mul = streamed_cycles(cfg, words, Command.MUL)
    square = streamed_cycles(cfg, words, Command.SQUARE)
    print(f"4096-bit product: {pc} cycles on a lane; multiplier bound {bound}/2 = "
          f"{bound / 2:g} cycles a product a lane; streamed over {cfg.lanes} lanes: MUL "
          f"{mul:,.0f} cycles ({mul / (bound / 2):.3f} × bound), SQUARE {square:,.0f} "
          f"({square / (bound / 2):.3f} × bound)\n")

    print("Fixed-base powers, α of 1024 bits, constant time (products a power; table entries; "
          "DP16KD at 114 words):\n")
    print("| method | products | table entries | DP16KD |\n|---|---|---|---|")
    a_digits = exponent_digits((1 << wl.alpha_bits) - 1, cfg.window)
    per_power = modexp_cycles(words, cfg.window, a_digits, True, cfg.width) // pc
    print(f"| MODEXP, window 2 (today) | {per_power} | 4 a lane | in the lane |")
    for h, v in ((8, 1), (7, 2), (6, 4), (5, 8), (7, 4)):
        p = comb_fixed_base_products(wl.alpha_bits, h, v)
        e = v * (1 << h)
        print(f"| comb h = {h}, v = {v} | {p} | {e} | {dp16kd(e, words, cfg.width)} |")

    print("\nMulti-exponentiation, 456 bases × 31 rows (20 + 11), 57-bit (offset) exponents "
          "(products a term):\n")
    print("| method | products | a term | table entries | DP16KD |\n|---|---|---|---|---|")
    e_bits = wl.exponent_bits + 1
    e_digits = exponent_digits((1 << wl.exponent_bits) - 1, cfg.window)
    per_term = modexp_cycles(words, cfg.window, e_digits, False, cfg.width) // pc
    print(f"| MODEXP a term (today) | {per_term * wl.terms:,} | {per_term} | — | — |")
    for c in (5, 6, 8):
        p = sum(pippenger_products(wl.bases, r, e_bits, c) for r in wl.rows)
        e = (1 << c) * cfg.lanes
        print(f"| buckets c = {c}, a row a lane | {p:,} | {p / wl.terms:.1f} | {e} "
              f"| {dp16kd(e, words, cfg.width)} |")
    for h, v in ((6, 1), (6, 3), (6, 4), (8, 1), (4, 8)):
        p = 0
        for r in wl.rows:
            q, e = comb_multiexp_products(wl.bases, r, e_bits, h, v)
            p += q
        print(f"| comb h = {h}, {v} groups resident | {p:,} | {p / wl.terms:.1f} | {e} "
              f"| {dp16kd(e, words, cfg.width)} |")

    print("\nOne FL iteration (2048-bit keys; mulmods stay on the CPU in both):\n")
    print("| design | products | link MB | link s (UART) | device s at "
          + " | device s at ".join(f"{c:g} MHz" for c in args.clock_mhz)
          + " | max(device, link) ÷ python-paillier |")
    print("|---|---|---|---|" + "---|" * len(args.clock_mhz) + "---|")
    designs = [("today: a MODEXP a term and a power", today(cfg, wl, words))]
    for fb, me in (((6, 4), (6, 3)), ((8, 1), (6, 3)), ((6, 4), (6, 4))):
        d = streamed(cfg, wl, words, fb_h=fb[0], fb_v=fb[1], me_h=me[0], me_v=me[1])
        free = PART_DP16KD - REFERENCE_DP16KD
        label = (f"streamed: comb h = {fb[0]}, v = {fb[1]}; multiexp h = {me[0]}, "
                 f"{me[1]} groups ({d['tables']} entries, "
                 f"{dp16kd(d['tables'], words, cfg.width)} of {free} free DP16KD)")
        designs.append((label, d))
    for label, d in designs:
        link_s = d["link_bytes"] / cfg.link_bytes_per_s
        dev = [d["cycles"] / (c * 1e6) for c in args.clock_mhz]
        ratio = max(dev[0], link_s) / args.python_paillier_s
        print(f"| {label} | {d['products']:,} | {d['link_bytes'] / 1e6:.2f} | {link_s:.1f} | "
              + " | ".join(f"{x:.1f}" for x in dev) + f" | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
