"""The lane's exponentiation sequencer on Amaranth's simulator: results against gmpy2, cycles
against the model, the constant-time property."""

import random

import gmpy2
import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.sim import Simulator

from montpipe.device.model import (
    Command,
    command_cycles,
    exponent_digits,
    modexp_cycles,
    montgomery_words,
    mprime,
)
from montpipe.hdl.modexp import ModExpLane, Target

W = 16


def run(cases, window=2, max_words=8, max_windows=48, width=W):
    """cases: (base, exponent, modulus, const_time, windows or None) -> [(result, cycles)]."""
    dut = ModExpLane(width, max_words, window, max_windows)
    out = []

    async def load(ctx, target, values, bits):
        for k, v in enumerate(values):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_target, target)
            ctx.set(dut.wr_addr, k)
            ctx.set(dut.wr_data, v & ((1 << bits) - 1))
            await ctx.tick()
        ctx.set(dut.wr_en, 0)

    def words_of(x, s):
        return [(x >> (width * k)) & ((1 << width) - 1) for k in range(s)]

    async def bench(ctx):
        for base, e, mod, ct, windows in cases:
            s = montgomery_words(mod.bit_length(), width)
            digits = exponent_digits(e, window, windows)
            await load(ctx, Target.MODULUS, words_of(mod, s), width)
            await load(ctx, Target.BASE, words_of(base, s), width)
            await load(ctx, Target.R2, words_of(pow(2, 2 * width * s, mod), s), width)
            await load(ctx, Target.EXPONENT, digits, window)
            ctx.set(dut.words, s)
            ctx.set(dut.mprime, mprime(mod, width))
            ctx.set(dut.windows, len(digits))
            ctx.set(dut.const_time, ct)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            limit = 2 * modexp_cycles(s, window, digits, True)
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
                assert cycles < limit, "the exponentiation never finished"
            result = []
            for k in range(s):
                ctx.set(dut.rd_addr, k)
                await ctx.tick()
                result.append(ctx.get(dut.rd_data))
            out.append((sum(v << (width * k) for k, v in enumerate(result)), cycles, s, digits))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def check(cases, window=2, **kw):
    for (base, e, mod, ct, _), (result, cycles, s, digits) in zip(
            cases, run(cases, window, **kw), strict=True):
        assert result == int(gmpy2.powmod(base, e, mod)), (base, e, mod, ct)
        assert cycles == modexp_cycles(s, window, digits, bool(ct)), (s, window, digits, ct)


def edge_cases(rng, bits, ebits):
    mods = [(1 << bits) - 1, (1 << (bits - 1)) + 1, rng.getrandbits(bits) | 1 | (1 << (bits - 1))]
    exps = [0, 1, (1 << ebits) - 1, 1 << (ebits - 1), rng.getrandbits(ebits)]
    cases = []
    for mod in mods:
        for base in (0, 1, mod - 1, rng.randrange(mod)):
            for e in exps:
                cases.append((base, e, mod, rng.randrange(2), None))
    return cases


@pytest.mark.parametrize("window", [1, 2, 4])
def test_edge_operands_against_gmpy2_and_the_model(window):
    rng = random.Random(window)
    check(edge_cases(rng, 62, 40), window)


def test_runtime_lengths_on_one_build():
    rng = random.Random(5)
    cases = []
    for bits in (16, 45, 64, 94, 120):
        mod = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
        cases.append((rng.randrange(mod), rng.getrandbits(60), mod, 0, None))
    check(cases, 2)


def test_constant_time_counts_depend_only_on_the_declared_length():
    rng = random.Random(9)
    mod = rng.getrandbits(64) | 1 | (1 << 63)
    declared = 20  # windows of 2 bits: a 40-bit secret exponent
    exps = [0, 1, 1 << 39, (1 << 40) - 1, rng.getrandbits(40), rng.getrandbits(12)]
    cases = [(rng.randrange(mod), e, mod, 1, declared) for e in exps]
    results = run(cases, 2)
    counts = {cycles for _, cycles, _, _ in results}
    assert len(counts) == 1, counts
    for (base, e, mod_, _, _), (result, _, _, _) in zip(cases, results, strict=True):
        assert result == pow(base, e, mod_)
    # and without constant time the same exponents take different times
    plain = run([(b, e, m, 0, declared) for b, e, m, _, _ in cases], 2)
    assert len({cycles for _, cycles, _, _ in plain}) > 1


def test_bad_parameters():
    with pytest.raises(ValueError, match="Window must be an integer from 1 to 6 bits, not 0"):
        ModExpLane(16, 8, 0)
    with pytest.raises(ValueError, match="at least 1 window"):
        ModExpLane(16, 8, 2, 0)
    with pytest.raises(ValueError, match="does not fit 2 windows"):
        exponent_digits(1 << 10, 2, 2)


@pytest.mark.parametrize("bits", [30, 61, 94])
def test_commands_against_gmpy2_and_the_model(bits):
    """The packet commands on the lane alone, interleaved with an exponentiation that
    overwrites the slots: every command takes command_cycles, and the accumulator follows
    x·y, x², conversion out — also for x ≡ 0, where OUT's comparison turns m into 0."""
    rng = random.Random(bits)
    dut = ModExpLane(W, 8, 2, 48)
    mod = rng.getrandbits(bits) | 1 | 1 << (bits - 1)
    s = montgomery_words(mod.bit_length(), W)
    r = pow(2, W * s, mod)
    seen = []

    def words_of(x):
        return [(x >> (W * k)) & ((1 << W) - 1) for k in range(s)]

    async def bench(ctx):
        async def load(target, values):
            for k, v in enumerate(values):
                ctx.set(dut.wr_en, 1)
                ctx.set(dut.wr_target, target)
                ctx.set(dut.wr_addr, k)
                ctx.set(dut.wr_data, v)
                await ctx.tick()
            ctx.set(dut.wr_en, 0)

        async def command(c, windows=0):
            ctx.set(dut.words, s)
            ctx.set(dut.mprime, mprime(mod, W))
            ctx.set(dut.command, c)
            ctx.set(dut.windows, windows)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            n = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                n += 1
                assert n < 10_000, f"{c.name} never finished"
            seen.append((c, n))

        async def read():
            out = []
            for k in range(s):
                ctx.set(dut.rd_addr, k)
                await ctx.tick()
                out.append(ctx.get(dut.rd_data))
            return sum(v << (W * k) for k, v in enumerate(out))

        await load(Target.MODULUS, words_of(mod))
        for x in (rng.randrange(mod), 0):
            y = rng.randrange(mod)
            await command(Command.BEGIN)
            await load(Target.ACC, words_of(x * r % mod))
            await command(Command.LOAD)
            await load(Target.BASE, words_of(y * r % mod + mod))     # an operand above m
            await command(Command.MUL)
            await command(Command.SQUARE)
            await command(Command.RAW)
            raw = await read()
            assert raw < 2 * mod and raw % mod == (x * y) ** 2 * r % mod
            await command(Command.OUT)
            assert await read() == (x * y) ** 2 % mod
            # an exponentiation in between uses the same slots; BEGIN starts over after it
            await load(Target.BASE, words_of(y))
            await load(Target.R2, words_of(r * r % mod))
            await load(Target.EXPONENT, [3])
            await command(Command.MODEXP, windows=1)
            assert await read() == pow(y, 3, mod)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for c, n in seen:
        if c is not Command.MODEXP:
            assert n == command_cycles(c, s, W), (c, n)
    assert {c for c, _ in seen} == set(Command) - {Command.NOP}   # NOP is the core's alone
