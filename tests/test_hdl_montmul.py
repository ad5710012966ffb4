"""The Montgomery lane on Amaranth's simulator, against gmpy2 and the cycle model."""

import random

import gmpy2
import pytest

amaranth = pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.sim import Simulator  # noqa: E402

from montpipe.device.model import (  # noqa: E402
    montgomery_words,
    montmul_cycles,
    montmul_reference,
    mprime,
)
from montpipe.hdl.montmul import MontMulLane  # noqa: E402

W = 16
MAX_WORDS = 10


def run_lane(cases, width=W, max_words=MAX_WORDS, stride=None):
    """Run every (a, b, m) on one lane (a in slot 0, b in slot 1, t to slot 2), plus a squaring
    of b (a = b = slot 1, t to slot 0); return [(result, top, cycles, square)]."""
    dut = MontMulLane(width, max_words, slots=3)
    assert stride is None or dut.stride == stride
    out = []

    async def write(ctx, slot, value, s, modulus=False):
        for k in range(s):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_mod, modulus)
            ctx.set(dut.wr_slot, slot)
            ctx.set(dut.wr_addr, k)
            ctx.set(dut.wr_data, (value >> (width * k)) & ((1 << width) - 1))
            await ctx.tick()
        ctx.set(dut.wr_en, 0)

    async def multiply(ctx, s, mod, a_slot, b_slot, t_slot):
        ctx.set(dut.words, s)
        ctx.set(dut.mprime, mprime(mod, width))
        ctx.set(dut.a_slot, a_slot)
        ctx.set(dut.b_slot, b_slot)
        ctx.set(dut.t_slot, t_slot)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 1
        while not ctx.get(dut.done):
            await ctx.tick()
            cycles += 1
            assert cycles < 10 * montmul_cycles(s), "the lane never finished"
        assert not ctx.get(dut.busy)
        return cycles

    async def read(ctx, slot, s):
        words = []
        for k in range(s):
            ctx.set(dut.rd_slot, slot)
            ctx.set(dut.rd_addr, k)
            await ctx.tick()
            words.append(ctx.get(dut.rd_data))
        return sum(v << (width * k) for k, v in enumerate(words))

    async def bench(ctx):
        for a, b, mod in cases:
            s = montgomery_words(mod.bit_length(), width)
            await write(ctx, 0, a, s)
            await write(ctx, 1, b, s)
            await write(ctx, 0, mod, s, modulus=True)
            cycles = await multiply(ctx, s, mod, 0, 1, 2)
            result, top = await read(ctx, 2, s), ctx.get(dut.top)
            assert await multiply(ctx, s, mod, 1, 1, 0) == cycles
            out.append((result, top, cycles, await read(ctx, 0, s)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def edge_moduli(rng):
    mods = []
    for bits in (64, 100, 127, 128):
        mods.append((1 << bits) - 1)                      # 2^k - 1
        mods.append((1 << (bits - 1)) + 1)                # just above 2^(k-1)
        mods.append(rng.getrandbits(bits) | 1 | (1 << (bits - 1)))
    return mods


def test_results_and_cycles_match_gmpy2_and_the_model():
    rng = random.Random(20261127)
    cases = []
    for mod in edge_moduli(rng):
        for a, b in [(0, 0), (1, 1), (mod - 1, mod - 1), (2 * mod - 1, 2 * mod - 1),
                     (rng.randrange(2 * mod), rng.randrange(2 * mod))]:
            cases.append((a, b, mod))
    results = run_lane(cases)
    for (a, b, mod), (result, top, cycles, square) in zip(cases, results, strict=True):
        s = montgomery_words(mod.bit_length(), W)
        r_inv = int(gmpy2.invert(1 << (W * s), mod))
        assert result % mod == a * b * r_inv % mod, (a, b, mod)
        assert square % mod == b * b * r_inv % mod and square < 2 * mod
        assert result < 2 * mod and top == 0  # stays in [0, 2m): chains need no subtraction
        assert (result, top) == montmul_reference(a, b, mod, W, s)
        assert cycles == montmul_cycles(s), (s, cycles)


@pytest.mark.parametrize("max_words", [MAX_WORDS, 400])
def test_runtime_lengths_on_one_build(max_words):
    """Slots a power of two apart (16 words: an OR makes the addresses) and not (400 words:
    three slots of 512 would need more block RAM than of 400, so an add does)."""
    rng = random.Random(7)
    cases = [(rng.randrange(m), rng.randrange(m), m)
             for m in (rng.getrandbits(bits) | 1 | (1 << (bits - 1))
                     for bits in (12, 30, 46, 62, 94, 158))]
    results = run_lane(cases, max_words=max_words, stride={MAX_WORDS: 16, 400: 400}[max_words])
    for (a, b, mod), (result, _, cycles, _) in zip(cases, results, strict=True):
        s = montgomery_words(mod.bit_length(), W)
        assert result % mod == a * b * int(gmpy2.invert(1 << (W * s), mod)) % mod
        assert cycles == montmul_cycles(s)


@pytest.mark.parametrize("width", [17, 18, 19, 32, 36])
def test_other_word_widths(width):
    """Above 18 bits a multiplier is four MULT18X18D and two more pipeline stages: the row
    period and the drain grow (``pipeline(width)``), the results do not change."""
    rng = random.Random(width)
    cases = []
    for bits in (100, 3 * width - 2, 7 * width):
        mod = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
        cases += [(rng.randrange(2 * mod), rng.randrange(2 * mod), mod) for _ in range(2)]
        cases.append((2 * mod - 1, 2 * mod - 1, mod))
    for (a, b, mod_), (result, top, cycles, _) in zip(cases, run_lane(cases, width),
                                                      strict=True):
        s = montgomery_words(mod_.bit_length(), width)
        assert result % mod_ == a * b * int(gmpy2.invert(1 << (width * s), mod_)) % mod_
        assert (result, top) == montmul_reference(a, b, mod_, width, s)
        assert cycles == montmul_cycles(s, width), (s, cycles, montmul_cycles(s, width))


def test_bad_parameters():
    with pytest.raises(ValueError, match="Word width must be an integer from 2 to 36, not 37"):
        MontMulLane(37)
    with pytest.raises(ValueError, match="Word count must be an integer of at least 3, not 2"):
        MontMulLane(16, 2)
    with pytest.raises(ValueError, match="Slot count must be an integer of at least 3, not 2"):
        MontMulLane(16, 8, 2)
    with pytest.raises(ValueError, match="odd modulus"):
        mprime(10, 16)
    with pytest.raises(ValueError, match="at least 3 words"):
        montmul_cycles(2)
    assert montgomery_words(20, 16) == 3  # small moduli are padded to the lane's minimum


def test_verilog_export(tmp_path):
    from montpipe.hdl.export import export

    paths = export(tmp_path)
    assert {p.name for p in paths} >= {"montmul_lane_w16_s257.v", "montmul_lane_w16_s10.v"}
    text = (tmp_path / "montmul_lane_w16_s10.v").read_text()
    assert "module montmul_lane_w16_s10(" in text
    assert "input [15:0] wr_data;" in text and "output [17:0] top;" in text


def test_lane_schedule_is_within_the_bound():
    """Two multipliers a lane: the cycle count against ceil((2s^2 + s) / 2), the issue's bound."""
    for s in range(20, 258):
        bound = -(-(2 * s * s + s) // 2)
        assert montmul_cycles(s) <= 1.11 * bound, s
    assert montmul_cycles(129) / -(-(2 * 129 * 129 + 129) // 2) < 1.013


@pytest.mark.slow
def test_a_4096_bit_multiplication_at_full_size():
    """One 4096-bit product (s = 257 words at W = 16) against gmpy2, the model and the bound."""
    rng = random.Random(4096)
    mod = rng.getrandbits(4096) | 1 | (1 << 4095)
    a, b = rng.randrange(2 * mod), rng.randrange(2 * mod)
    s = montgomery_words(mod.bit_length(), W)
    assert s == 257
    ((result, top, cycles, _),) = run_lane([(a, b, mod)], max_words=s)
    assert result % mod == a * b * int(gmpy2.invert(1 << (W * s), mod)) % mod and top == 0
    bound = -(-(2 * s * s + s) // 2)
    assert cycles == montmul_cycles(s) == 66_577
    assert cycles / bound < 1.007
    print(f"4096-bit multiplication: {cycles} cycles, bound {bound}, ratio {cycles / bound:.4f}")
