"""The host link: framed requests in over a byte stream, framed responses out
(``docs/protocol.md``).

:class:`FrameLink` sits between a byte stream from the host (a UART's receiver, or a test) and
a :class:`~montpipe.hdl.array.ModExpArray`. It hunts for the request marker, checks the length,
buffers the frame while computing its CRC-32 and only then acts on it, so a corrupted frame
never reaches the engine. Moduli are loaded once into *contexts* (``m``, ``R² mod m``, ``m'``
and the word count), and each exponentiation request names a context and carries only its base
and exponent digits; the link streams the core's request frame from the context memory and the
request buffer. Responses (the link's own, and results in request order from the array) leave
as framed bytes with a CRC-32.

Bad input never hangs it: a bad CRC, an unknown opcode, a frame shorter or longer than its
fields, a context never loaded, a length above the buffer, a frame arriving while the buffer is
still full, or bytes that stop mid-frame (``timeout`` cycles) each get an error response (the
tag as received, or 0 before it is known) and the receiver hunts for the next marker.
The receiver never stalls the byte stream (a UART cannot wait); the host keeps at most
``lanes + 1`` exponentiations outstanding so a request never finds both buffers full
(``docs/protocol.md``, "Order and flow control").
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.wire import (
    PROTOCOL_VERSION,
    REQUEST_MARKER,
    RESPONSE_MARKER,
    Capabilities,
    LinkStatus,
    Opcode,
    word_bytes,
)
from .array import ModExpArray
from .core import result_layout

__all__ = ["FrameLink", "crc32_update"]

_POLY = 0xEDB88320


def _crc32_step(value: int) -> int:
    for _ in range(8):
        value = (value >> 1) ^ _POLY if value & 1 else value >> 1
    return value


#: bit i of one byte's CRC step is the parity of (crc ^ byte) & _CRC_TAPS[i]: the step is linear
_CRC_TAPS = [sum(1 << j for j in range(32) if _crc32_step(1 << j) >> i & 1) for i in range(32)]


def crc32_update(crc, byte):
    """One byte of the reflected CRC-32 (IEEE) as an Amaranth expression: 32 parities.

    (Written as eight conditional shifts, the expression names each intermediate value three
    times and the netlist grows as 3^8 — 15 MB of Verilog for the link, minutes to compile.)
    """
    c = crc ^ byte
    return Cat(*((c & taps).xor() for taps in _CRC_TAPS))


def _times(value, constant: int):
    """``value × constant`` as a sum of shifted copies: yosys maps a ``*`` by a constant to a
    combinational MULT18X18D (3.9 ns in front of the link's length checks and read
    addresses)."""
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class _Result(NamedTuple):
    """The responder's view of the result queue, named as a stream's members."""

    valid: object
    p: object
    ready: object


class FrameLink(wiring.Component):
    """Frames in, engine, frames out.

    Parameters
    ----------
    width, max_words, window, max_windows, lanes:
        Those of the :class:`~montpipe.hdl.array.ModExpArray` inside.
    contexts:
        Moduli held at once.
    timeout:
        Cycles without a byte after which a partial frame is dropped.
    clock_khz:
        The core clock, reported by the capabilities command.
    ecp5_dsp:
        Instantiate the lanes' ``MULT18X18D`` blocks (synthesis for ECP5; see
        :class:`~montpipe.hdl.montmul.MontMulLane`).
    """

    def __init__(self, *, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 32, lanes: int = 2, contexts: int = 2,
                 timeout: int = 100_000, clock_khz: int = 0, ecp5_dsp: bool = False) -> None:
        if not isinstance(contexts, int) or not 1 <= contexts <= 255:
            self._MustUse__silence = True
            raise ValueError(f"Context count must be an integer from 1 to 255, not {contexts!r}")
        self._p = dict(width=width, max_words=max_words, window=window,
                       max_windows=max_windows, lanes=lanes)
        self._contexts, self._timeout = contexts, timeout
        self.wb = word_bytes(width)
        load = 3 + 3 + self.wb + 2 * max_words * self.wb
        modexp = 3 + 4 + max_words * self.wb + max_windows
        #: request buffer size in bytes: the longest valid frame body
        self.buffer_bytes = max(load, modexp)
        self.caps = Capabilities(PROTOCOL_VERSION, width, width * max_words - 2, lanes, window,
                                 max_windows, contexts, clock_khz)
        self.array = ModExpArray(lanes, width, max_words, window, max_windows,
                                 ecp5_dsp=ecp5_dsp)
        super().__init__({
            "i_rx": In(stream.Signature(8)),
            "o_tx": Out(stream.Signature(8)),
            # anything under way (a frame, a response, an exponentiation): an activity LED, and
            # how the simulated board knows it may sleep until the host sends
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        W, S, wb = self._p["width"], self._p["max_words"], self.wb
        C, B = self._contexts, self.buffer_bytes

        # two request buffers, filled and served alternately: a frame can arrive while the
        # previous one is still being fed to the array
        buf = Memory(shape=8, depth=2 * B, init=[])
        ctx_mem = Memory(shape=W, depth=C * 2 * S, init=[])
        m.submodules.buf, m.submodules.ctx_mem = buf, ctx_mem
        buf_w, buf_r = buf.write_port(), buf.read_port()
        ctx_w, ctx_r = ctx_mem.write_port(), ctx_mem.read_port()
        ctx_base = Array(Const(k * 2 * S, range(C * 2 * S)) for k in range(C))
        ctx_waddr = Signal(range(C * 2 * S))
        ctx_s = Array(Signal(range(S + 1), name=f"ctx_s{k}") for k in range(C))
        ctx_mp = Array(Signal(W, name=f"ctx_mp{k}") for k in range(C))
        ctx_ok = Array(Signal(name=f"ctx_ok{k}") for k in range(C))

        # counters for the status command
        frames_ok, bad_crc, errors, timeouts = (Signal(32, name=n) for n in
                                                ("frames_ok", "bad_crc", "errors", "timeouts"))
        # the counters count a cycle after the receiver decides: a pulse register each, not the
        # decision in front of a 32-bit counter's enable (the 8-lane build's critical path)
        count_pulse = {}
        for counter in (frames_ok, bad_crc, errors, timeouts):
            pulse = count_pulse[counter.name] = Signal(name=f"{counter.name}_pulse")
            m.d.sync += pulse.eq(0)
            with m.If(pulse):
                m.d.sync += counter.eq(counter + 1)

        def bump(counter):
            m.d.sync += count_pulse[counter.name].eq(1)

        # ---- receiver ----------------------------------------------------------------------
        # received bytes are registered before the frame logic sees them (the length checks
        # behind the UART's output were the critical path)
        rx = self.i_rx
        m.d.comb += rx.ready.eq(1)
        byte, got = Signal(8), Signal()
        m.d.sync += [byte.eq(rx.payload), got.eq(rx.valid)]
        buf_full = Array(Signal(name=f"buf_full{i}") for i in range(2))
        buf_len = Array(Signal(16, name=f"buf_len{i}") for i in range(2))
        wsel, rsel = Signal(), Signal()         # the half being filled / being served
        length = Signal(16)
        length_last = Signal(16)                # length - 1, registered with the length
        count = Signal(16)
        crc = Signal(32)
        rx_crc = Signal(32)
        tag_rx = Signal(16)
        overrun = Signal()
        idle_cycles = Signal(range(self._timeout + 1))
        # one pending link error for the responder
        err_pending, err_status, err_tag = Signal(), Signal(8), Signal(16)
        take_err = Signal()
        with m.If(take_err):
            m.d.sync += err_pending.eq(0)

        def report(status, tag):
            with m.If(~err_pending | take_err):
                m.d.sync += [err_pending.eq(1), err_status.eq(status), err_tag.eq(tag)]
            bump(errors)

        release = Signal()
        with m.If(release):
            m.d.sync += [buf_full[rsel].eq(0), rsel.eq(~rsel)]

        # a frame whose bytes stop coming is dropped after `timeout` idle cycles
        timed_out = Signal()
        m.d.comb += timed_out.eq(~got & (idle_cycles == self._timeout - 1))

        def on_timeout():
            with m.Elif(timed_out):
                bump(timeouts)
                report(LinkStatus.SHORT_FRAME, tag_rx)
                m.next = "Hunt"

        with m.FSM(name="rx_fsm") as rx_fsm:
            with m.State("Hunt"):
                with m.If(got & (byte == REQUEST_MARKER)):
                    m.d.sync += [crc.eq(0xFFFFFFFF), tag_rx.eq(0), count.eq(0)]
                    m.next = "Length low"
            with m.State("Length low"):
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc32_update(crc, byte))]
                    m.next = "Length high"
                on_timeout()
            with m.State("Length high"):
                with m.If(got):
                    full = Signal(16)
                    m.d.comb += full.eq(Cat(length[:8], byte))
                    m.d.sync += [length.eq(full), length_last.eq(full - 1),
                                 crc.eq(crc32_update(crc, byte)),
                                 overrun.eq(buf_full[wsel] & ~(release & (rsel == wsel)))]
                    with m.If(full < 3):
                        report(LinkStatus.SHORT_FRAME, 0)
                        m.next = "Hunt"
                    with m.Elif(full > B):
                        report(LinkStatus.LONG_FRAME, 0)
                        m.next = "Hunt"
                    with m.Else():
                        m.next = "Body"
                on_timeout()
            with m.State("Body"):
                with m.If(got):
                    m.d.sync += [crc.eq(crc32_update(crc, byte)), count.eq(count + 1)]
                    m.d.comb += [buf_w.addr.eq(Mux(wsel, B, 0) + count), buf_w.data.eq(byte),
                                 buf_w.en.eq(~overrun)]
                    with m.If(count == 1):
                        m.d.sync += tag_rx[:8].eq(byte)
                    with m.If(count == 2):
                        m.d.sync += tag_rx[8:].eq(byte)
                    with m.If(count == length_last):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
                on_timeout()
            with m.State("CRC"):
                with m.If(got):
                    m.d.sync += [rx_crc.eq((byte << 24) | (rx_crc >> 8)), count.eq(count + 1)]
                    with m.If(count == 3):
                        received = (byte << 24) | (rx_crc >> 8)
                        with m.If(received != (crc ^ 0xFFFFFFFF)):
                            bump(bad_crc)
                            report(LinkStatus.BAD_CRC, tag_rx)
                        with m.Elif(overrun):
                            report(LinkStatus.BUSY, tag_rx)
                        with m.Else():
                            m.d.sync += [buf_full[wsel].eq(1), buf_len[wsel].eq(length),
                                         wsel.eq(~wsel)]
                            bump(frames_ok)
                        m.next = "Hunt"
                on_timeout()
        with m.If(got | rx_fsm.ongoing("Hunt")):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles != self._timeout - 1):
            m.d.sync += idle_cycles.eq(idle_cycles + 1)

        # ---- executor: reads the buffer, loads contexts, feeds the array -------------------
        req = array.i_req
        hdr = Array(Signal(8, name=f"hdr{k}") for k in range(7))
        k = Signal(16)
        raddr = Signal(range(B + 1))
        m.d.comb += buf_r.addr.eq(Mux(rsel, B, 0) + raddr)
        # the buffer's byte is registered before anything uses it (nothing but a register
        # after a block-RAM read): byte x is on `buf_byte` two cycles after raddr = x
        buf_byte = Signal(8)
        m.d.sync += buf_byte.eq(buf_r.data)
        blen = buf_len[rsel]
        resp_pending = Signal()                 # an executor response waits for the responder
        resp_op, resp_tag, resp_status = Signal(8), Signal(16), Signal(8)
        resp_kind = Signal(2)                   # 0: no payload, 1: capabilities, 2: counters
        take_resp = Signal()
        with m.If(take_resp):
            m.d.sync += resp_pending.eq(0)
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
        # in-flight word counts, in request order, for the responder's length field
        inflight = Memory(shape=range(S + 1), depth=32, init=[])
        m.submodules.inflight = inflight
        fifo_w, fifo_r = inflight.write_port(), inflight.read_port(domain="comb")
        fifo_head, fifo_tail = Signal(5), Signal(5)
        m.d.comb += [fifo_r.addr.eq(fifo_head)]
        pop = Signal()
        with m.If(pop):
            m.d.sync += fifo_head.eq(fifo_head + 1)

        def respond(status, kind=0):
            m.d.sync += [resp_pending.eq(1), resp_op.eq(op | 0x80), resp_tag.eq(tag),
                         resp_status.eq(status), resp_kind.eq(kind)]
            m.next = "Respond"

        load_len = 3 + 3 + wb + _times(s, 2 * wb)
        want, got = Signal(32), Signal(16)
        no_header, too_short, too_long, bad_s = Signal(), Signal(), Signal(), Signal()
        exp_len = 3 + 4 + _times(s, wb) + windows
        with m.FSM(name="exec_fsm") as exec_fsm:
            with m.State("Idle"):
                m.d.sync += [raddr.eq(0), k.eq(0)]
                # byte 0 must have been addressed for a cycle (raddr may still hold the last
                # frame's position on the cycle after a release)
                with m.If(buf_full[rsel] & (raddr == 0)):
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
                        respond(LinkStatus.OK, 1)
                    with m.Elif(op == Opcode.STATUS):
                        respond(LinkStatus.OK, 2)
                    with m.Else():
                        m.d.sync += [ctx_ok[i].eq(0) for i in range(C)]
                        respond(LinkStatus.OK)
                with m.Elif(op == Opcode.LOAD_CONTEXT):
                    m.d.sync += s.eq(hdr[4] | (hdr[5] << 8))
                    m.next = "Load length"
                with m.Elif(op == Opcode.MODEXP):
                    m.d.sync += [s.eq(ctx_s[hdr[3]]),
                                 windows.eq(hdr[5] | (hdr[6] << 8))]
                    m.next = "Modexp length"
                with m.Else():
                    respond(LinkStatus.UNKNOWN_OPCODE)
            # the expected frame length is registered, then compared with the frame's into
            # registers: the compares in front of the check's decisions were the critical path
            with m.State("Load length"):
                m.d.sync += [want.eq(load_len), got.eq(blen)]
                m.next = "Load compare"
            with m.State("Modexp length"):
                m.d.sync += [want.eq(exp_len), got.eq(blen)]
                m.next = "Modexp compare"
            with m.State("Load compare"):
                m.d.sync += [no_header.eq(got < 6), too_short.eq(got < want),
                             too_long.eq(got > want), bad_s.eq((s < 3) | (s > S))]
                m.next = "Check load"
            with m.State("Modexp compare"):
                m.d.sync += [no_header.eq(got < 7), too_short.eq(got < want),
                             too_long.eq(got > want)]
                m.next = "Check modexp"
            with m.State("Check load"):
                with m.If(no_header):
                    respond(LinkStatus.SHORT_FRAME)
                with m.Elif(ctx >= C):
                    respond(LinkStatus.NO_CONTEXT)
                with m.Elif(bad_s):
                    respond(LinkStatus.BAD_LENGTH)
                with m.Elif(too_short):
                    respond(LinkStatus.SHORT_FRAME)
                with m.Elif(too_long):
                    respond(LinkStatus.LONG_FRAME)
                with m.Else():
                    m.d.sync += [raddr.eq(6), k.eq(0), nbyte.eq(0), word.eq(0), acc.eq(0),
                                 ctx_ok[ctx].eq(0), ctx_waddr.eq(ctx_base[ctx])]
                    m.next = "Load wait"
            with m.State("Load wait"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = "Load wait 2"
            with m.State("Load wait 2"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = "Load"
            with m.State("Load"):
                # bytes from offset 6: m' (wb), m (s words), R² (s words), wb bytes a word
                assembled = Signal(W)
                m.d.comb += assembled.eq(acc | (buf_byte << (8 * nbyte)))
                m.d.sync += [acc.eq(assembled), nbyte.eq(nbyte + 1), raddr.eq(raddr + 1)]
                with m.If(nbyte == wb - 1):
                    m.d.sync += [nbyte.eq(0), acc.eq(0), word.eq(word + 1)]
                    with m.If(word == 0):
                        m.d.sync += ctx_mp[ctx].eq(assembled)
                    with m.Else():
                        # word 1..s: m, s+1..2s: R² (at S + k in the context); the address is
                        # a register stepped word by word (its add and compare in front of the
                        # block RAM were the critical path)
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
                with m.Elif((fifo_tail + 1)[:5] == fifo_head):
                    respond(LinkStatus.BUSY)       # more in flight than the word-count queue
                with m.Else():
                    m.d.sync += [phase.eq(0), k.eq(0)]
                    m.next = "Beat"
            with m.State("Beat"):
                # prepare the next beat of the core's request frame, and decide now (in
                # registers) whether it ends its section or the frame: k and phase hold until
                # it is sent, and the comparisons in front of the array were the critical path
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
                        m.d.sync += [raddr.eq(7 + _times(k, wb)), nbyte.eq(0), acc.eq(0)]
                        m.next = "Base wait"
                    with m.Case(4):
                        m.d.sync += raddr.eq(7 + _times(s, wb) + k)
                        m.next = "Digit wait"
            with m.State("Context word"):
                m.d.sync += beat.eq(ctx_r.data)
                m.next = "Send"
            with m.State("Base wait"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = "Base wait 2"
            with m.State("Base wait 2"):
                m.d.sync += raddr.eq(raddr + 1)
                m.next = "Base"
            with m.State("Base"):
                assembled_b = Signal(W)
                m.d.comb += assembled_b.eq(acc | (buf_byte << (8 * nbyte)))
                m.d.sync += [acc.eq(assembled_b), nbyte.eq(nbyte + 1), raddr.eq(raddr + 1)]
                with m.If(nbyte == wb - 1):
                    m.d.sync += beat.eq(assembled_b)
                    m.next = "Send"
            with m.State("Digit wait"):
                m.next = "Digit wait 2"
            with m.State("Digit wait 2"):
                m.next = "Digit"
            with m.State("Digit"):
                m.d.sync += beat.eq(buf_byte)
                m.next = "Send"
            with m.State("Send"):
                m.d.comb += [req.valid.eq(1), req.p.data.eq(beat), req.p.last.eq(beat_last)]
                with m.If(req.ready):
                    with m.If(beat_last):
                        m.d.comb += [fifo_w.addr.eq(fifo_tail), fifo_w.data.eq(s),
                                     fifo_w.en.eq(1)]
                        m.d.sync += fifo_tail.eq(fifo_tail + 1)
                        m.d.comb += release.eq(1)
                        m.next = "Idle"
                    with m.Elif(beat_end):
                        m.d.sync += [k.eq(0), phase.eq(Mux((phase == 3) & (windows == 0), 4,
                                                           phase + 1))]
                        m.next = "Beat"
                    with m.Else():
                        m.d.sync += k.eq(k + 1)
                        m.next = "Beat"
            with m.State("Respond"):
                with m.If(~resp_pending):
                    m.d.comb += release.eq(1)
                    m.next = "Idle"

        # ---- responder: one frame at a time, CRC-32 on the fly -----------------------------
        # the array's results pass a registered two-beat queue first: the lanes' result reads
        # and the array's result multiplexer end there instead of running on through the byte
        # multiplexer into the UART (the 24-lane build's critical path)
        layout = result_layout(W)
        m.submodules.res_queue = res_queue = SyncFIFOBuffered(
            width=Shape.cast(layout).width, depth=2)
        m.d.comb += [res_queue.w_data.eq(array.o_res.payload),
                     res_queue.w_en.eq(array.o_res.valid),
                     array.o_res.ready.eq(res_queue.w_rdy)]
        res = _Result(valid=res_queue.r_rdy, p=layout(res_queue.r_data), ready=res_queue.r_en)
        tx = self.o_tx
        caps = self.caps.encode()
        caps_bytes = Array(Const(b, 8) for b in caps)
        counters = Array([frames_ok, bad_crc, errors, timeouts])
        o_kind = Signal(2)          # 0 link error, 1 executor response, 2 engine result
        o_op, o_tag, o_status, o_pay = Signal(8), Signal(16), Signal(8), Signal(16)
        o_payload_kind = Signal(2)
        i = Signal(16)
        o_crc = Signal(32)
        res_byte = Signal(range(wb + 1))
        pay_end = Signal(17)        # 7 + o_pay, registered (timing)
        total = pay_end + 4
        cur = Signal(8)
        # the CRC takes each byte a cycle after it is sent (the byte mux and the CRC's eight
        # steps in one cycle were the link's critical path); the first CRC byte waits a cycle
        crc_byte, crc_en = Signal(8), Signal()
        m.d.sync += crc_en.eq(0)
        with m.If(crc_en):
            m.d.sync += o_crc.eq(crc32_update(o_crc, crc_byte))
        j = i - 7
        # where byte i falls, decided when i is set (compares of i against the payload's end
        # in front of the handshake were the critical path): in the CRC, in the CRC's span
        # (bytes 1 .. pay_end - 1), the frame's last byte
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
                with m.Elif(o_payload_kind == 1):
                    m.d.comb += cur.eq(caps_bytes[j[:8]])
                with m.Else():
                    m.d.comb += cur.eq(counters[j[2:4]].word_select(j[:2], 8))
        with m.FSM(name="tx_fsm") as tx_fsm:
            with m.State("Idle"):
                m.d.sync += [i.eq(0), o_crc.eq(0xFFFFFFFF), res_byte.eq(0)]
                with m.If(res.valid):
                    ok = res.p.status.as_value() == 0
                    m.d.sync += [o_kind.eq(2), o_op.eq(Opcode.MODEXP | 0x80), o_tag.eq(res.p.tag),
                                 o_status.eq(res.p.status.as_value()),
                                 o_pay.eq(Mux(ok, _times(fifo_r.data, wb), 0))]
                    m.d.comb += pop.eq(1)
                    with m.If(~ok):
                        m.d.comb += res.ready.eq(1)     # an error result is one beat: taken now
                    m.next = "Start"
                with m.Elif(resp_pending):
                    m.d.comb += take_resp.eq(1)
                    m.d.sync += [o_kind.eq(1), o_op.eq(resp_op), o_tag.eq(resp_tag),
                                 o_status.eq(resp_status), o_payload_kind.eq(resp_kind),
                                 o_pay.eq(Mux(resp_kind == 1, len(caps),
                                              Mux(resp_kind == 2, 16, 0)))]
                    m.next = "Start"
                with m.Elif(err_pending):
                    m.d.comb += take_err.eq(1)
                    m.d.sync += [o_kind.eq(0), o_op.eq(0x80), o_tag.eq(err_tag),
                                 o_status.eq(err_status), o_payload_kind.eq(0), o_pay.eq(0)]
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
        m.d.comb += self.busy.eq(array.busy | res_queue.r_rdy | ~rx_fsm.ongoing("Hunt") |
                                 ~exec_fsm.ongoing("Idle") |
                                 ~tx_fsm.ongoing("Idle") | err_pending | resp_pending |
                                 buf_full[0] | buf_full[1] | (fifo_head != fifo_tail))
        return m

