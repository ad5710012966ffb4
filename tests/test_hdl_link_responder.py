"""The link's responder on Amaranth's simulator: each kind of response framed with its CRC,
results sized by their queued word counts, the order between the three sources, and the
transmitter's back-pressure."""

import struct
from itertools import cycle

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from stream_drivers import monitor, simulate

from montpipe.device.wire import (
    Capabilities,
    LinkStatus,
    Opcode,
    ResponseParser,
    unpack_words,
)
from montpipe.hdl.core import Status
from montpipe.hdl.link_common import Contents
from montpipe.hdl.link_responder import LinkResponder

W, S = 16, 6
CAPS = Capabilities(1, W, W * S - 2, 2, 2, 24, 2, 125_000)


def respond(sources, count, backpressure=(1,), counters=(0, 0, 0, 0)):
    """Offer each source's transfers (``{member: [(idle cycles first, fields), ...]}``) at
    once, and collect ``count`` parsed responses with ``backpressure`` on the transmitter."""
    dut = LinkResponder(width=W, max_words=S, capabilities=CAPS)
    parser, responses = ResponseParser(), []
    ready = cycle(backpressure)

    def source(member, transfers):
        stream = getattr(dut, member)

        async def offer(ctx):
            for idle, fields in transfers:
                if idle:
                    await ctx.tick().repeat(idle)
                for name, value in fields.items():
                    ctx.set(getattr(stream.payload, name) if name else stream.payload, value)
                ctx.set(stream.valid, 1)
                await ctx.tick().until(stream.ready)
                ctx.set(stream.valid, 0)
        return offer

    async def bench(ctx):
        for name, value in zip(("frames_ok", "bad_crc", "errors", "timeouts"), counters):
            ctx.set(getattr(dut.counters, name), value)
        for _ in range(5000):
            if len(responses) >= count:
                break
            ctx.set(dut.o_tx.ready, next(ready))
            await ctx.tick()
        await ctx.tick().repeat(3)
        assert not ctx.get(dut.busy)

    simulate(dut, bench,
             background=[source(member, transfers) for member, transfers in sources.items()],
             processes=[monitor(dut.o_tx,
                                lambda data, _: responses.extend(parser.feed(bytes([data]))))])
    assert parser.bad_crc == 0 and parser.discarded == 0
    return [(r.opcode, r.tag, r.status, r.payload) for r in responses]


def test_an_error_and_the_executors_responses_with_their_payloads():
    responses = [(40 if tag == 3 else 0, {"op": Opcode.CAPS | 0x80, "tag": tag,
                                          "status": LinkStatus.OK, "contents": contents})
                 for tag, contents in [(3, Contents.CAPABILITIES), (4, Contents.COUNTERS),
                                       (5, Contents.NOTHING)]]
    got = respond({"i_error": [(0, {"status": LinkStatus.BAD_CRC, "tag": 0x0102})],
                   "i_response": responses}, 4, backpressure=[1, 0, 0],
                  counters=(7, 1, 2, 3))
    assert got == [
        (0, 0x0102, LinkStatus.BAD_CRC, b""),
        (Opcode.CAPS, 3, LinkStatus.OK, CAPS.encode()),
        (Opcode.CAPS, 4, LinkStatus.OK, struct.pack("<4I", 7, 1, 2, 3)),
        (Opcode.CAPS, 5, LinkStatus.OK, b""),
    ]


def test_results_are_sized_by_their_word_counts_and_go_before_waiting_responses():
    """While an error frame is sent slowly, a response and results arrive: each time the
    responder is free the results go first, the response after them, a later error last."""
    values = [0x1234_5678_9ABC, 0xFFFF_0000_FFFF_0000_1111]
    results = []
    for tag, value, words in [(10, values[0], 3), (11, values[1], 5)]:
        results += [(0, {"tag": tag, "status": Status.OK, "data": value >> (W * k) & 0xFFFF,
                         "last": k == words - 1}) for k in range(words)]
    results[0] = (5, results[0][1])          # offered while the error's frame goes out
    results.append((0, {"tag": 12, "status": Status.EVEN_MODULUS, "data": 0, "last": 1}))
    got = respond({
        "i_words": [(0, {"words": 3}), (0, {"words": 5}), (0, {"words": 3})],
        "i_error": [(0, {"status": LinkStatus.BAD_CRC, "tag": 1}),
                    (10, {"status": LinkStatus.SHORT_FRAME, "tag": 0})],
        "i_response": [(5, {"op": Opcode.STATUS | 0x80, "tag": 9, "status": LinkStatus.OK,
                            "contents": Contents.NOTHING})],
        "i_result": results,
    }, 6, backpressure=[1, 0, 0, 0])
    assert [(op, tag, status) for op, tag, status, _ in got] == [
        (0, 1, LinkStatus.BAD_CRC),
        (Opcode.MODEXP, 10, LinkStatus.OK), (Opcode.MODEXP, 11, LinkStatus.OK),
        (Opcode.MODEXP, 12, LinkStatus.EVEN_MODULUS), (Opcode.STATUS, 9, LinkStatus.OK),
        (0, 0, LinkStatus.SHORT_FRAME)]
    assert [len(p) for _, _, _, p in got] == [0, 6, 10, 0, 0, 0]
    assert [unpack_words(p, W) for _, _, _, p in got[1:3]] == values


def test_acknowledgements_are_dropped_and_comb_results_say_so():
    """A lane's one-beat OK (a product packet's acknowledgement) never reaches the host and
    takes no word count; a queued count marked comb gives its result the COMB opcode."""
    value = 0xABCD_0123_4567
    ack = [(0, {"tag": t, "status": Status.OK, "data": 0, "last": 1}) for t in (1, 2, 3)]
    result = [(0, {"tag": 40, "status": Status.OK, "data": value >> (W * k) & 0xFFFF,
                   "last": k == 2}) for k in range(3)]
    got = respond({
        "i_words": [(0, {"words": 3, "comb": 1}), (0, {"words": 3, "comb": 0})],
        "i_result": ack + result + ack[:1] + [(0, {**f, "tag": 41}) for _, f in result],
    }, 2)
    assert [(op, tag, status) for op, tag, status, _ in got] == [
        (Opcode.COMB, 40, LinkStatus.OK), (Opcode.MODEXP, 41, LinkStatus.OK)]
    assert [unpack_words(p, W) for _, _, _, p in got] == [value, value]
