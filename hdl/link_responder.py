"""The host link's responder: response frames with a CRC-32 onto the byte stream
(``docs/protocol.md``)."""

from __future__ import annotations

from typing import NamedTuple

from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.wire import RESPONSE_MARKER, Capabilities, Opcode, word_bytes
from .core import result_layout
from .link_comb import WordCount
from .link_common import Contents, CountersSignature, LinkError, Response, crc32_update, times

__all__ = ["LinkResponder"]


class _Result(NamedTuple):
    """The responder's view of the result queue, named as a stream's members."""

    valid: object
    p: object
    ready: object


class LinkResponder(wiring.Component):
    """Frames one response at a time, computing its CRC-32 on the fly.

    Results from the array come first (an exponentiation's result frame is as long as its
    modulus: the word count comes from ``i_words``, queued in request order, with whether the
    result answers a comb job), then the executor's responses, then the receiver's errors.
    A lane's acknowledgement of a product packet (one beat, status ``OK``: a result of ``OK``
    has at least three words) is dropped: it answers the link, not the host.

    Parameters
    ----------
    width, max_words:
        The array's word width and most words a modulus takes.
    capabilities:
        What the capabilities command reports.

    Attributes
    ----------
    i_error : In(stream.Signature(LinkError))
        The receiver's error responses.
    i_response : In(stream.Signature(Response))
        The executor's responses.
    i_words : In(stream.Signature(WordCount(max_words)))
        Each exponentiation's word count, in request order; ``ready`` while the queue
        (31 entries) has room.
    i_result : In(stream.Signature(result_layout(width)))
        The array's results.
    counters : In(CountersSignature)
        The receiver's counters, for the status command.
    o_tx : Out(stream.Signature(8))
        Response bytes.
    busy : Out(1)
        A response is being sent, or a result or word count is queued.
    """

    def __init__(self, *, width: int, max_words: int, capabilities: Capabilities) -> None:
        self._width, self._caps, self._max_words = width, capabilities, max_words
        super().__init__({
            "i_error": In(stream.Signature(LinkError)),
            "i_response": In(stream.Signature(Response)),
            "i_words": In(stream.Signature(WordCount(max_words))),
            "i_result": In(stream.Signature(result_layout(width))),
            "counters": In(CountersSignature),
            "o_tx": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._width
        wb = word_bytes(W)

        # in-flight word counts, in request order, for the result's length field
        words = self.i_words
        inflight = Memory(shape=WordCount(self._max_words), depth=32, init=[])
        m.submodules.inflight = inflight
        fifo_w, fifo_r = inflight.write_port(), inflight.read_port(domain="comb")
        fifo_head, fifo_tail = Signal(5), Signal(5)
        m.d.comb += [fifo_r.addr.eq(fifo_head), words.ready.eq((fifo_tail + 1)[:5] != fifo_head)]
        # the executor offers a count only when it saw `ready`, so `valid` alone writes
        with m.If(words.valid):
            m.d.comb += [fifo_w.addr.eq(fifo_tail), fifo_w.data.eq(words.payload),
                         fifo_w.en.eq(1)]
            m.d.sync += fifo_tail.eq(fifo_tail + 1)
        pop = Signal()
        with m.If(pop):
            m.d.sync += fifo_head.eq(fifo_head + 1)

        resp, error = self.i_response, self.i_error

        # the array's results pass a registered two-beat queue first: the lanes' result reads
        # and the array's result multiplexer end there instead of running on through the byte
        # multiplexer into the UART
        layout = result_layout(W)
        m.submodules.res_queue = res_queue = SyncFIFOBuffered(
            width=Shape.cast(layout).width, depth=2)
        m.d.comb += [res_queue.w_data.eq(self.i_result.payload),
                     res_queue.w_en.eq(self.i_result.valid),
                     self.i_result.ready.eq(res_queue.w_rdy)]
        res = _Result(valid=res_queue.r_rdy, p=layout(res_queue.r_data), ready=res_queue.r_en)
        tx = self.o_tx
        caps = self._caps.encode()
        caps_bytes = Array(Const(b, 8) for b in caps)
        c = self.counters
        counters = Array([c.frames_ok, c.bad_crc, c.errors, c.timeouts])
        o_kind = Signal(2)          # 0 link error, 1 executor response, 2 engine result
        o_op, o_tag, o_status, o_pay = Signal(8), Signal(16), Signal(8), Signal(16)
        o_contents = Signal(Contents)
        i = Signal(16)
        o_crc = Signal(32)
        res_byte = Signal(range(wb + 1))
        pay_end = Signal(17)        # 7 + o_pay, registered, so no adder is in front of compares
        total = pay_end + 4
        cur = Signal(8)
        # the CRC takes each byte a cycle after it is sent, so that the byte multiplexer and
        # the CRC step are not in one cycle; the first CRC byte waits a cycle for the last step
        crc_byte, crc_en = Signal(8), Signal()
        m.d.sync += crc_en.eq(0)
        with m.If(crc_en):
            m.d.sync += o_crc.eq(crc32_update(o_crc, crc_byte))
        j = i - 7
        # where byte i falls, decided when i is set, so no compare of i against the payload's
        # end sits in front of the handshake: in the CRC, in the CRC's span (bytes
        # 1 .. pay_end - 1), the frame's last byte
        at_crc, crc_span, at_last = Signal(), Signal(), Signal()

        def position(value):
            m.d.sync += [at_crc.eq(value >= pay_end), at_last.eq(value == total - 1),
                         crc_span.eq((value >= 1) & (value < pay_end))]

        with m.Switch(i):
            with m.Case(0):
                m.d.comb += cur.eq(RESPONSE_MARKER)
            with m.Case(1):
                m.d.comb += cur.eq((o_pay + 4)[:8])
            with m.Case(2):
                m.d.comb += cur.eq((o_pay + 4)[8:16])
            with m.Case(3):
                m.d.comb += cur.eq(o_op)
            with m.Case(4):
                m.d.comb += cur.eq(o_tag[:8])
            with m.Case(5):
                m.d.comb += cur.eq(o_tag[8:])
            with m.Case(6):
                m.d.comb += cur.eq(o_status)
            with m.Default():
                final = o_crc ^ 0xFFFFFFFF
                with m.If(at_crc):
                    m.d.comb += cur.eq(final.word_select((i - pay_end)[:2], 8))
                with m.Elif(o_kind == 2):
                    padded = Cat(res.p.data, Const(0, 8 * wb - W))
                    m.d.comb += cur.eq(padded.word_select(res_byte, 8))
                with m.Elif(o_contents == Contents.CAPABILITIES):
                    m.d.comb += cur.eq(caps_bytes[j[:8]])
                with m.Else():
                    m.d.comb += cur.eq(counters[j[2:4]].word_select(j[:2], 8))
        with m.FSM(name="tx_fsm") as tx_fsm:
            with m.State("Idle"):
                m.d.sync += [i.eq(0), o_crc.eq(0xFFFFFFFF), res_byte.eq(0)]
                ok = res.p.status.as_value() == 0
                with m.If(res.valid & ok & res.p.last):
                    m.d.comb += res.ready.eq(1)         # an acknowledgement: dropped
                with m.Elif(res.valid):
                    queued = fifo_r.data
                    m.d.sync += [o_kind.eq(2),
                                 o_op.eq(Mux(queued.comb, Opcode.COMB, Opcode.MODEXP) | 0x80),
                                 o_tag.eq(res.p.tag), o_status.eq(res.p.status.as_value()),
                                 o_pay.eq(Mux(ok, times(queued.words, wb), 0))]
                    m.d.comb += pop.eq(1)
                    with m.If(~ok):
                        m.d.comb += res.ready.eq(1)     # an error result is one beat: taken now
                    m.next = "Start"
                with m.Elif(resp.valid):
                    m.d.comb += resp.ready.eq(1)
                    p = resp.payload
                    m.d.sync += [o_kind.eq(1), o_op.eq(p.op), o_tag.eq(p.tag),
                                 o_status.eq(p.status), o_contents.eq(p.contents),
                                 o_pay.eq(Mux(p.contents == Contents.CAPABILITIES, len(caps),
                                              Mux(p.contents == Contents.COUNTERS, 16, 0)))]
                    m.next = "Start"
                with m.Elif(error.valid):
                    m.d.comb += error.ready.eq(1)
                    m.d.sync += [o_kind.eq(0), o_op.eq(0x80), o_tag.eq(error.payload.tag),
                                 o_status.eq(error.payload.status),
                                 o_contents.eq(Contents.NOTHING), o_pay.eq(0)]
                    m.next = "Start"
            with m.State("Start"):
                m.d.sync += [pay_end.eq(7 + o_pay), at_crc.eq(0), crc_span.eq(0),
                             at_last.eq(0)]
                m.next = "Send"
            with m.State("Send"):
                # result words come from the array at its pace: wait for each to be offered
                in_result = (o_kind == 2) & ~at_crc & (i >= 7)
                crc_wait = at_crc & crc_en
                m.d.comb += [tx.valid.eq((~in_result | res.valid) & ~crc_wait),
                             tx.payload.eq(cur)]
                with m.If(tx.ready & tx.valid):
                    m.d.sync += i.eq(i + 1)
                    position(i + 1)
                    with m.If(crc_span):
                        m.d.sync += [crc_byte.eq(cur), crc_en.eq(1)]
                    with m.If(in_result):
                        m.d.sync += res_byte.eq(res_byte + 1)
                        with m.If(res_byte == wb - 1):
                            m.d.sync += res_byte.eq(0)
                            m.d.comb += res.ready.eq(1)
                    with m.If(at_last):
                        m.next = "Idle"

        m.d.comb += self.busy.eq(~tx_fsm.ongoing("Idle") | res_queue.r_rdy |
                                 (fifo_head != fifo_tail))
        return m
