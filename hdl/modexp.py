"""A lane's modular-exponentiation sequencer: ``base^e mod m`` on one :class:`MontMulLane`.

Fixed-window exponentiation, left to right: the table ``T[d] = base^d`` (Montgomery form) for
``d < 2^w``, then per window ``w`` squarings and one multiplication by ``T[digit]`` — skipped
for a zero digit unless ``const_time`` is set, in which case it multiplies by ``T[0]``
(Montgomery one) so the cycle count depends on the number of windows alone. Conversion in is a
product with ``R² mod m``, supplied by the host (one division per modulus on the host, reused by
every exponentiation under that modulus); conversion out is a product with 1. Results of the
lane stay below ``2m``; the product with 1 brings the last one to at most ``m``, and a final
word-by-word comparison turns ``m`` (only reachable when ``base ≡ 0``) into 0, so the result
read back is ``base^e mod m`` exactly.

Host interface: load the modulus, ``base`` (< m), ``R² mod m`` and the exponent's ``w``-bit
digits (least significant first) through the write port, pulse ``start`` with the word count,
``m'``, the number of windows and the mode, wait for ``done``, read the result.

**Products one at a time** (``command`` other than ``MODEXP``): the lane also keeps an
accumulator between commands, so that a sequencer elsewhere can run any chain of products over
operands it streams in one at a time — a comb over a table the lane could not hold.
``BEGIN`` writes the slot ``ONE`` for a loaded modulus; ``LOAD`` makes the words written to the
target ``ACC`` the accumulator; ``MUL`` multiplies it by the words written to ``BASE``,
``SQUARE`` squares it (both one product); ``OUT`` converts it out of the Montgomery domain with
the final comparison, as an exponentiation's result; ``RAW`` makes it readable as it is
(Montgomery form, below ``2m``). Operands and the accumulator stay in Montgomery form below
``2m``, which the product keeps: the lane checks nothing about them.
"""

from __future__ import annotations

import enum

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.model import Command
from ._checked import Checked
from .montmul import MontMulLane

__all__ = ["Command", "ModExpLane", "Slot", "Target"]


class Target(enum.IntEnum):
    """``wr_target``: where a loaded word goes."""

    MODULUS = 0
    BASE = 1      # the base of an exponentiation, the operand of ``MUL``
    R2 = 2
    EXPONENT = 3  # address = window index, data = that window's digit
    ACC = 4       # the operand of ``LOAD``: the slot the accumulator moves to




class Slot(enum.IntEnum):
    """Operand slots of the lane; the table ``T[d]`` follows at ``TABLE + d``.

    ``T[0]`` takes the base's slot: the base is consumed by the first product (its conversion
    into ``T[1]``), and ``T[0]`` is the second. ``4 + 2^w`` slots: at ``w = 2`` and ``s = 114``
    (W = 36) that is 912 words, within one 1 024-deep block RAM column, where a ninth slot
    (1 026 words) put a bank multiplexer behind every unregistered read.
    """

    X0 = 0
    X1 = 1
    ONE = 2
    R2 = 3
    BASE = 4
    TABLE = 4


class _Op(enum.IntEnum):
    CONV_BASE = 0
    CONV_ONE = 1
    TABLE = 2
    SQUARE = 3
    DIGIT = 4
    OUT = 5
    STEP = 6      # a product of a command: the accumulator moves to its result


class ModExpLane(Checked, wiring.Component):
    """One lane: exponentiation sequencer around a Montgomery multiplier.

    Parameters
    ----------
    width:
        Word width W.
    max_words:
        Largest word count ``s`` (see :func:`montpipe.device.model.montgomery_words`).
    window:
        Window size ``w`` in bits (table of ``2^w`` entries).
    max_windows:
        Largest exponent length in windows (``ceil(e_bits / w)``).

    Attributes
    ----------
    start, command, words, mprime, windows, const_time:
        Pulse ``start`` while idle (:class:`Command`; ``windows`` and ``const_time`` matter
        to ``MODEXP`` only).
    busy, done:
        ``done`` pulses when the result is readable.
    wr_en, wr_target, wr_addr, wr_data:
        Loads while idle (:class:`Target`).
    rd_addr, rd_data, rd_mod_data:
        Result and modulus words while idle (one cycle latency).
    """

    @classmethod
    def check(cls, *, width, max_words, window, max_windows, **_) -> None:
        MontMulLane.check(width=width, max_words=max_words, slots=3)
        if not isinstance(window, int) or not 1 <= window <= 6:
            raise ValueError(f"Window must be an integer from 1 to 6 bits, not {window!r}")
        if not isinstance(max_windows, int) or max_windows < 1:
            raise ValueError(f"Exponent length must be at least 1 window, not {max_windows!r}")

    def __init__(self, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 64, *, ecp5_dsp: bool = False) -> None:
        self._width, self._max_words, self._window = width, max_words, window
        self._max_windows = max_windows
        self.lane = MontMulLane(width, max_words, slots=Slot.TABLE + (1 << window),
                                ecp5_dsp=ecp5_dsp)
        super().__init__({
            "start": In(1),
            "command": In(Command),
            "words": In(range(max_words + 1)),
            "mprime": In(width),
            "windows": In(range(max_windows + 1)),
            "const_time": In(1),
            "busy": Out(1),
            "done": Out(1),
            "wr_en": In(1),
            "wr_target": In(Target),
            "wr_addr": In(range(max(max_words, max_windows))),
            "wr_data": In(width),
            "rd_addr": In(range(max_words)),
            "rd_data": Out(width),
            "rd_mod_data": Out(width),
        })

    @property
    def window(self) -> int:
        return self._window

    def elaborate(self, platform):
        m = Module()
        m.submodules.lane = lane = self.lane
        W, w, S = self._width, self._window, self._max_words

        exp = Memory(shape=w, depth=self._max_windows, init=[])
        m.submodules.exp = exp
        exp_rd, exp_wr = exp.read_port(), exp.write_port()

        s = Signal(range(S + 1))
        windows = Signal(range(self._max_windows + 1))
        const_time = Signal()
        win = Signal(range(self._max_windows + 1))
        k = Signal(range(max(S, 1 << w) + 1))
        op = Signal(_Op)
        cur = Signal(range(lane.slots))
        result_slot = Signal(range(lane.slots))
        is_m = Signal()
        other = Mux(cur == Slot.X0, Slot.X1, Slot.X0)

        # loads while idle: the modulus, base and R^2 into the lane, digits into `exp`
        idle = ~self.busy
        m.d.comb += [
            exp_wr.addr.eq(self.wr_addr), exp_wr.data.eq(self.wr_data[:w]),
            exp_wr.en.eq(idle & self.wr_en & (self.wr_target == Target.EXPONENT)),
        ]
        with m.If(idle):
            with m.Switch(self.wr_target):
                with m.Case(Target.BASE):
                    m.d.comb += lane.wr_slot.eq(Slot.BASE)
                with m.Case(Target.ACC):
                    m.d.comb += lane.wr_slot.eq(other)
                with m.Default():
                    m.d.comb += lane.wr_slot.eq(Slot.R2)
            m.d.comb += [
                lane.wr_en.eq(self.wr_en & (self.wr_target != Target.EXPONENT)),
                lane.wr_mod.eq(self.wr_target == Target.MODULUS),
                lane.wr_addr.eq(self.wr_addr), lane.wr_data.eq(self.wr_data),
                self.rd_data.eq(Mux(is_m, 0, lane.rd_data)),
                self.rd_mod_data.eq(lane.rd_mod_data),
            ]
        # the lane's read address comes from registers whatever the state (it was decoded from
        # the state in front of the block RAM): the result slot, and k while comparing
        comparing = Signal()
        m.d.comb += [lane.words.eq(s), exp_rd.addr.eq(win), lane.rd_slot.eq(result_slot),
                     lane.rd_addr.eq(Mux(comparing, k, self.rd_addr))]

        a = Signal(range(lane.slots))
        b = Signal(range(lane.slots))
        t = Signal(range(lane.slots))
        m.d.comb += [lane.a_slot.eq(a), lane.b_slot.eq(b), lane.t_slot.eq(t)]
        mprime = Signal(W)
        m.d.comb += lane.mprime.eq(mprime)

        res_word, mod_word, compare = Signal(W), Signal(W), Signal()
        m.d.sync += compare.eq(0)
        with m.If(compare & (res_word != mod_word)):
            m.d.sync += is_m.eq(0)

        # the lane's start is a register set with the move to Wait, so no decode of the state
        # sits in front of the lane's operand latches: same cycle as a one-cycle state would
        # give
        start = Signal()
        m.d.sync += start.eq(0)
        m.d.comb += lane.start.eq(start)

        def multiply():
            m.d.sync += start.eq(1)
            m.next = "Wait"

        # the digit at address `win`, registered: nothing but a register follows the block RAM,
        # whose slow clock-to-out must not feed the next-product decision. `win` is set
        # to the top window at start, so the first digit is ready long before the table is,
        # and each later one during its window's squarings.
        digit, digit_go = Signal(w), Signal()
        m.d.sync += [digit.eq(exp_rd.data), digit_go.eq((exp_rd.data != 0) | const_time)]

        begin = Signal()    # the slot ONE is written for BEGIN, not for an exponentiation

        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("Idle"):
                with m.If(self.start):
                    m.d.sync += [
                        s.eq(self.words), mprime.eq(self.mprime), windows.eq(self.windows),
                        const_time.eq(self.const_time), k.eq(0), is_m.eq(0),
                        win.eq(self.windows - 1), self.busy.eq(1),
                        begin.eq(self.command == Command.BEGIN),
                    ]
                    with m.Switch(self.command):
                        with m.Case(Command.MODEXP, Command.BEGIN):
                            m.next = "Write one"
                        with m.Case(Command.LOAD):
                            m.d.sync += cur.eq(other)
                            m.next = "Finish"
                        with m.Case(Command.MUL):
                            m.d.sync += [op.eq(_Op.STEP), a.eq(cur), b.eq(Slot.BASE), t.eq(other)]
                            multiply()
                        with m.Case(Command.SQUARE):
                            m.d.sync += [op.eq(_Op.STEP), a.eq(cur), b.eq(cur), t.eq(other)]
                            multiply()
                        with m.Case(Command.OUT):
                            m.next = "Out"
                        with m.Default():   # RAW
                            m.d.sync += result_slot.eq(cur)
                            m.next = "Finish"
            with m.State("Write one"):
                # the slot ONE holds 1 (plain): conversion out multiplies by it
                m.d.comb += [
                    lane.wr_en.eq(1), lane.wr_mod.eq(0), lane.wr_slot.eq(Slot.ONE),
                    lane.wr_addr.eq(k), lane.wr_data.eq(k == 0),
                ]
                m.d.sync += k.eq(k + 1)
                with m.If((k == s - 1) & begin):
                    m.next = "Finish"
                with m.Elif(k == s - 1):
                    m.d.sync += [op.eq(_Op.CONV_BASE), a.eq(Slot.BASE), b.eq(Slot.R2),
                                 t.eq(Slot.TABLE + 1)]
                    multiply()
            with m.State("Wait"):
                with m.If(lane.done):
                    m.next = "Next"
            with m.State("Next"):
                # decide the next product from the one that just finished
                with m.Switch(op):
                    with m.Case(_Op.CONV_BASE):
                        m.d.sync += [op.eq(_Op.CONV_ONE), a.eq(Slot.ONE), b.eq(Slot.R2),
                                     t.eq(Slot.TABLE)]
                        multiply()
                    with m.Case(_Op.CONV_ONE, _Op.TABLE):
                        nxt = Mux(op == _Op.CONV_ONE, 2, k + 1)
                        with m.If(nxt < (1 << w)):
                            m.d.sync += [op.eq(_Op.TABLE), k.eq(nxt),
                                         a.eq(Slot.TABLE + nxt - 1), b.eq(Slot.TABLE + 1),
                                         t.eq(Slot.TABLE + nxt)]
                            multiply()
                        with m.Else():
                            m.next = "First digit"
                    with m.Case(_Op.SQUARE):
                        m.d.sync += cur.eq(other)
                        with m.If(k + 1 < w):
                            m.d.sync += [k.eq(k + 1), a.eq(other), b.eq(other),
                                         t.eq(Mux(other == Slot.X0, Slot.X1, Slot.X0))]
                            multiply()
                        # exp_rd reads address `win` every cycle, so `digit` is this window's
                        # digit throughout the squarings
                        with m.Elif(digit_go):
                            m.d.sync += [op.eq(_Op.DIGIT), a.eq(other),
                                         b.eq(Slot.TABLE + digit),
                                         t.eq(Mux(other == Slot.X0, Slot.X1, Slot.X0))]
                            multiply()
                        with m.Else():
                            m.next = "Window done"
                    with m.Case(_Op.DIGIT):
                        m.d.sync += cur.eq(other)
                        m.next = "Window done"
                    with m.Case(_Op.STEP):
                        m.d.sync += [cur.eq(other), self.busy.eq(0), self.done.eq(1)]
                        m.next = "Idle"
                    with m.Case(_Op.OUT):
                        m.d.sync += [result_slot.eq(other), k.eq(0), is_m.eq(1),
                                     comparing.eq(1)]
                        m.next = "Compare"
            with m.State("First digit"):
                # win = windows - 1 since start: `digit` holds the top digit
                with m.If(windows == 0):
                    m.d.sync += cur.eq(Slot.TABLE)  # e = 0: the result is 1
                    m.next = "Out"
                with m.Else():
                    m.next = "Take first digit"
            with m.State("Take first digit"):
                m.d.sync += cur.eq(Slot.TABLE + digit)
                m.next = "Window done"
            with m.State("Window done"):
                with m.If(win == 0):
                    m.next = "Out"
                with m.Else():
                    m.d.sync += win.eq(win - 1)
                    m.next = "Read digit"
            with m.State("Read digit"):
                # exp_rd.addr = win (just decremented); the digit is read by the time the
                # window's squarings end
                m.d.sync += [op.eq(_Op.SQUARE), k.eq(0), a.eq(cur), b.eq(cur), t.eq(other)]
                multiply()
            with m.State("Out"):
                m.d.sync += [op.eq(_Op.OUT), a.eq(cur), b.eq(Slot.ONE), t.eq(other)]
                multiply()
            with m.State("Compare"):
                # the result is at most m; it equals m only for base = 0 mod m, where the
                # answer is 0. Read result and modulus words side by side.
                m.d.sync += k.eq(k + 1)
                m.next = "Compare word"
            with m.State("Finish"):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                m.next = "Idle"
            with m.State("Compare word"):
                # the words are registered and compared a cycle later (nothing but a register
                # after a block-RAM read); the last compare lands before the result is read
                m.d.sync += [res_word.eq(lane.rd_data), mod_word.eq(lane.rd_mod_data),
                             compare.eq(1)]
                with m.If(k == s):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1), comparing.eq(0)]
                    m.next = "Idle"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
        return m
