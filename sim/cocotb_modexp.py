"""cocotb tests of :class:`~montpipe.hdl.modexp.ModExpLane` against gmpy2 and the model."""

from __future__ import annotations

import cocotb
import gmpy2

from montpipe.device.model import (
    batch_products,
    exponent_digits,
    modexp_cycles,
    montgomery_words,
    mprime,
)

from . import _bench
from .tb import ModExpTB


def _words(value: int, width: int, s: int) -> list[int]:
    return [(value >> (width * k)) & ((1 << width) - 1) for k in range(s)]


@cocotb.test()
async def modexp_vectors(dut):
    """Every planned ``base^e mod m`` (with its declared window count and mode) equals gmpy2,
    in exactly :func:`~montpipe.device.model.modexp_cycles`; in constant-time mode, exponents of
    one declared length take one count."""
    plan = _bench.plan()
    W, window = plan["width"], plan["window"]
    tb = ModExpTB(dut, W)
    await tb.reset()
    const_counts: dict[tuple[int, int], set[int]] = {}
    for vector in plan["vectors"]:
        base, e, m = (_bench.as_int(vector[k]) for k in ("base", "e", "m"))
        const_time = bool(vector.get("const_time"))
        s = montgomery_words(m.bit_length(), W)
        digits = exponent_digits(e, window, vector.get("windows"))
        await tb.load(tb.MODULUS, _words(m, W, s))
        await tb.load(tb.BASE, _words(base, W, s))
        await tb.load(tb.R2, _words(pow(2, 2 * W * s, m), W, s))
        await tb.load(tb.EXPONENT, digits)
        cycles = await tb.run(s, mprime(m, W), len(digits), const_time)
        got = await tb.read(s)
        want = int(gmpy2.powmod(base, e, m))
        assert got == want, f"{base:#x}^{e:#x} mod {m:#x}: {got:#x} != {want:#x}"
        model = modexp_cycles(s, window, digits, const_time, W)
        assert cycles == model, (s, len(digits), cycles, model)
        _bench.checked()
        if const_time:
            const_counts.setdefault((s, len(digits)), set()).add(cycles)
        _bench.record(shape=f"modexp L={m.bit_length()} e={e.bit_length()} w={window}"
                            f"{' ct' if const_time else ''}",
                      words=s, lanes=1, measured=cycles, model=model,
                      products=batch_products(window, [digits], const_time))
    for key, counts in const_counts.items():
        assert len(counts) == 1, f"constant-time counts differ for (s, windows) = {key}: {counts}"
    _bench.flush("modexp_vectors")
