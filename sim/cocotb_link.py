"""cocotb test of the host link (:class:`~montpipe.hdl.link.FrameLink`) with the host's own
protocol code: contexts, exponentiations against gmpy2, error responses, resynchronisation;
the comb (a table written, fixed-base powers of a lane's worth of jobs, each answered by its own
tag) against gmpy2."""

from __future__ import annotations

import random

import cocotb
import gmpy2

from montpipe.device.model import exponent_digits, montgomery_words, mprime
from montpipe.device.wire import (
    Capabilities,
    LinkStatus,
    Opcode,
    caps_request,
    comb_request,
    load_context_request,
    modexp_request,
    table_write_request,
    unpack_words,
)
from montpipe.driver.comb import choose_shape, comb_digits, comb_table

from . import _bench
from .tb import LinkTB


@cocotb.test()
async def link_exchange(dut):
    plan = _bench.plan()
    W, window, lanes = plan["width"], plan["window"], plan["lanes"]
    rng = random.Random(plan["seed"])
    tb = LinkTB(dut)
    await tb.reset()
    await tb.send(caps_request(1))
    (caps,) = await tb.collect(lambda rs: len(rs) >= 1, 100_000)
    info = Capabilities.decode(caps.payload)
    assert (info.width, info.lanes, info.window) == (W, lanes, window)

    mod = rng.getrandbits(plan["modulus_bits"]) | 1 | 1 << (plan["modulus_bits"] - 1)
    s = montgomery_words(mod.bit_length(), W)
    await tb.send(load_context_request(2, 0, mod, width=W, words=s, mprime=mprime(mod, W),
                                       r2=pow(2, 2 * W * s, mod)))
    await tb.collect(lambda rs: len(rs) >= 2, 100_000)
    assert tb.responses[1].status == LinkStatus.OK
    # a corrupted frame, then exponentiations by the host's rule (fewer than lanes open)
    bad = bytearray(caps_request(3))
    bad[-1] ^= 1
    await tb.send(bytes(bad))
    await tb.collect(lambda rs: len(rs) >= 3, 100_000)
    assert (tb.responses[2].tag, tb.responses[2].status) == (3, LinkStatus.BAD_CRC)
    cases = [(10 + k, rng.randrange(mod), rng.getrandbits(plan["exponent_bits"]))
             for k in range(plan["requests"])]
    for n, (tag, base, e) in enumerate(cases):
        await tb.collect(lambda rs, n=n: len(rs) >= 3 + max(0, n - lanes + 1), 10**9)
        await tb.send(modexp_request(tag, 0, base, exponent_digits(e, window), width=W,
                                     words=s))
    await tb.collect(lambda rs: len(rs) >= 3 + len(cases), 10**9)
    results = tb.responses[3:]
    assert [r.tag for r in results] == [c[0] for c in cases], "results out of request order"
    for (tag, base, e), r in zip(cases, results, strict=True):
        assert (r.opcode, r.status) == (Opcode.MODEXP, LinkStatus.OK), (tag, r)
        assert unpack_words(r.payload, W) == int(gmpy2.powmod(base, e, mod)), tag
    assert tb.parser.bad_crc == 0 and tb.parser.discarded == 0
    _bench.checked(3 + len(cases))
    _bench.flush("link_exchange")


@cocotb.test()
async def link_comb(dut):
    plan = _bench.plan()
    W, lanes = plan["width"], plan["lanes"]
    rng = random.Random(plan["seed"] + 1)
    tb = LinkTB(dut)
    await tb.reset()
    await tb.send(caps_request(1))
    (caps,) = await tb.collect(lambda rs: len(rs) >= 1, 100_000)
    info = Capabilities.decode(caps.payload)
    shape = choose_shape(plan["exponent_bits"], info.table_entries)
    assert shape is not None, "the plan's build has no table for its exponents"
    mod = rng.getrandbits(plan["modulus_bits"]) | 1 | 1 << (plan["modulus_bits"] - 1)
    s = montgomery_words(mod.bit_length(), W)
    r = pow(2, W * s, mod)
    await tb.send(load_context_request(2, 1, mod, width=W, words=s, mprime=mprime(mod, W),
                                       r2=r * r % mod))
    g = rng.randrange(2, mod)
    table = comb_table(g, mod, shape)
    for index, value in enumerate(table):
        await tb.send(table_write_request(100 + index, 1, index, value * r % mod, width=W,
                                          words=s))
        await tb.collect(lambda rs, n=index: len(rs) >= 3 + n, 10**7)
    exps = [0, (1 << shape.max_bits) - 1] + [rng.getrandbits(shape.max_bits)
                                            for _ in range(lanes)]
    done = 2 + len(table)
    for at in range(0, len(exps), lanes):
        jobs = exps[at:at + lanes]
        await tb.send(comb_request(1000 + at, 1, shape.steps, shape.tables, shape.bits,
                                   [comb_digits(e, shape) for e in jobs]))
        want = done + at + len(jobs)
        await tb.collect(lambda rs, n=want: len(rs) >= n, 10**9)
    assert all(x.status == LinkStatus.OK for x in tb.responses[1:done])
    results = tb.responses[done:]
    assert [x.tag for x in results] == [1000 + k for k in range(len(exps))]
    for e, x in zip(exps, results, strict=True):
        assert (x.opcode, x.status) == (Opcode.COMB, LinkStatus.OK), x
        assert unpack_words(x.payload, W) == int(gmpy2.powmod(g, e, mod)), e
    assert tb.parser.bad_crc == 0 and tb.parser.discarded == 0
    _bench.checked(len(tb.responses))
    _bench.flush("link_comb")
