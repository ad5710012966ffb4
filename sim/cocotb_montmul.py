"""cocotb tests of :class:`~montpipe.hdl.montmul.MontMulLane` against gmpy2 and the model."""

from __future__ import annotations

import cocotb
import gmpy2

from montpipe.device.model import montgomery_words, montmul_cycles, montmul_reference, mprime

from . import _bench
from .tb import LaneTB


@cocotb.test()
async def montmul_vectors(dut):
    """Every planned ``(a, b, m)``: ``a·b·R⁻¹`` into slot 2 and ``b²·R⁻¹`` into slot 0, bit-exact
    word for word with the FIOS reference, congruent per gmpy2, in the model's cycles."""
    plan = _bench.plan()
    W = plan["width"]
    tb = LaneTB(dut, W)
    await tb.reset()
    for vector in plan["vectors"]:
        a, b, m = (_bench.as_int(vector[k]) for k in ("a", "b", "m"))
        s = montgomery_words(m.bit_length(), W)
        r_inv = gmpy2.invert(gmpy2.mpz(1) << (W * s), m)
        await tb.write(0, a, s)
        await tb.write(1, b, s)
        await tb.write(0, m, s, modulus=True)
        for x, y, slots in ((a, b, (0, 1, 2)), (b, b, (1, 1, 0))):
            cycles = await tb.multiply(s, mprime(m, W), *slots)
            got = await tb.read(slots[2], s)
            top = int(dut.top.value)
            want = montmul_reference(x, y, m, W, s)
            assert (got, top) == want, f"{x:#x}*{y:#x} mod {m:#x}: {(got, top)} != {want}"
            assert (got + (top << (W * s))) % m == x * y * r_inv % m
            assert cycles == montmul_cycles(s, W), (s, cycles, montmul_cycles(s, W))
            _bench.checked()
            _bench.record(shape=f"montmul L={m.bit_length()} s={s}", words=s, lanes=1,
                          measured=cycles, model=montmul_cycles(s, W), products=1)
    _bench.flush("montmul_vectors")
