"""The link's receiver on Amaranth's simulator: a verified frame offered in a request buffer,
and each way a frame goes wrong reported with its status, tag and counter."""

import struct

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.sim import Simulator

from montpipe.device.wire import REQUEST_MARKER, LinkStatus, Opcode, encode_request
from montpipe.hdl.link_receiver import LinkReceiver

B, TIMEOUT = 16, 20


def run(bench):
    dut = LinkReceiver(buffer_bytes=B, timeout=TIMEOUT)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def testbench(ctx):
        await bench(ctx, dut)

    sim.add_testbench(testbench)
    sim.run()


async def send(ctx, dut, data):
    """One byte a cycle, as fast as the stream goes; the receiver is always ready."""
    for byte in data:
        assert ctx.get(dut.i_rx.ready)
        ctx.set(dut.i_rx.valid, 1)
        ctx.set(dut.i_rx.payload, byte)
        await ctx.tick()
    ctx.set(dut.i_rx.valid, 0)


async def read_frame(ctx, dut):
    """The offered frame's body through the read port (a byte a cycle after its address)."""
    body = []
    for addr in range(ctx.get(dut.frame.length)):
        ctx.set(dut.frame.addr, addr)
        await ctx.tick()
        body.append(ctx.get(dut.frame.data))
    return bytes(body)


async def take_error(ctx, dut):
    assert ctx.get(dut.o_error.valid)
    error = (ctx.get(dut.o_error.payload.status), ctx.get(dut.o_error.payload.tag))
    ctx.set(dut.o_error.ready, 1)
    await ctx.tick()
    ctx.set(dut.o_error.ready, 0)
    assert not ctx.get(dut.o_error.valid)
    return error


def counters(ctx, dut):
    c = dut.counters
    return tuple(ctx.get(x) for x in (c.frames_ok, c.bad_crc, c.errors, c.timeouts))


def test_a_good_frame_is_offered_a_cycle_after_its_last_byte_is_taken_and_released():
    """One clock edge registers the byte, the next checks the CRC and offers the frame."""
    frame = encode_request(Opcode.STATUS, 0x1234, b"ab")

    async def bench(ctx, dut):
        assert not ctx.get(dut.busy)
        await send(ctx, dut, frame)             # ends on the edge that takes the last byte
        assert ctx.get(dut.busy) and not ctx.get(dut.frame.valid)
        await ctx.tick()
        assert ctx.get(dut.frame.valid) and ctx.get(dut.frame.length) == len(frame) - 7
        assert await read_frame(ctx, dut) == frame[3:-4]
        await ctx.tick()
        assert counters(ctx, dut) == (1, 0, 0, 0) and not ctx.get(dut.o_error.valid)
        ctx.set(dut.frame.release, 1)
        await ctx.tick()
        ctx.set(dut.frame.release, 0)
        assert not ctx.get(dut.frame.valid) and not ctx.get(dut.busy)

    run(bench)


def test_two_buffers_fill_and_the_third_frame_is_refused_busy_with_its_tag():
    frames = [encode_request(Opcode.CAPS, tag, bytes([tag])) for tag in (1, 2, 3)]

    async def bench(ctx, dut):
        await send(ctx, dut, b"\x00\x55" + frames[0] + frames[1] + frames[2])
        await ctx.tick().repeat(3)
        assert await take_error(ctx, dut) == (LinkStatus.BUSY, 3)
        for tag in (1, 2):                      # served in arrival order, one buffer each
            assert ctx.get(dut.frame.valid)
            assert (await read_frame(ctx, dut))[1:] == bytes([tag, 0, tag])
            ctx.set(dut.frame.release, 1)
            await ctx.tick()
            ctx.set(dut.frame.release, 0)
        assert not ctx.get(dut.frame.valid)
        assert counters(ctx, dut) == (2, 0, 1, 0)

    run(bench)


@pytest.mark.parametrize("data, error, counts", [
    (encode_request(Opcode.CAPS, 9)[:-1] + b"\x00", (LinkStatus.BAD_CRC, 9), (0, 1, 1, 0)),
    (bytes([REQUEST_MARKER]) + struct.pack("<H", B + 1), (LinkStatus.LONG_FRAME, 0),
     (0, 0, 1, 0)),
    (bytes([REQUEST_MARKER, 2, 0]), (LinkStatus.SHORT_FRAME, 0), (0, 0, 1, 0)),
    (encode_request(Opcode.CAPS, 0x4321, b"xyz")[:8], (LinkStatus.SHORT_FRAME, 0x4321),
     (0, 0, 1, 1)),
], ids=["bad crc", "too long", "too short", "timeout"])
def test_a_bad_frame_is_reported_counted_and_the_next_one_still_received(data, error, counts):
    good = encode_request(Opcode.STATUS, 77)

    async def bench(ctx, dut):
        await send(ctx, dut, data)
        await ctx.tick().repeat(TIMEOUT + 2)
        assert not ctx.get(dut.frame.valid)
        assert await take_error(ctx, dut) == error
        assert counters(ctx, dut) == counts
        assert not ctx.get(dut.busy)
        await send(ctx, dut, good)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.frame.valid) and (await read_frame(ctx, dut)) == good[3:-4]

    run(bench)
