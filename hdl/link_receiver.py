"""The host link's receiver: request frames off the byte stream into two request buffers
(``docs/protocol.md``)."""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.wire import REQUEST_MARKER, LinkStatus
from .link_common import CountersSignature, FrameBufferSignature, LinkError, crc32_update

__all__ = ["LinkReceiver"]


class LinkReceiver(wiring.Component):
    """Hunts the request marker, checks the length, and buffers the frame while computing its
    CRC-32; a frame is offered on ``frame`` only once its CRC matched.

    The receiver never stalls the byte stream (a UART cannot wait). It has two request
    buffers, filled and served alternately, so a frame can arrive while the previous one is
    still being served; a frame that finds both full is answered ``BUSY``. Each bad frame (a
    length out of range, a bad CRC, bytes that stop for ``timeout`` cycles) is reported on
    ``o_error`` and counted, and the receiver hunts for the next marker.

    Parameters
    ----------
    buffer_bytes:
        The longest frame body a buffer holds; longer frames are refused as ``LONG_FRAME``.
    timeout:
        Cycles without a byte after which a partial frame is dropped.

    :class:`~montpipe.hdl.link.FrameLink` checks both before it builds the receiver.

    Attributes
    ----------
    i_rx : In(stream.Signature(8))
        Request bytes; always ready.
    frame : Out(FrameBufferSignature(buffer_bytes))
        The verified frame being served, and a read port into its buffer.
    o_error : Out(stream.Signature(LinkError))
        One pending error response; an error arriving while one is pending is counted but
        not answered.
    counters : Out(CountersSignature)
        Frames accepted, bad CRCs, errors and timeouts, for the status command.
    busy : Out(1)
        A frame is being received or held, or an error waits.
    """

    def __init__(self, *, buffer_bytes: int, timeout: int) -> None:
        frame = FrameBufferSignature(buffer_bytes)
        self._buffer_bytes, self._timeout = buffer_bytes, timeout
        super().__init__({
            "i_rx": In(stream.Signature(8)),
            "frame": Out(frame),
            "o_error": Out(stream.Signature(LinkError)),
            "counters": Out(CountersSignature),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self._buffer_bytes

        # two request buffers, one memory: buffer i holds bytes i·B .. i·B + B - 1
        buf = Memory(shape=8, depth=2 * B, init=[])
        m.submodules.buf = buf
        buf_w, buf_r = buf.write_port(), buf.read_port()

        # each counter counts a cycle after the receiver decides: a pulse register each, so
        # that no decision sits in front of a 32-bit counter's enable
        count_pulse = {}
        for name, counter in self.counters.signature.members.items():
            counter = getattr(self.counters, name)
            pulse = count_pulse[name] = Signal(name=f"{name}_pulse")
            m.d.sync += pulse.eq(0)
            with m.If(pulse):
                m.d.sync += counter.eq(counter + 1)

        def bump(name):
            m.d.sync += count_pulse[name].eq(1)

        # received bytes are registered before the frame logic sees them, so that its length
        # checks start from a register and not behind the UART's output
        rx = self.i_rx
        m.d.comb += rx.ready.eq(1)
        byte, got = Signal(8), Signal()
        m.d.sync += [byte.eq(rx.payload), got.eq(rx.valid)]
        buf_full = Array(Signal(name=f"buf_full{i}") for i in range(2))
        buf_len = Array(Signal(16, name=f"buf_len{i}") for i in range(2))
        wsel, rsel = Signal(), Signal()         # the buffer being filled / being served
        length = Signal(16)
        length_last = Signal(16)                # length - 1, registered with the length
        count = Signal(16)
        crc = Signal(32)
        rx_crc = Signal(32)
        tag_rx = Signal(16)
        overrun = Signal()
        idle_cycles = Signal(range(self._timeout + 1))

        frame = self.frame
        m.d.comb += [frame.valid.eq(buf_full[rsel]), frame.length.eq(buf_len[rsel]),
                     buf_r.addr.eq(Mux(rsel, B, 0) + frame.addr), frame.data.eq(buf_r.data)]
        with m.If(frame.release):
            m.d.sync += [buf_full[rsel].eq(0), rsel.eq(~rsel)]

        error = self.o_error
        with m.If(error.ready):
            m.d.sync += error.valid.eq(0)

        def report(status, tag):
            with m.If(~error.valid | error.ready):
                m.d.sync += [error.valid.eq(1), error.payload.status.eq(status),
                             error.payload.tag.eq(tag)]
            bump("errors")

        # a frame whose bytes stop coming is dropped after `timeout` idle cycles
        timed_out = Signal()
        m.d.comb += timed_out.eq(~got & (idle_cycles == self._timeout - 1))

        def on_timeout():
            with m.Elif(timed_out):
                bump("timeouts")
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
                                 overrun.eq(buf_full[wsel] & ~(frame.release & (rsel == wsel)))]
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
                            bump("bad_crc")
                            report(LinkStatus.BAD_CRC, tag_rx)
                        with m.Elif(overrun):
                            report(LinkStatus.BUSY, tag_rx)
                        with m.Else():
                            m.d.sync += [buf_full[wsel].eq(1), buf_len[wsel].eq(length),
                                         wsel.eq(~wsel)]
                            bump("frames_ok")
                        m.next = "Hunt"
                on_timeout()
        with m.If(got | rx_fsm.ongoing("Hunt")):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles != self._timeout - 1):
            m.d.sync += idle_cycles.eq(idle_cycles + 1)

        m.d.comb += self.busy.eq(~rx_fsm.ongoing("Hunt") | error.valid |
                                 buf_full[0] | buf_full[1])
        return m
