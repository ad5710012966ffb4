"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces (the host link's wire).

The bit period is ``divisor`` clock cycles (``round(clock / baud)``; at 125 MHz and 3 Mbaud,
42, 0.8 % off, inside 8N1's tolerance). The receiver samples each bit mid-period after a
two-flip-flop synchroniser, checks the stop bit (a framing error drops the byte; the link's
CRC catches what slips through) and never waits: a byte nobody takes is overwritten, which the
link's receiver never does (its ``ready`` is always high).
"""

# no `from __future__ import annotations`: wiring reads the class annotations as objects
from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ._checked import Checked

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles a bit, with a check that the rate is reachable within 2 %."""
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise ValueError(f"{baud} baud needs at least 4 cycles a bit; a {clock_hz / 1e6:g} MHz "
                         f"clock gives {clock_hz / baud:.2f}")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud is {100 * error:.1f} % off at {clock_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); 8N1 needs it within 2 %")
    return divisor


class _UART(Checked, wiring.Component):
    @classmethod
    def check(cls, *, divisor) -> None:
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"UART divisor must be an integer of at least 4, not {divisor!r}")

    def __init__(self, divisor: int) -> None:
        self._divisor = divisor
        super().__init__()


class UARTRx(_UART):
    """Serial line in, bytes out (``o_stream``); ``framing_errors`` counts bad stop bits."""

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    framing_errors: Out(16)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(d * 3 // 2 + 1))
        bits = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.o_stream.valid.eq(self.o_stream.valid & ~self.o_stream.ready)
        with m.FSM():
            with m.State("Idle"):
                with m.If(~line):
                    # first sample in the middle of data bit 0: 1.5 bit periods on
                    m.d.sync += [timer.eq(d + d // 2 - 1), bits.eq(0)]
                    m.next = "Data"
            with m.State("Data"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1),
                                 timer.eq(d - 1)]
                    with m.If(bits == 7):
                        m.next = "Stop"
            with m.State("Stop"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o_stream.payload.eq(shift), self.o_stream.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                    m.next = "Wait idle"
            with m.State("Wait idle"):
                with m.If(line):
                    m.next = "Idle"
        return m


class UARTTx(_UART):
    """Bytes in (``i_stream``), serial line out."""

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        frame = Signal(10)
        bits = Signal(range(11))
        with m.FSM():
            with m.State("Idle"):
                m.d.comb += self.i_stream.ready.eq(1)
                m.d.sync += self.tx.eq(1)
                with m.If(self.i_stream.valid):
                    m.d.sync += [frame.eq(Cat(0, self.i_stream.payload, 1)), bits.eq(0),
                                 timer.eq(0)]
                    m.next = "Shift"
            with m.State("Shift"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [self.tx.eq(frame[0]), frame.eq(frame >> 1), timer.eq(d - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 10):
                        m.d.sync += self.tx.eq(1)
                        m.next = "Idle"
        return m
