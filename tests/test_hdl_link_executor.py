"""The link's executor on Amaranth's simulator, fed verified frames through a model of the
request buffer: a context load and an exponentiation's request frame to the array beat for
beat, and every status the executor answers itself."""

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.sim import Simulator

from montpipe.device.model import exponent_digits, montgomery_words, mprime, request_frame
from montpipe.device.wire import (
    LinkStatus,
    Opcode,
    caps_request,
    encode_request,
    load_context_request,
    modexp_request,
)
from montpipe.hdl.link_common import Contents
from montpipe.hdl.link_executor import LinkExecutor

W, S, WINDOW, CONTEXTS, BUFFER = 16, 6, 2, 2, 43
MOD = (1 << 59) | 0x123456789ABCDEF


def load(tag, ctx, mod=MOD, words=None):
    s = montgomery_words(mod.bit_length(), W)
    return load_context_request(tag, ctx, mod, width=W, words=words or s, mprime=mprime(mod, W),
                                r2=pow(2, 2 * W * s, mod))


def modexp(tag, ctx, base, e, mod=MOD, const_time=False):
    s = montgomery_words(mod.bit_length(), W)
    return modexp_request(tag, ctx, base, exponent_digits(e, WINDOW), width=W, words=s,
                          const_time=const_time)


def execute(frames, words_ready=1):
    """Offer each request's body as the receiver would, until released; returns the
    responses (op, tag, status, contents), the request beats to the array (data, last) and
    the word counts queued."""
    dut = LinkExecutor(width=W, max_words=S, contexts=CONTEXTS, buffer_bytes=BUFFER)
    responses, beats, words = [], [], []

    async def buffer(ctx):
        body = b""
        async for _, _, addr, valid in ctx.tick().sample(dut.frame.addr, dut.frame.valid):
            body = frames[0][3:-4] if frames and valid else body
            ctx.set(dut.frame.data, body[addr] if addr < len(body) else 0)

    async def bench(ctx):
        ctx.set(dut.o_req.ready, 1)
        ctx.set(dut.o_response.ready, 1)
        ctx.set(dut.o_words.ready, words_ready)
        while frames:
            ctx.set(dut.frame.valid, 1)
            ctx.set(dut.frame.length, len(frames[0]) - 7)
            for _ in range(2000):
                r, b, w = dut.o_response, dut.o_req, dut.o_words
                if ctx.get(r.valid):
                    p = r.payload
                    responses.append((ctx.get(p.op), ctx.get(p.tag), ctx.get(p.status),
                                      ctx.get(p.contents)))
                if ctx.get(b.valid):
                    beats.append((ctx.get(b.payload.data), ctx.get(b.payload.last)))
                if ctx.get(w.valid):
                    words.append(ctx.get(w.payload.words))
                released = ctx.get(dut.frame.release)
                await ctx.tick()
                if released:
                    break
            else:
                raise AssertionError(f"frame {frames[0].hex()} never released")
            ctx.set(dut.frame.valid, 0)
            frames.pop(0)
            await ctx.tick()
        await ctx.tick().repeat(3)
        assert not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(buffer)
    sim.add_testbench(bench)
    sim.run()
    return responses, beats, words


def test_a_loaded_context_feeds_the_array_the_cores_request_frame():
    frames = [load(1, 1), modexp(2, 1, 12345, 0xBEEF, const_time=True), modexp(3, 1, 7, 5)]
    responses, beats, words = execute(frames)
    assert responses == [(Opcode.LOAD_CONTEXT | 0x80, 1, LinkStatus.OK, Contents.NOTHING)]
    want = []
    for tag, base, e, const_time in [(2, 12345, 0xBEEF, True), (3, 7, 5, False)]:
        frame = request_frame(tag, base, e, MOD, width=W, window=WINDOW, const_time=const_time)
        want += [(beat, i == len(frame) - 1) for i, beat in enumerate(frame)]
    assert beats == want
    assert words == [montgomery_words(MOD.bit_length(), W)] * 2


@pytest.mark.parametrize("frame, status, contents", [
    (caps_request(5), LinkStatus.OK, Contents.CAPABILITIES),
    (encode_request(Opcode.STATUS, 5), LinkStatus.OK, Contents.COUNTERS),
    (encode_request(Opcode.CAPS, 5, b"x"), LinkStatus.LONG_FRAME, Contents.NOTHING),
    (encode_request(0x42, 5), LinkStatus.UNKNOWN_OPCODE, Contents.NOTHING),
    (modexp(5, 0, 3, 3), LinkStatus.NO_CONTEXT, Contents.NOTHING),
    (modexp(5, 2, 3, 3), LinkStatus.NO_CONTEXT, Contents.NOTHING),
    (load(5, 2), LinkStatus.NO_CONTEXT, Contents.NOTHING),
    (load(5, 0, (1 << 20) | 1, words=2), LinkStatus.BAD_LENGTH, Contents.NOTHING),
    (load(5, 0)[:-6] + load(5, 0)[-4:], LinkStatus.SHORT_FRAME, Contents.NOTHING),
    (encode_request(Opcode.MODEXP, 5, b"\x00\x00"), LinkStatus.SHORT_FRAME, Contents.NOTHING),
], ids=["caps", "status", "caps with payload", "unknown opcode", "context not loaded",
        "context out of range", "load out of range", "load of 2 words", "load short",
        "modexp without header"])
def test_the_executors_own_answers(frame, status, contents):
    responses, beats, words = execute([frame])
    assert responses == [(frame[3] | 0x80, 5, status, contents)]
    assert beats == [] and words == []


def test_reset_forgets_contexts_and_a_full_word_queue_refuses_busy():
    responses, beats, _ = execute([load(1, 0), encode_request(Opcode.RESET, 2), modexp(3, 0, 3, 3),
                                   load(4, 0), modexp(5, 0, 3, 3)], words_ready=0)
    assert [(op & 0x7F, tag, status) for op, tag, status, _ in responses] == [
        (Opcode.LOAD_CONTEXT, 1, LinkStatus.OK), (Opcode.RESET, 2, LinkStatus.OK),
        (Opcode.MODEXP, 3, LinkStatus.NO_CONTEXT), (Opcode.LOAD_CONTEXT, 4, LinkStatus.OK),
        (Opcode.MODEXP, 5, LinkStatus.BUSY)]
    assert beats == []
