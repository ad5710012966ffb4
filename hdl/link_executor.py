"""The host link's executor: acts on verified request frames (``docs/protocol.md``)."""

from __future__ import annotations

from contextlib import contextmanager

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.wire import COMB_MAX_DIGITS, LinkStatus, Opcode, word_bytes
from .core import request_layout
from .link_comb import DIGITS_OFFSET, CombSequencer, WordCount
from .link_common import Contents, FrameBufferSignature, Response, times

__all__ = ["LinkExecutor"]


class LinkExecutor(wiring.Component):
    """Reads each verified frame from the request buffer and acts on it.

    Capabilities, status and reset are answered at once. A context load checks its lengths
    and writes ``m`` and ``R² mod m`` into the context memory (``m'`` and the word count into
    registers). A table write checks its context, entry and length and writes the entry into
    the :class:`~montpipe.hdl.link_comb.CombSequencer`'s table, which then belongs to that
    context until another context writes it, the context is loaded again, or a reset; a comb
    checks its context, table and shape, then lets the sequencer send its packets. An
    exponentiation checks its context and lengths, then streams the core's request frame
    (header, ``m``, ``R²``, base, exponent digits) from the context memory and the request
    buffer into the array, and queues its word count for the responder, which sizes the
    result's frame by it. Anything wrong gets an error response with the frame's
    tag.

    Parameters
    ----------
    width, max_words:
        The array's word width and most words a modulus takes.
    contexts:
        Moduli held at once.
    buffer_bytes:
        The request buffer's size (the longest frame body).
    lanes:
        The array's lanes (a comb runs at most one job a lane).
    table_entries:
        The comb table's entries (0: no comb; its opcodes are unknown).

    :class:`~montpipe.hdl.link.FrameLink` checks these before it builds the executor.

    Attributes
    ----------
    frame : In(FrameBufferSignature(buffer_bytes))
        The frame to act on, released once it is answered or fed to the array.
    o_req : Out(stream.Signature(request_layout(width)))
        The core's request frames, to the array.
    o_response : Out(stream.Signature(Response))
        The executor's own responses (everything but exponentiation results).
    o_words : Out(stream.Signature(WordCount(max_words)))
        Each result's word count (and whether it answers a comb), in request order, offered
        when its request frame is sent. The executor refuses an exponentiation with ``BUSY``
        unless ``ready`` was high when it checked the frame, so a count it offers is always
        taken; the comb's ``OUT`` packets wait for ``ready``.
    busy : Out(1)
        A frame is being acted on, or a response waits.
    """

    def __init__(self, *, width: int, max_words: int, contexts: int,
                 buffer_bytes: int, lanes: int = 1, table_entries: int = 0) -> None:
        self._width, self._max_words, self._contexts = width, max_words, contexts
        self._buffer_bytes = buffer_bytes
        self._lanes, self._entries = lanes, table_entries
        super().__init__({
            "frame": In(FrameBufferSignature(buffer_bytes)),
            "o_req": Out(stream.Signature(request_layout(width))),
            "o_response": Out(stream.Signature(Response)),
            "o_words": Out(stream.Signature(WordCount(max_words))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, S, C = self._width, self._max_words, self._contexts
        wb = word_bytes(W)

        ctx_mem = Memory(shape=W, depth=C * 2 * S, init=[])
        m.submodules.ctx_mem = ctx_mem
        ctx_w, ctx_r = ctx_mem.write_port(), ctx_mem.read_port()
        ctx_base = Array(Const(k * 2 * S, range(C * 2 * S)) for k in range(C))
        ctx_waddr = Signal(range(C * 2 * S))
        ctx_s = Array(Signal(range(S + 1), name=f"ctx_s{k}") for k in range(C))
        ctx_mp = Array(Signal(W, name=f"ctx_mp{k}") for k in range(C))
        ctx_ok = Array(Signal(name=f"ctx_ok{k}") for k in range(C))

        frame = self.frame
        req = self.o_req
        TE = self._entries
        if TE:
            m.submodules.comb = comb = CombSequencer(
                width=W, max_words=S, lanes=self._lanes, table_entries=TE,
                buffer_bytes=self._buffer_bytes)
        table_ok = Signal()
        table_ctx = Signal(8)
        hdr = Array(Signal(8, name=f"hdr{k}") for k in range(7))
        k = Signal(16)
        raddr = Signal(range(self._buffer_bytes + 1))
        in_comb = Signal()      # the sequencer has the buffer, the context memory and the array
        if TE:
            m.d.comb += frame.addr.eq(Mux(in_comb, comb.buf_addr, raddr))
        else:
            m.d.comb += frame.addr.eq(raddr)
        # the buffer's byte is registered before anything uses it (nothing but a register
        # after a block-RAM read): byte x is on `buf_byte` two cycles after raddr = x
        buf_byte = Signal(8)
        m.d.sync += buf_byte.eq(frame.data)
        blen = frame.length
        resp = self.o_response
        with m.If(resp.ready):
            m.d.sync += resp.valid.eq(0)
        op = hdr[0]
        tag = Signal(16)
        m.d.comb += tag.eq(hdr[1] | (hdr[2] << 8))
        ctx = Signal(8)
        s = Signal(16)
        windows = Signal(16)
        acc = Signal(W)
        nbyte = Signal(range(wb + 1))
        word = Signal(16)
        phase = Signal(3)       # beats of the core's frame: 0 header, 1 m, 2 R², 3 base, 4 digits
        beat = Signal(W)
        beat_last, beat_end = Signal(), Signal()
        entry = Signal(16)                      # a table write's entry
        jobs, count = Signal(8), Signal(9)      # a comb's jobs, and a counter for its checks
        job_bytes, total = Signal(16), Signal(16)

        def respond(status, contents=Contents.NOTHING):
            m.d.sync += [resp.valid.eq(1), resp.payload.op.eq(op | 0x80),
                         resp.payload.tag.eq(tag), resp.payload.status.eq(status),
                         resp.payload.contents.eq(contents)]
            m.next = "Respond"

        def read_ahead(name, then):
            """Two states stepping the buffer address while its first byte is read (byte x is
            on `buf_byte` two cycles after raddr = x), then state ``then``."""
            with m.State(name):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = f"{name} 2"
            with m.State(f"{name} 2"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = then

        @contextmanager
        def checked(no_context, bad_length):
            """The checks every command with fields makes, in order (a header too short, no
            context, a length out of range, a frame shorter or longer than its fields); the
            body runs when all pass."""
            with m.If(no_header):
                respond(LinkStatus.SHORT_FRAME)
            with m.Elif(no_context):
                respond(LinkStatus.NO_CONTEXT)
            with m.Elif(bad_length):
                respond(LinkStatus.BAD_LENGTH)
            with m.Elif(too_short):
                respond(LinkStatus.SHORT_FRAME)
            with m.Elif(too_long):
                respond(LinkStatus.LONG_FRAME)
            with m.Else():
                yield

        def settle(name, then):
            """Two states while the byte at raddr is read, then state ``then``."""
            with m.State(name):
                m.next = f"{name} 2"
            with m.State(f"{name} 2"):
                m.next = then

        def assemble_byte():
            """Take `buf_byte` as byte `nbyte` of the word in `acc`; returns the word so far
            (whole when ``nbyte == wb - 1``)."""
            assembled = Signal(W)
            m.d.comb += assembled.eq(acc | (buf_byte << (8 * nbyte)))
            m.d.sync += [acc.eq(assembled), nbyte.eq(nbyte + 1), raddr.eq(raddr + 1)]
            return assembled

        def measure(name, length, header, then, extra=()):
            """The frame's length against ``length`` (a header of ``header`` bytes at least):
            the expected length is registered, then compared with the frame's into registers,
            so that no adder or compare sits in front of the checks' decisions."""
            with m.State(f"{name} length"):
                m.d.sync += [want.eq(length), have.eq(blen)]
                m.next = f"{name} compare"
            with m.State(f"{name} compare"):
                m.d.sync += [no_header.eq(have < header), too_short.eq(have < want),
                             too_long.eq(have > want), *extra]
                m.next = then

        load_len = 3 + 3 + wb + times(s, 2 * wb)
        want, have = Signal(32), Signal(16)
        no_header, too_short, too_long, bad_s = Signal(), Signal(), Signal(), Signal()
        exp_len = 3 + 4 + times(s, wb) + windows
        with m.FSM(name="exec_fsm") as exec_fsm:
            with m.State("Idle"):
                m.d.sync += [raddr.eq(0), k.eq(0)]
                # byte 0 must have been addressed for a cycle (raddr may still hold the last
                # frame's position on the cycle after a release)
                with m.If(frame.valid & (raddr == 0)):
                    m.d.sync += raddr.eq(1)
                    m.next = "Header wait"
            with m.State("Header wait"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = "Header"
            with m.State("Header"):
                # byte k is on `buf_byte` while raddr = k + 2 is read
                m.d.sync += [hdr[k].eq(buf_byte), k.eq(k + 1), raddr.eq(raddr + 1)]
                with m.If(k == 6):
                    m.next = "Dispatch"
            with m.State("Dispatch"):
                m.d.sync += ctx.eq(hdr[3])
                with m.If((op == Opcode.CAPS) | (op == Opcode.STATUS) | (op == Opcode.RESET)):
                    with m.If(blen != 3):
                        respond(LinkStatus.LONG_FRAME)
                    with m.Elif(op == Opcode.CAPS):
                        respond(LinkStatus.OK, Contents.CAPABILITIES)
                    with m.Elif(op == Opcode.STATUS):
                        respond(LinkStatus.OK, Contents.COUNTERS)
                    with m.Else():
                        m.d.sync += [ctx_ok[i].eq(0) for i in range(C)]
                        m.d.sync += table_ok.eq(0)
                        respond(LinkStatus.OK)
                with m.Elif(op == Opcode.LOAD_CONTEXT):
                    m.d.sync += s.eq(hdr[4] | (hdr[5] << 8))
                    m.next = "Load length"
                with m.Elif(op == Opcode.MODEXP):
                    m.d.sync += [s.eq(ctx_s[hdr[3]]),
                                 windows.eq(hdr[5] | (hdr[6] << 8))]
                    m.next = "Modexp length"
                with m.Elif((op == Opcode.TABLE_WRITE) & bool(TE)):
                    m.d.sync += [s.eq(ctx_s[hdr[3]]), entry.eq(hdr[4] | (hdr[5] << 8))]
                    m.next = "Table length"
                with m.Elif((op == Opcode.COMB) & bool(TE)):
                    m.d.sync += [s.eq(ctx_s[hdr[3]]), raddr.eq(DIGITS_OFFSET - 1),
                                 job_bytes.eq(0), total.eq(0), count.eq(0)]
                    m.next = "Comb jobs wait"
                with m.Else():
                    respond(LinkStatus.UNKNOWN_OPCODE)
            measure("Table", 6 + times(s, wb), 6, "Check table")
            with m.State("Check table"), checked((ctx >= C) | ~ctx_ok[ctx], entry >= max(TE, 1)):
                # the table is this context's from now on (a part written under another
                # context's modulus is the host's to rewrite)
                m.d.sync += [raddr.eq(6), nbyte.eq(0), word.eq(0), acc.eq(0),
                             table_ok.eq(1), table_ctx.eq(ctx)]
                m.next = "Table wait"
            read_ahead("Table wait", "Table")
            with m.State("Table"):
                assembled_t = assemble_byte()
                with m.If(nbyte == wb - 1):
                    m.d.sync += [nbyte.eq(0), acc.eq(0), word.eq(word + 1)]
                    if TE:
                        m.d.comb += [comb.tw_en.eq(1), comb.tw_entry.eq(entry),
                                     comb.tw_word.eq(word), comb.tw_data.eq(assembled_t)]
                    with m.If(word == s - 1):
                        respond(LinkStatus.OK)
            # a comb: its job count (byte 7), steps x tables and the frame length it implies
            # by repeated addition (no multiplier in front of the checks), then the checks
            settle("Comb jobs wait", "Comb jobs")
            with m.State("Comb jobs"):
                m.d.sync += jobs.eq(buf_byte)
                m.next = "Comb product"
            with m.State("Comb product"):
                # job_bytes = steps x tables, then total = jobs x job_bytes, a step a cycle
                with m.If(count < hdr[5]):
                    m.d.sync += [job_bytes.eq(job_bytes + hdr[4]), count.eq(count + 1)]
                with m.Elif(count < hdr[5] + jobs):
                    m.d.sync += [total.eq(total + job_bytes), count.eq(count + 1)]
                with m.Else():
                    m.d.sync += [want.eq(DIGITS_OFFSET + total), have.eq(blen)]
                    m.next = "Comb compare"
            with m.State("Comb compare"):
                m.d.sync += [no_header.eq(have < DIGITS_OFFSET), too_short.eq(have < want),
                             too_long.eq(have > want),
                             bad_s.eq((hdr[4] == 0) | (hdr[5] == 0) | (hdr[6] == 0) |
                                      (hdr[6] > 8) | (jobs == 0) | (jobs > self._lanes) |
                                      (job_bytes > COMB_MAX_DIGITS) |
                                      ((hdr[5] << hdr[6][:4]) > TE))]
                m.next = "Check comb"
            with m.State("Check comb"), \
                    checked((ctx >= C) | ~ctx_ok[ctx] | ~table_ok | (table_ctx != ctx), bad_s):
                if TE:
                    m.d.comb += comb.start.eq(1)
                m.d.sync += in_comb.eq(1)
                m.next = "Comb"
            with m.State("Comb"):
                if TE:
                    with m.If(~comb.busy):
                        m.d.sync += in_comb.eq(0)
                        m.d.comb += frame.release.eq(1)
                        m.next = "Idle"
            measure("Load", load_len, 6, "Check load", [bad_s.eq((s < 3) | (s > S))])
            measure("Modexp", exp_len, 7, "Check modexp")
            with m.State("Check load"), checked(ctx >= C, bad_s):
                m.d.sync += [raddr.eq(6), k.eq(0), nbyte.eq(0), word.eq(0), acc.eq(0),
                             ctx_ok[ctx].eq(0), ctx_waddr.eq(ctx_base[ctx])]
                with m.If(table_ctx == ctx):
                    m.d.sync += table_ok.eq(0)      # the table was under the old modulus
                m.next = "Load wait"
            read_ahead("Load wait", "Load")
            with m.State("Load"):
                # bytes from offset 6: m' (wb), m (s words), R² (s words), wb bytes a word
                assembled = assemble_byte()
                with m.If(nbyte == wb - 1):
                    m.d.sync += [nbyte.eq(0), acc.eq(0), word.eq(word + 1)]
                    with m.If(word == 0):
                        m.d.sync += ctx_mp[ctx].eq(assembled)
                    with m.Else():
                        # word 1..s: m, s+1..2s: R² (at S + k in the context); the address is
                        # a register stepped word by word, so that no add or compare sits in
                        # front of the block RAM
                        m.d.comb += [ctx_w.addr.eq(ctx_waddr), ctx_w.data.eq(assembled),
                                     ctx_w.en.eq(1)]
                        with m.If(word == s):
                            m.d.sync += ctx_waddr.eq(ctx_base[ctx] + S)
                        with m.Else():
                            m.d.sync += ctx_waddr.eq(ctx_waddr + 1)
                    with m.If(word == 2 * s):
                        m.d.sync += [ctx_s[ctx].eq(s), ctx_ok[ctx].eq(1)]
                        respond(LinkStatus.OK)
            with m.State("Check modexp"):
                with m.If(no_header):
                    respond(LinkStatus.SHORT_FRAME)
                with m.Elif((ctx >= C) | ~ctx_ok[ctx]):
                    respond(LinkStatus.NO_CONTEXT)
                with m.Elif(too_short):
                    respond(LinkStatus.SHORT_FRAME)
                with m.Elif(too_long):
                    respond(LinkStatus.LONG_FRAME)
                with m.Elif(~self.o_words.ready):
                    respond(LinkStatus.BUSY)       # more in flight than the word-count queue
                with m.Else():
                    m.d.sync += [phase.eq(0), k.eq(0)]
                    m.next = "Beat"
            with m.State("Beat"):
                # prepare the next beat of the core's request frame, and decide now (in
                # registers) whether it ends its section or the frame: k and phase hold until
                # it is sent, so no compare sits in front of the array's handshake
                counts = Array([Const(5, 16), s, s, s, windows])
                m.d.sync += [
                    beat_last.eq((phase == 4) & (k == windows - 1) |
                                 (phase == 3) & (k == s - 1) & (windows == 0)),
                    beat_end.eq(k == counts[phase] - 1),
                ]
                with m.Switch(phase):
                    with m.Case(0):
                        m.d.sync += beat.eq(Array([tag, s, windows, hdr[4][0],
                                                   ctx_mp[ctx]])[k[:3]])
                        m.next = "Send"
                    with m.Case(1, 2):
                        m.d.comb += ctx_r.addr.eq(ctx_base[ctx] + Mux(phase == 1, 0, S) + k)
                        m.next = "Context word"
                    with m.Case(3):
                        m.d.sync += [raddr.eq(7 + times(k, wb)), nbyte.eq(0), acc.eq(0)]
                        m.next = "Base wait"
                    with m.Case(4):
                        m.d.sync += raddr.eq(7 + times(s, wb) + k)
                        m.next = "Digit wait"
            with m.State("Context word"):
                m.d.sync += beat.eq(ctx_r.data)
                m.next = "Send"
            read_ahead("Base wait", "Base")
            with m.State("Base"):
                assembled_b = assemble_byte()
                with m.If(nbyte == wb - 1):
                    m.d.sync += beat.eq(assembled_b)
                    m.next = "Send"
            settle("Digit wait", "Digit")
            with m.State("Digit"):
                m.d.sync += beat.eq(buf_byte)
                m.next = "Send"
            with m.State("Send"):
                m.d.comb += [req.valid.eq(1), req.payload.data.eq(beat),
                             req.payload.last.eq(beat_last)]
                with m.If(req.ready):
                    with m.If(beat_last):
                        m.d.comb += [self.o_words.valid.eq(1),
                                     self.o_words.payload.words.eq(s),
                                     self.o_words.payload.comb.eq(0), frame.release.eq(1)]
                        m.next = "Idle"
                    with m.Elif(beat_end):
                        m.d.sync += [k.eq(0), phase.eq(Mux((phase == 3) & (windows == 0), 4,
                                                           phase + 1))]
                        m.next = "Beat"
                    with m.Else():
                        m.d.sync += k.eq(k + 1)
                        m.next = "Beat"
            with m.State("Respond"):
                with m.If(~resp.valid):
                    m.d.comb += frame.release.eq(1)
                    m.next = "Idle"

        if TE:
            # the sequencer's fields, held for the comb: the context's, and the frame's header
            m.d.comb += [comb.tag.eq(tag), comb.words.eq(s), comb.mprime.eq(ctx_mp[ctx]),
                         comb.steps.eq(hdr[4]), comb.tables.eq(hdr[5]), comb.bits.eq(hdr[6]),
                         comb.jobs.eq(jobs), comb.job_bytes.eq(job_bytes),
                         comb.m_data.eq(ctx_r.data), comb.buf_data.eq(frame.data)]
            with m.If(in_comb):
                m.d.comb += [ctx_r.addr.eq(ctx_base[ctx] + comb.m_addr),
                             req.valid.eq(comb.o_req.valid),
                             req.payload.eq(comb.o_req.payload),
                             comb.o_req.ready.eq(req.ready),
                             self.o_words.valid.eq(comb.o_words.valid),
                             self.o_words.payload.eq(comb.o_words.payload),
                             comb.o_words.ready.eq(self.o_words.ready)]
        m.d.comb += self.busy.eq(~exec_fsm.ongoing("Idle") | resp.valid)
        return m
