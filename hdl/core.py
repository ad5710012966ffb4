"""The stream front end of a lane: tagged requests in, tagged results (or an error) out.

A request is a frame of ``W``-bit beats on ``i_req`` with ``last`` on its final beat::

    tag, s (words), windows, flags (bit 0: constant time), m' (= -m⁻¹ mod 2^W),
    m[0..s), R² mod m [0..s), base[0..s), digit[0..windows)        (least significant first)

The result is a frame on ``o_res``: ``s`` beats of ``base^e mod m`` (least significant word
first) with the request's tag and status ``OK``, or one beat with an error status.

Bits 1 to 3 of ``flags`` name a :class:`~montpipe.hdl.modexp.Command` (0, an exponentiation,
is the frame above); the others are **packets** of a chain of products the lane runs one at a
time, under the modulus of the last ``BEGIN``::

    BEGIN          header, m[0..s)             the modulus; answered by an acknowledgement
    LOAD, MUL      header, operand[0..s)       (Montgomery form, below 2m): acknowledgement
    SQUARE         header                      acknowledgement
    OUT, RAW       header                      s result words: converted out, or as they are
    NOP            header                      acknowledgement, nothing run, no BEGIN needed

An acknowledgement is one beat with status ``OK``, so every frame has one result frame and
results keep request order. A packet other than ``BEGIN`` without a modulus (none loaded yet, or
an exponentiation or a refused ``BEGIN`` since) gets ``NO_PROGRAM``, one whose ``s`` is not its
``BEGIN``'s ``BAD_LENGTH``. Bad input
never hangs the core and never yields a wrong value: an out-of-range length, an even or zero
modulus, a base not below the modulus, or a frame that ends early or runs long gets an error
result, and the core drains the rest of a long frame so the next one starts clean.
``valid`` on ``o_res`` never waits for ``ready``; the core holds a result until it is taken.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ._checked import Checked
from .modexp import Command, ModExpLane, Target

__all__ = ["HEADER_BEATS", "ModExpCore", "Status", "request_layout", "result_layout"]

HEADER_BEATS = 5


class Status(enum.Enum, shape=3):
    """Result status: the values of :class:`~montpipe.device.wire.LinkStatus` below 16, which
    the link passes to the host unchanged."""

    OK = 0
    BAD_LENGTH = 1          # s < 3, s > max_words or windows > max_windows
    EVEN_MODULUS = 2
    ZERO_MODULUS = 3
    BASE_NOT_BELOW_MODULUS = 4
    BAD_FRAME = 5           # ``last`` early, or missing on the final beat
    NO_PROGRAM = 6          # a packet without a BEGIN before it


def request_layout(width: int) -> data.StructLayout:
    return data.StructLayout({"data": width, "last": 1})


def result_layout(width: int) -> data.StructLayout:
    return data.StructLayout({"tag": width, "status": Status, "data": width, "last": 1})


class ModExpCore(Checked, wiring.Component):
    """One lane behind tagged request/result streams, with input checking.

    Parameters are those of :class:`~montpipe.hdl.modexp.ModExpLane`.
    """

    @classmethod
    def check(cls, **arguments) -> None:
        ModExpLane.check(**arguments)

    def __init__(self, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 64, *, ecp5_dsp: bool = False) -> None:
        self._width, self._max_words = width, max_words
        self._window, self._max_windows = window, max_windows
        self.engine = ModExpLane(width, max_words, window, max_windows, ecp5_dsp=ecp5_dsp)
        super().__init__({
            "i_req": In(stream.Signature(request_layout(width))),
            "o_res": Out(stream.Signature(result_layout(width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        W, S, NW = self._width, self._max_words, self._max_windows
        width = W

        tag = Signal(W)
        s = Signal(range(S + 1))
        windows = Signal(range(NW + 1))
        const_time = Signal()
        command = Signal(Command)
        program = Signal()                      # a BEGIN's modulus is in the lane
        program_s = Signal(range(S + 1))
        mprime = Signal(W)
        k = Signal(range(max(S, NW, HEADER_BEATS) + 1))
        status = Signal(Status)
        zero = Signal()
        borrow = Signal()
        phase = Signal()
        # base < m is decided word by word with a borrow, one cycle behind the words: the base
        # word and m's word (a block-RAM read) are registered first, then compared, so nothing
        # but a register follows the read
        base_word, mod_word, compare = Signal(width), Signal(width), Signal()
        base_high = Signal()    # the last request's base was not below m
        borrow_next = base_word < mod_word + borrow

        req, res = self.i_req, self.o_res
        beat = req.p.data
        m.d.sync += compare.eq(0)
        with m.If(compare):
            m.d.sync += borrow.eq(borrow_next)
        # the engine's read address is k in every state (only Base and Send result use the
        # words read): a register, not a decode of the state, in front of the block RAM
        m.d.comb += [
            eng.words.eq(s), eng.mprime.eq(mprime), eng.windows.eq(windows),
            eng.const_time.eq(const_time), eng.rd_addr.eq(k), eng.command.eq(command),
        ]
        with_modulus = (command == Command.MODEXP) | (command == Command.BEGIN)
        with_operand = (command == Command.LOAD) | (command == Command.MUL)

        # a taken word is written into the engine a cycle later, from registers, so the decode
        # of the state and the handshake do not sit in front of the block RAM's write port; the
        # last one lands in the cycle the engine could start, before it reads
        wr_en, wr_target = Signal(), Signal(Target)
        wr_addr, wr_data = Signal.like(eng.wr_addr), Signal(W)
        m.d.sync += wr_en.eq(0)
        m.d.comb += [eng.wr_en.eq(wr_en), eng.wr_target.eq(wr_target),
                     eng.wr_addr.eq(wr_addr), eng.wr_data.eq(wr_data)]

        def load(target, addr):
            with m.If(req.valid & req.ready):
                m.d.sync += [wr_en.eq(1), wr_target.eq(target), wr_addr.eq(addr),
                             wr_data.eq(beat)]

        def end_of_section(count, next_state, final):
            """After beat `count - 1` of a section: check `last` and move on."""
            with m.If(k == count - 1):
                m.d.sync += k.eq(0)
                with m.If(final):
                    with m.If(req.p.last):
                        m.next = next_state
                    with m.Else():
                        m.d.sync += status.eq(Status.BAD_FRAME)
                        m.next = "Drain"
                with m.Elif(req.p.last):
                    m.d.sync += status.eq(Status.BAD_FRAME)
                    m.next = "Send error"
                with m.Else():
                    m.next = next_state
            with m.Else():
                m.d.sync += k.eq(k + 1)
                with m.If(req.p.last):
                    m.d.sync += status.eq(Status.BAD_FRAME)
                    m.next = "Send error"

        with m.FSM():
            with m.State("Header"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(k != 0)]
                with m.If(req.valid):
                    with m.Switch(k):
                        with m.Case(0):
                            m.d.sync += [tag.eq(beat), status.eq(Status.OK)]
                        with m.Case(1):
                            m.d.sync += s.eq(beat)
                            with m.If((beat < 3) | (beat > S)):
                                m.d.sync += status.eq(Status.BAD_LENGTH)
                        with m.Case(2):
                            m.d.sync += windows.eq(beat)
                            with m.If(beat > NW):
                                m.d.sync += status.eq(Status.BAD_LENGTH)
                        with m.Case(3):
                            m.d.sync += [const_time.eq(beat[0]), command.eq(beat[1:4])]
                        with m.Case(4):
                            m.d.sync += mprime.eq(beat)
                    with m.If(k == HEADER_BEATS - 1):
                        m.d.sync += [k.eq(0), zero.eq(1)]
                        with m.If(with_modulus):
                            with m.If(req.p.last):
                                m.d.sync += status.eq(Status.BAD_FRAME)
                                m.next = "Send error"
                            with m.Elif(status != Status.OK):
                                m.next = "Drain"
                            with m.Else():
                                # the modulus is overwritten: no chain of products goes on
                                m.d.sync += program.eq(0)
                                m.next = "Modulus"
                        with m.Else():
                            # a packet: checked against its BEGIN, then its operand or nothing
                            with m.If((status != Status.OK) | (command == Command.NOP)):
                                pass
                            with m.Elif(~program):
                                m.d.sync += status.eq(Status.NO_PROGRAM)
                            with m.Elif(s != program_s):
                                m.d.sync += status.eq(Status.BAD_LENGTH)
                            with m.If(with_operand & req.p.last):
                                m.d.sync += status.eq(Status.BAD_FRAME)
                                m.next = "Send error"
                            with m.Elif(~with_operand & ~req.p.last):
                                m.d.sync += status.eq(Status.BAD_FRAME)
                                m.next = "Drain"
                            with m.Elif(~with_operand):
                                m.next = "Decide"
                            with m.Elif((status != Status.OK) | ~program | (s != program_s)):
                                m.next = "Drain"
                            with m.Else():
                                m.next = "Operand"
                    with m.Else():
                        m.d.sync += k.eq(k + 1)
                        with m.If(req.p.last):
                            m.d.sync += status.eq(Status.BAD_FRAME)
                            m.next = "Send error"
            with m.State("Modulus"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(1)]
                load(Target.MODULUS, k)
                with m.If(req.valid):
                    with m.If(beat != 0):
                        m.d.sync += zero.eq(0)
                    with m.If((k == 0) & ~beat[0]):
                        m.d.sync += status.eq(Status.EVEN_MODULUS)
                    with m.If(command == Command.BEGIN):
                        end_of_section(s, "Decide", 1)
                    with m.Else():
                        end_of_section(s, "R2", 0)
            with m.State("R2"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(1)]
                load(Target.R2, k)
                with m.If(req.valid):
                    with m.If(k == 0):
                        with m.If(zero):
                            m.d.sync += status.eq(Status.ZERO_MODULUS)
                        m.d.sync += [borrow.eq(0), phase.eq(0)]
                    end_of_section(s, "Base", 0)
            with m.State("Base"):
                # two cycles a word: read m[k], then take base[k] and subtract with borrow
                m.d.comb += self.busy.eq(1)
                with m.If(~phase):
                    m.d.sync += phase.eq(1)
                with m.Else():
                    m.d.comb += req.ready.eq(1)
                    load(Target.BASE, k)
                    with m.If(req.valid):
                        m.d.sync += [phase.eq(0), base_word.eq(beat),
                                     mod_word.eq(eng.rd_mod_data), compare.eq(1)]
                        end_of_section(s, "Check base", windows == 0)
            with m.State("Check base"):
                m.d.comb += self.busy.eq(1)
                # borrow out of base - m means base < m (the last word's compare is this
                # cycle): registered, and acted on in Decide, so the compare chain does not
                # also drive the status register's enable
                m.d.sync += base_high.eq(~borrow_next)
                with m.If(windows == 0):
                    m.next = "Decide"
                with m.Else():
                    m.next = "Digits"
            with m.State("Operand"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(1)]
                load(Mux(command == Command.LOAD, Target.ACC, Target.BASE), k)
                with m.If(req.valid):
                    end_of_section(s, "Decide", 1)
            with m.State("Digits"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(1)]
                load(Target.EXPONENT, k)
                with m.If(req.valid):
                    end_of_section(windows, "Decide", 1)
            with m.State("Decide"):
                m.d.comb += self.busy.eq(1)
                with m.If((status == Status.OK) & (command == Command.NOP)):
                    m.next = "Send acknowledgement"
                with m.Elif((status == Status.OK) & (~base_high | (command != Command.MODEXP))):
                    m.d.comb += eng.start.eq(1)
                    with m.If(command == Command.BEGIN):
                        m.d.sync += [program.eq(1), program_s.eq(s)]
                    m.next = "Run"
                with m.Else():
                    with m.If(status == Status.OK):
                        m.d.sync += status.eq(Status.BASE_NOT_BELOW_MODULUS)
                    m.next = "Send error"
            with m.State("Run"):
                m.d.comb += self.busy.eq(1)
                with m.If(eng.done):
                    m.d.sync += [k.eq(0), phase.eq(0)]
                    with m.If((command == Command.MODEXP) | (command == Command.OUT)
                              | (command == Command.RAW)):
                        m.next = "Send result"
                    with m.Else():
                        m.next = "Send acknowledgement"
            with m.State("Send acknowledgement"):
                m.d.comb += [
                    self.busy.eq(1), res.valid.eq(1), res.p.tag.eq(tag),
                    res.p.status.eq(Status.OK), res.p.data.eq(0), res.p.last.eq(1),
                ]
                with m.If(res.ready):
                    m.next = "Header"
            with m.State("Send result"):
                m.d.comb += self.busy.eq(1)
                with m.If(~phase):
                    m.d.sync += phase.eq(1)  # the word's read is under way
                with m.Else():
                    m.d.comb += [
                        res.valid.eq(1), res.p.tag.eq(tag), res.p.status.eq(Status.OK),
                        res.p.data.eq(eng.rd_data), res.p.last.eq(k == s - 1),
                    ]
                    with m.If(res.ready):
                        m.d.sync += [phase.eq(0), k.eq(k + 1)]
                        with m.If(k == s - 1):
                            m.d.sync += k.eq(0)
                            m.next = "Header"
            with m.State("Drain"):
                m.d.comb += [req.ready.eq(1), self.busy.eq(1)]
                with m.If(req.valid & req.p.last):
                    m.next = "Send error"
            with m.State("Send error"):
                m.d.comb += [
                    self.busy.eq(1), res.valid.eq(1), res.p.tag.eq(tag),
                    res.p.status.eq(status), res.p.data.eq(0), res.p.last.eq(1),
                ]
                with m.If(res.ready):
                    m.d.sync += k.eq(0)
                    m.next = "Header"
        return m

