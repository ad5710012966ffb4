"""UART transmitter into receiver, a framing error, bad divisors, and the host link end to end
through both on Amaranth's simulator."""

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth import Module
from stream_drivers import send, simulate

from montpipe.hdl.uart import UARTRx, UARTTx, uart_divisor

DIV = 5


def test_bytes_cross_the_line_in_order():
    m = Module()
    m.submodules.tx = tx = UARTTx(DIV)
    m.submodules.rx = rx = UARTRx(DIV)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C]
    got = []

    async def sender(ctx):
        await send(ctx, tx.i_stream, sent)

    async def receiver(ctx):
        ctx.set(rx.o_stream.ready, 1)
        n = 0
        while len(got) < len(sent):
            await ctx.tick()
            n += 1
            assert n < 20 * DIV * len(sent), got
            if ctx.get(rx.o_stream.valid):
                got.append(ctx.get(rx.o_stream.payload))
        assert ctx.get(rx.framing_errors) == 0

    simulate(m, receiver, background=[sender])
    assert got == sent


def test_a_bad_stop_bit_drops_the_byte_and_counts():
    rx = UARTRx(DIV)

    async def bench(ctx):
        ctx.set(rx.o_stream.ready, 1)
        seen = []

        async def bits(levels):
            for level in levels:
                ctx.set(rx.rx, level)
                for _ in range(DIV):
                    await ctx.tick()
                    if ctx.get(rx.o_stream.valid):
                        seen.append(ctx.get(rx.o_stream.payload))

        await bits([1, 1])
        await bits([0, *[1, 0, 1, 0, 1, 0, 1, 0], 0])          # start, 0x55, stop bit low
        await bits([1, 1, 1])
        assert ctx.get(rx.framing_errors) == 1 and seen == []
        await bits([0, *[1, 1, 0, 0, 1, 1, 0, 0], 1, 1, 1])    # start, 0x33, stop, idle
        assert seen == [0x33]                                  # the good byte, only it

    simulate(rx, bench)


def test_divisors():
    assert uart_divisor(125e6, 3_000_000) == 42
    with pytest.raises(ValueError, match="3000000 baud needs at least 4 cycles a bit"):
        uart_divisor(10e6, 3_000_000)
    with pytest.raises(ValueError, match=r"6500000 baud is 5\.5 % off at 48 MHz"):
        uart_divisor(48e6, 6_500_000)
    with pytest.raises(ValueError, match="UART divisor must be an integer of at least 4, not 2"):
        UARTRx(2)
