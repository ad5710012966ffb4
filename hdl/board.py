"""Board tops: the accelerator behind a UART on ECP5 boards from amaranth-boards.

The board's oscillator drives an ``EHXPLLL`` whose output is the core clock (``clock_mhz``);
the design is held in reset until the PLL locks. The UART is the board's USB serial bridge
(ULX3S: FT231X, up to 3 Mbaud; ECPIX-5: FT2232), and on the OrangeCrab, which has none, pins 0
(RX) and 1 (TX) of its Feather header, for an external USB-serial adapter.

Three LEDs say what the gateware is doing (:class:`StatusLEDs`): a heartbeat, link activity and
an error latch. ULX3S: LEDs 0, 1, 2; ECPIX-5 (its RGB LED 0) and OrangeCrab (its one RGB LED):
green, blue, red.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out, connect

from ..device.config import DeviceConfig
from ..device.wire import RESPONSE_MARKER, Opcode
from ._checked import Checked
from .link import FrameLink
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["BOARDS", "COLLISIONS_DONT_CARE", "BoardTop", "StatusLEDs", "make_platform",
           "pll_parameters"]


@dataclass(frozen=True)
class Board:
    module: str
    platform: str
    clock_mhz: float


BOARDS = {
    "ulx3s-85f": Board("amaranth_boards.ulx3s", "ULX3S_85F_Platform", 25.0),
    "ecpix5-85": Board("amaranth_boards.ecpix5", "ECPIX585Platform", 100.0),
    "orangecrab-85f": Board("amaranth_boards.orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform",
                            48.0),
}


# The synthesis script's first step (hdl/synth.py). Amaranth's read ports promise the old word
# when the same address is written in the same cycle, and yosys builds an address compare and a
# multiplexer behind the block RAM to keep that promise, on the slowest path there is. These
# memories never use a word read in the cycle it is written: the lanes'
# slots (a row reads what the previous row wrote at least a cycle before; loads and reads are in
# different states), the modulus and exponent memories (loaded while idle), the link's frame
# buffers (a buffer is read only once full) and its contexts (loaded and read in different
# states). The FIFOs' memories keep the promise.
COLLISIONS_DONT_CARE = "\n".join(
    f"setparam -set COLLISION_X_MASK 1 t:$memrd_v2 r:MEMID=\\{name} %i"
    for name in ("vec", "mod", "exp", "buf", "ctx_mem"))


def make_platform(board: str):
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
    spec = BOARDS[board]
    platform = getattr(importlib.import_module(spec.module), spec.platform)()
    if board.startswith("orangecrab"):
        platform.add_resources([Resource(
            "uart", 0,
            Subsignal("rx", Pins("0", dir="i", conn=("io", 0))),
            Subsignal("tx", Pins("1", dir="o", conn=("io", 0))),
            Attrs(IO_TYPE="LVCMOS33"))])
    return platform


def pll_parameters(f_in_mhz: float, f_out_mhz: float) -> dict:
    """``EHXPLLL`` dividers for ``f_out`` from ``f_in`` (feedback from CLKOP): the closest
    output with the VCO in 400–800 MHz and the phase detector at 10 MHz or more, which must be
    within 5 % of ``f_out`` (the report states the clock it got)."""
    best = None
    for clki in range(1, 129):
        pfd = f_in_mhz / clki
        if pfd < 10:
            break
        for fb in range(1, 81):
            out = pfd * fb
            for op in range(1, 129):
                vco = out * op
                if 400 <= vco <= 800:
                    err = abs(out - f_out_mhz)
                    if best is None or err < best[0]:
                        best = (err, clki, fb, op, out, vco)
                    break
    if best is None or best[0] > 0.05 * f_out_mhz:
        closest = f"; the closest is {best[4]:g} MHz" if best else ""
        raise ValueError(f"no PLL setting makes {f_out_mhz:g} MHz from {f_in_mhz:g} MHz "
                         f"within 5 %{closest}")
    _, clki, fb, op, out, vco = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": fb, "CLKOP_DIV": op, "f_out_mhz": out,
            "vco_mhz": vco}


class StatusLEDs(Checked, wiring.Component):
    """Heartbeat, link activity and an error latch, for a person looking at a board.

    ``heartbeat`` is the top bit of a free-running counter of ``heartbeat_bits`` bits (about
    1 Hz when the counter spans about a second of the clock): it blinks once the PLL has locked
    and the design is out of reset. ``busy`` follows the link's ``busy``, lit for at least
    ``stretch`` cycles, so a single frame is a visible flash. ``error`` watches the responses
    leaving on ``tx`` (it only observes the stream's transfers): it lights at the first response
    with a status other than OK (a bad CRC, a timeout, a refused request, ...) and stays lit
    until a RESET command is answered OK or the board is reset. It follows the response
    framing (marker, length, ..., CRC), so a marker byte inside a payload is not taken for a
    frame.

    Parameters
    ----------
    heartbeat_bits:
        Width of the heartbeat counter.
    stretch:
        Cycles ``busy`` stays lit at least once the link's ``busy`` rises.
    """

    @classmethod
    def check(cls, *, heartbeat_bits, stretch) -> None:
        if heartbeat_bits < 2 or stretch < 1:
            raise ValueError(f"heartbeat_bits must be at least 2 and stretch at least 1, not "
                             f"{heartbeat_bits!r} and {stretch!r}")

    def __init__(self, heartbeat_bits: int, stretch: int) -> None:
        self._bits, self._stretch = heartbeat_bits, stretch
        super().__init__({
            "busy_in": In(1),
            # the link's response stream, observed (never driven)
            "tx_payload": In(8), "tx_valid": In(1), "tx_ready": In(1),
            "heartbeat": Out(1), "busy": Out(1), "error": Out(1),
        })

    @staticmethod
    def clock_parameters(clock_hz: float) -> tuple[int, int]:
        """``(heartbeat_bits, stretch)`` for a heartbeat of about a second and a 1/16 s flash
        at ``clock_hz``."""
        return max(2, round(math.log2(clock_hz))), max(1, round(clock_hz / 16))

    def elaborate(self, platform):
        m = Module()
        beat = Signal(self._bits)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.heartbeat.eq(beat[-1])

        hold = Signal(range(self._stretch + 1))
        with m.If(self.busy_in):
            m.d.sync += hold.eq(self._stretch)
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += self.busy.eq(self.busy_in | (hold != 0))

        # position in the response frame: 0 hunts for the marker; the frame's last byte is at
        # length + 6 (marker, two length bytes, length bytes, four CRC bytes)
        pos, length, opcode = Signal(17), Signal(16), Signal(8)
        byte = self.tx_payload
        with m.If(self.tx_valid & self.tx_ready):
            m.d.sync += pos.eq(pos + 1)
            with m.Switch(pos):
                with m.Case(0):
                    m.d.sync += pos.eq(byte == RESPONSE_MARKER)
                with m.Case(1):
                    m.d.sync += length[:8].eq(byte)
                with m.Case(2):
                    m.d.sync += length[8:].eq(byte)
                with m.Case(3):
                    m.d.sync += opcode.eq(byte)
                with m.Case(6):
                    with m.If(byte != 0):
                        m.d.sync += self.error.eq(1)
                    with m.Elif(opcode == (Opcode.RESET | 0x80)):
                        m.d.sync += self.error.eq(0)
            with m.If((pos > 6) & (pos == length + 6)):
                m.d.sync += pos.eq(0)
        return m


class BoardTop(Checked, Elaboratable):
    """PLL, UART and :class:`~montpipe.hdl.link.FrameLink` for one board."""

    @classmethod
    def check(cls, *, board, config, leds=None) -> None:
        if board not in BOARDS:
            raise ValueError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
        pll = pll_parameters(BOARDS[board].clock_mhz, config.clock_mhz)
        uart_divisor(pll["f_out_mhz"] * 1e6, config.baud)

    def __init__(self, board: str, config: DeviceConfig, *,
                 leds: StatusLEDs | None = None) -> None:
        self.board, self.config = board, config
        self.pll = pll_parameters(BOARDS[board].clock_mhz, config.clock_mhz)
        clock_hz = self.pll["f_out_mhz"] * 1e6
        self.divisor = uart_divisor(clock_hz, config.baud)
        c = config
        self.link = FrameLink(width=c.width, max_words=c.max_words, window=c.window,
                              max_windows=c.max_windows, lanes=c.lanes, contexts=c.contexts,
                              timeout=c.timeout, table_entries=c.table_entries,
                              clock_khz=round(clock_hz / 1e3),
                              ecp5_dsp=c.ecp5_dsp)
        self.leds = leds if leds is not None else StatusLEDs(
            *StatusLEDs.clock_parameters(clock_hz))

    def elaborate(self, platform):
        m = Module()
        spec = BOARDS[self.board]
        m.submodules.clk_in = clk_buf = io.Buffer("i", platform.request(platform.default_clk,
                                                                        dir="-"))
        clk_in = clk_buf.i
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal()
        p = self.pll
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(spec.clock_mhz), a_FREQUENCY_PIN_CLKOP=f"{p['f_out_mhz']:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=(p["CLKOP_DIV"] - 1) // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=sync.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=sync.clk, o_LOCK=locked,
        )
        platform.add_clock_constraint(sync.clk, p["f_out_mhz"] * 1e6)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        # every subsignal raw ("-"), buffers below (the board files add rts/dtr and the like)
        subsignals = {io_.name: "-" for io_ in platform.lookup("uart", 0).ios}
        uart = platform.request("uart", 0, dir=subsignals)
        m.submodules.uart_rx = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_pin = io.Buffer("o", uart.tx)
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.link = link = self.link
        m.d.comb += [rx.rx.eq(rx_pin.i), tx_pin.o.eq(tx.tx)]
        if ("uart_tx_enable", 0) in platform.resources:
            m.submodules.uart_tx_enable = enable = io.Buffer(
                "o", platform.request("uart_tx_enable", 0, dir="-"))
            m.d.comb += enable.o.eq(1)
        connect(m, rx.o_stream, link.i_rx)
        connect(m, link.o_tx, tx.i_stream)

        m.submodules.leds = leds = self.leds
        m.d.comb += [leds.busy_in.eq(link.busy), leds.tx_payload.eq(link.o_tx.payload),
                     leds.tx_valid.eq(link.o_tx.valid), leds.tx_ready.eq(tx.i_stream.ready)]
        if self.board.startswith("ulx3s"):
            outputs = [platform.request("led", k, dir="-") for k in range(3)]
        else:
            rgb = platform.request("rgb_led", 0, dir={"r": "-", "g": "-", "b": "-"})
            outputs = [rgb.g, rgb.b, rgb.r]
        values = (leds.heartbeat, leds.busy, leds.error)
        for k, (pin, value) in enumerate(zip(outputs, values, strict=True)):
            m.submodules[f"led{k}"] = buf = io.Buffer("o", pin)
            m.d.comb += buf.o.eq(value)
        return m
