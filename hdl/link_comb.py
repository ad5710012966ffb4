"""The link's comb: powers by a Lim–Lee comb over a table the link holds, run as streams of
product packets to the lanes (``docs/gateware-plan.md``, "Device operations").

A comb of ``steps`` steps over ``tables`` tables of ``2^bits`` entries computes, for each job,
``acc = T[0][d(b−1,0)]·…·T[v−1][d(b−1,v−1)]``, then per later step ``acc = acc²·Π_t T[t][d]``,
then converts ``acc`` out. The table (Montgomery form, under the job's modulus) is written by the
host once (``TABLE_WRITE``); the jobs' digits come from the request buffer, one byte a digit,
job after job, each job's from the most significant step down and, within a step, table 0
first. Every job gets a lane: the comb deals packets in rounds of one packet a lane — ``BEGIN``,
``LOAD``, ``MUL`` …, ``SQUARE``, ``MUL`` …, ``OUT`` — and a lane without a job gets ``NOP``, so
a job keeps its lane from round to round whatever lane the round starts on (the array deals
packet ``k`` to lane ``k mod lanes``). Every job multiplies by an entry in every step and
table, zero digits included (entry 0 of each table is the Montgomery one), so a job's time does
not depend on its digits.

Packets are offered as fast as the array's request chain takes them (a beat every two cycles):
the first header beat the cycle after the last beat of the packet before, each operand word
the cycle after it is read; the digit of a packet is read while its header goes out. The table
spans dozens of block RAMs: their address comes straight from a register (the next word's,
counted ahead), and their outputs meet in a wide multiplexer whose word is registered before it
is offered, so neither the address's fan-out nor that multiplexer shares a cycle with other
logic. An operand word is read a cycle ahead (while the header's last beat or the word before
is offered), so it still takes the same two cycles.
"""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.model import Command
from .core import HEADER_BEATS, request_layout
from .link_common import times

__all__ = ["CombSequencer", "WordCount"]


def WordCount(max_words: int) -> data.StructLayout:
    """A queued result's length and whether it answers a comb job (its response's opcode)."""
    return data.StructLayout({"words": range(max_words + 1), "comb": 1})


#: where a comb frame's digits start in its body: opcode, tag, context, steps, tables, bits, jobs
DIGITS_OFFSET = 8


class CombSequencer(wiring.Component):
    """The comb table and the packet streams of one comb frame.

    Parameters
    ----------
    width, max_words:
        The array's word width and most words a modulus takes.
    lanes:
        The array's lanes (a round is one packet a lane).
    table_entries:
        Operands the table holds.
    buffer_bytes:
        The request buffer's size.

    Attributes
    ----------
    start : In(1)
        Pulse with the frame's fields set; they hold until ``busy`` falls.
    tag, words, mprime, steps, tables, bits, jobs, job_bytes : In
        The frame's tag (job ``j`` answers with ``tag + j``), the context's word count and
        ``m'``, the comb's shape, and ``steps × tables``.
    busy : Out(1)
        Packets are being sent.
    tw_en, tw_entry, tw_word, tw_data : In
        A table write (the executor's ``TABLE_WRITE``), word ``tw_word`` of entry ``tw_entry``.
    buf_addr, buf_data :
        The request buffer (the digits), one cycle of latency.
    m_addr, m_data :
        The context's modulus words (for ``BEGIN``), one cycle of latency.
    o_req : Out(stream.Signature(request_layout(width)))
        The packets, to the array.
    o_words : Out(stream.Signature(WordCount(max_words)))
        A result's length for the responder, offered with each ``OUT`` packet's last beat,
        which waits until it is taken.
    """

    def __init__(self, *, width: int, max_words: int, lanes: int, table_entries: int,
                 buffer_bytes: int) -> None:
        self._width, self._max_words, self._lanes = width, max_words, lanes
        self._entries = table_entries
        super().__init__({
            "start": In(1),
            "tag": In(16),
            "words": In(range(max_words + 1)),
            "mprime": In(width),
            "steps": In(8),
            "tables": In(8),
            "bits": In(4),
            "jobs": In(8),
            "job_bytes": In(16),
            "busy": Out(1),
            "tw_en": In(1),
            "tw_entry": In(range(table_entries)),
            "tw_word": In(range(max_words)),
            "tw_data": In(width),
            "buf_addr": Out(range(buffer_bytes + 1)),
            "buf_data": In(8),
            "m_addr": Out(range(max_words)),
            "m_data": In(width),
            "o_req": Out(stream.Signature(request_layout(width))),
            "o_words": Out(stream.Signature(WordCount(max_words))),
        })

    def elaborate(self, platform):
        m = Module()
        W, S, P = self._width, self._max_words, self._lanes

        table = Memory(shape=W, depth=self._entries * S, init=[])
        m.submodules.table = table
        tw, tr = table.write_port(), table.read_port()
        m.d.comb += [tw.addr.eq(times(self.tw_entry, S) + self.tw_word),
                     tw.data.eq(self.tw_data), tw.en.eq(self.tw_en)]

        kind = Signal(Command)          # the round's command (a lane without a job: NOP)
        step = Signal(8)
        t = Signal(8)
        j = Signal(range(P))
        k = Signal(range(max(S, HEADER_BEATS) + 1))
        header = Signal()               # sending the header (else the operand)
        phase = Signal()                # operand word: 0 taken in, 1 offered
        row_off = Signal(16)            # digit (step, t) of job 0 in the buffer
        dig_off = Signal(16)            # … of job j
        digit = Signal(8)
        raddr = Signal(range(self._entries * S))    # the table word read next
        maddr = Signal(range(S))                    # the modulus word read next
        fetch = Signal(3)               # the digit read's stages
        req = self.o_req

        has_job = j < self.jobs
        command = Mux(has_job, kind, Command.NOP)
        operand = has_job & ((kind == Command.BEGIN) | (kind == Command.LOAD) |
                             (kind == Command.MUL))
        tag = (self.tag + j)[:16]
        header_beat = Array([tag, self.words, 0, command << 1, self.mprime])[k[:3]]

        # the digit: buffer address at packet start, the byte a cycle later, registered, then
        # its table entry's first word address (in place from the header's fourth beat); the
        # addresses step to the next word as a word is taken in
        m.d.comb += [self.buf_addr.eq(dig_off), self.m_addr.eq(maddr), tr.addr.eq(raddr)]
        m.d.sync += fetch.eq(fetch << 1)
        with m.If(fetch[1]):
            m.d.sync += digit.eq(self.buf_data & ((Const(1, 9) << self.bits) - 1)[:8])
        with m.If(fetch[2]):
            m.d.sync += raddr.eq(times((t << self.bits) | digit, S))

        def next_packet():
            """After a packet's last beat: the next lane, or the next round."""
            m.d.sync += [k.eq(0), header.eq(1), phase.eq(0), fetch.eq(1), maddr.eq(0)]
            with m.If(j == P - 1):
                m.d.sync += j.eq(0)
                with m.Switch(kind):
                    with m.Case(Command.BEGIN):
                        m.d.sync += [kind.eq(Command.LOAD), dig_off.eq(row_off)]
                    with m.Case(Command.LOAD, Command.MUL):
                        m.d.sync += [row_off.eq(row_off + 1), dig_off.eq(row_off + 1)]
                        with m.If(t != self.tables - 1):
                            m.d.sync += [t.eq(t + 1), kind.eq(Command.MUL)]
                        with m.Elif(step == 0):
                            m.d.sync += kind.eq(Command.OUT)
                        with m.Else():
                            m.d.sync += [step.eq(step - 1), t.eq(0), kind.eq(Command.SQUARE)]
                    with m.Case(Command.SQUARE):
                        m.d.sync += [kind.eq(Command.MUL), dig_off.eq(row_off)]
                    with m.Default():                   # OUT: the comb is done
                        m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += [j.eq(j + 1), dig_off.eq(dig_off + self.job_bytes)]

        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), kind.eq(Command.BEGIN), step.eq(self.steps - 1),
                         t.eq(0), j.eq(0), k.eq(0), header.eq(1), phase.eq(0), maddr.eq(0),
                         row_off.eq(DIGITS_OFFSET), dig_off.eq(DIGITS_OFFSET)]
        with m.Elif(self.busy & header):
            last_of_header = k == HEADER_BEATS - 1
            is_out = command == Command.OUT
            # an OUT's last beat waits for room in the responder's queue of result lengths
            offer = ~(last_of_header & is_out) | self.o_words.ready
            m.d.comb += [req.valid.eq(offer), req.payload.data.eq(header_beat),
                         req.payload.last.eq(last_of_header & ~operand)]
            with m.If(req.valid & req.ready):
                with m.If(last_of_header & is_out):
                    m.d.comb += [self.o_words.valid.eq(1),
                                 self.o_words.payload.words.eq(self.words),
                                 self.o_words.payload.comb.eq(1)]
                with m.If(~last_of_header):
                    m.d.sync += k.eq(k + 1)
                with m.Elif(operand):
                    m.d.sync += [k.eq(0), header.eq(0), phase.eq(0)]
                with m.Else():
                    next_packet()
        with m.Elif(self.busy):
            # operand word k: taken in from the memory this cycle (read the cycle before),
            # offered from the register from the next
            word = Signal(W)
            last_word = k == self.words - 1
            with m.If(~phase):
                m.d.sync += [phase.eq(1),
                             word.eq(Mux(kind == Command.BEGIN, self.m_data, tr.data))]
                with m.If(~last_word):
                    m.d.sync += [raddr.eq(raddr + 1), maddr.eq(maddr + 1)]
            with m.Else():
                m.d.comb += [req.valid.eq(1), req.payload.data.eq(word),
                             req.payload.last.eq(last_word)]
                with m.If(req.ready):
                    m.d.sync += [phase.eq(0), k.eq(k + 1)]
                    with m.If(last_word):
                        next_packet()
        return m
