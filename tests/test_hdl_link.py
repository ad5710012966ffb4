"""The host link on Amaranth's simulator: commands, results, every malformed frame, and a fuzz
run of random bytes that ends with a valid exchange still working."""

import random
import struct
from itertools import cycle

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.hdl import Fragment
from stream_drivers import monitor, simulate

from montpipe.device.model import exponent_digits, montgomery_words, mprime
from montpipe.device.wire import (
    PROTOCOL_VERSION,
    REQUEST_MARKER,
    Capabilities,
    LinkStatus,
    Opcode,
    ResponseParser,
    caps_request,
    comb_request,
    encode_request,
    load_context_request,
    modexp_request,
    table_write_request,
    unpack_words,
)
from montpipe.driver.comb import CombShape
from montpipe.driver.comb import comb_digits as driver_comb_digits
from montpipe.driver.comb import comb_table as driver_comb_table
from montpipe.hdl.link import FrameLink

W, S, WINDOW, NW, LANES, CONTEXTS, TIMEOUT, ENTRIES = 16, 6, 2, 24, 2, 2, 200, 16


def make():
    return FrameLink(width=W, max_words=S, window=WINDOW, max_windows=NW, lanes=LANES,
                     contexts=CONTEXTS, timeout=TIMEOUT, clock_khz=125_000,
                     table_entries=ENTRIES)


class Frame(bytes):
    """A request the test host sends by the protocol's rule (docs/protocol.md): an
    exponentiation while only exponentiations, fewer than ``lanes``, are unanswered; any other
    command when nothing is (tags are unique within a test). Plain bytes go out at once."""

    @property
    def tag(self):
        return struct.unpack_from("<H", self, 4)[0]

    @property
    def opcode(self):
        return self[3]


def exchange(chunks, expected, backpressure=None, gap=5, limit=400_000, credits=LANES):
    """Send chunks (Frame, raw bytes, or an int: that many idle cycles; ``credits=None`` sends
    frames without waiting for answers; ``gap`` idle cycles
    after each byte, as a UART paces them, far more slowly), collect until
    `expected` responses parse (a count, or a predicate on the list of responses).
    Returns (responses, parser, quiet: nothing left in flight or on the wire at the end)."""
    done = expected if callable(expected) else (lambda rs: len(rs) >= expected)
    dut = make()
    parser = ResponseParser()
    responses = []
    ready = cycle(backpressure or [1])
    state = {}

    async def sender(ctx):
        sent = {}                                   # tag: is an exponentiation

        def waiting(modexp):
            open_ = [m for t, m in sent.items() if t not in {r.tag for r in responses}]
            if not modexp:
                return bool(open_)
            return not all(open_) or len(open_) >= credits

        for chunk in chunks:
            if isinstance(chunk, int):
                if chunk:
                    await ctx.tick().repeat(chunk)
                continue
            if isinstance(chunk, Frame) and credits is not None:
                while waiting(chunk.opcode == Opcode.MODEXP):
                    await ctx.tick()
                sent[chunk.tag] = chunk.opcode == Opcode.MODEXP
            for b in chunk:
                ctx.set(dut.i_rx.valid, 1)
                ctx.set(dut.i_rx.payload, b)
                await ctx.tick()
                if gap:
                    ctx.set(dut.i_rx.valid, 0)
                    await ctx.tick().repeat(gap)
            ctx.set(dut.i_rx.valid, 0)

    async def receiver(ctx):
        n = 0
        while not done(responses):
            ctx.set(dut.o_tx.ready, next(ready))
            await ctx.tick()
            n += 1
            assert n < limit, f"gave up after {n} cycles with {responses}"
        for _ in range(50):
            await ctx.tick()
        state["quiet"] = not ctx.get(dut.o_tx.valid) and not ctx.get(dut.array.busy)

    simulate(dut, receiver, background=[sender], processes=[
        monitor(dut.o_tx, lambda data, _: responses.extend(parser.feed(bytes([data]))))])
    return responses, parser, state["quiet"]


def context(tag, ctx, mod):
    s = montgomery_words(mod.bit_length(), W)
    return Frame(load_context_request(tag, ctx, mod, width=W, words=s, mprime=mprime(mod, W),
                                      r2=pow(2, 2 * W * s, mod)))


def modexp(tag, ctx, base, e, mod, const_time=False):
    s = montgomery_words(mod.bit_length(), W)
    return Frame(modexp_request(tag, ctx, base, exponent_digits(e, WINDOW), width=W, words=s,
                                const_time=const_time))


def test_capabilities():
    (resp,), parser, quiet = exchange([Frame(caps_request(7))], 1)
    assert (resp.opcode, resp.tag, resp.status) == (Opcode.CAPS, 7, LinkStatus.OK)
    caps = Capabilities.decode(resp.payload)
    assert caps == Capabilities(PROTOCOL_VERSION, W, W * S - 2, LANES, WINDOW, NW, CONTEXTS,
                                125_000, ENTRIES)
    assert parser.bad_crc == 0 and quiet


@pytest.mark.parametrize("backpressure, gap", [(None, 5), ([1, 0, 0, 1, 0], 9)])
def test_contexts_and_results_in_order(backpressure, gap):
    rng = random.Random(5)
    mods = [rng.getrandbits(60) | 1 | 1 << 59, rng.getrandbits(90) | 1 | 1 << 89]
    chunks = [context(1, 0, mods[0]), context(2, 1, mods[1])]
    cases = []
    for tag in range(10, 15):
        ctx = rng.randrange(2)
        base, e = rng.randrange(mods[ctx]), rng.getrandbits(rng.choice([3, 40]))
        cases.append((tag, ctx, base, e))
        chunks.append(modexp(tag, ctx, base, e, mods[ctx], const_time=tag % 2))
    responses, parser, quiet = exchange(chunks, 2 + len(cases), backpressure, gap)
    assert [(r.opcode, r.tag, r.status) for r in responses[:2]] == \
        [(Opcode.LOAD_CONTEXT, 1, LinkStatus.OK), (Opcode.LOAD_CONTEXT, 2, LinkStatus.OK)]
    results = responses[2:]
    assert [r.tag for r in results] == [c[0] for c in cases]
    for (tag, ctx, base, e), r in zip(cases, results):
        assert r.status == LinkStatus.OK and r.opcode == Opcode.MODEXP
        assert unpack_words(r.payload, W) == pow(base, e, mods[ctx]), tag
    assert parser.bad_crc == 0 and parser.discarded == 0 and quiet


def _corrupt(frame, index):
    frame = bytearray(frame)
    frame[index] ^= 0x40
    return bytes(frame)


def test_every_malformed_frame_gets_its_error_and_the_link_resynchronises():
    rng = random.Random(6)
    mod = rng.getrandbits(60) | 1 | 1 << 59
    good = modexp(90, 0, 12345, 65537, mod)
    short_payload = Frame(encode_request(Opcode.MODEXP, 31, good[6:-4][:-2]))  # 2 bytes short
    long_payload = Frame(encode_request(Opcode.MODEXP, 32, good[6:-4] + b"\0"))
    too_long_len = bytes([REQUEST_MARKER]) + struct.pack("<H", 5000)
    too_short_len = bytes([REQUEST_MARKER, 2, 0])
    chunks = [
        b"\x00\x13garbage",                                    # noise before a marker: skipped
        Frame(caps_request(20)[:-1] + b"\x00"),                 # bad CRC
        Frame(encode_request(0x42, 21)),                        # unknown opcode
        modexp(22, 0, 5, 3, mod),                               # context 0 never loaded
        context(23, 0, mod),
        short_payload, long_payload,
        modexp(24, 5, 5, 3, mod),                               # context out of range
        Frame(encode_request(Opcode.CAPS, 25, b"x")),           # CAPS takes no payload
        too_long_len, TIMEOUT + 10,
        too_short_len,
        modexp(26, 0, mod, 3, mod),                             # base = m: the core refuses
        Frame(good[:20]), TIMEOUT + 10,                         # stops mid-frame: timeout
        good,
    ]
    want = [
        (0, 20, LinkStatus.BAD_CRC), (0x42, 21, LinkStatus.UNKNOWN_OPCODE),
        (Opcode.MODEXP, 22, LinkStatus.NO_CONTEXT), (Opcode.LOAD_CONTEXT, 23, LinkStatus.OK),
        (Opcode.MODEXP, 31, LinkStatus.SHORT_FRAME), (Opcode.MODEXP, 32, LinkStatus.LONG_FRAME),
        (Opcode.MODEXP, 24, LinkStatus.NO_CONTEXT), (Opcode.CAPS, 25, LinkStatus.LONG_FRAME),
        (0, 0, LinkStatus.LONG_FRAME), (0, 0, LinkStatus.SHORT_FRAME),
        (Opcode.MODEXP, 26, LinkStatus.BASE_NOT_BELOW_MODULUS),
        (0, 90, LinkStatus.SHORT_FRAME),
        (Opcode.MODEXP, 90, LinkStatus.OK),
    ]
    responses, parser, quiet = exchange(chunks, len(want))
    assert [(r.opcode, r.tag, r.status) for r in responses] == want
    assert unpack_words(responses[-1].payload, W) == pow(12345, 65537, mod)
    assert all(r.payload == b"" for r in responses[:-1] if r.status != LinkStatus.OK)
    assert parser.bad_crc == 0 and quiet


def test_status_counts_frames_and_errors():
    frames = [Frame(caps_request(1)), Frame(caps_request(2)[:-1] + b"\x01"),
              Frame(encode_request(Opcode.STATUS, 3))]
    responses, _, _ = exchange(frames, 3)
    status = responses[-1]
    assert status.status == LinkStatus.OK
    frames_ok, bad_crc, errors, timeouts = struct.unpack("<4I", status.payload)
    assert (frames_ok, bad_crc, errors, timeouts) == (2, 1, 1, 0)


def test_fuzz_random_bytes_then_a_valid_exchange_still_works():
    """Noise (with planted markers and plausible lengths) provokes whatever errors it does;
    a host that then pauses past the timeout and sends valid frames gets them all answered."""
    rng = random.Random(7)
    mod = rng.getrandbits(50) | 1 | 1 << 49
    chunks = []
    for _ in range(8):
        blob = bytearray(rng.randbytes(rng.randrange(5, 80)))
        if rng.random() < 0.6:
            at = rng.randrange(len(blob))
            blob[at:at + 3] = bytes([REQUEST_MARKER, rng.randrange(0, 60), 0])
        chunks += [bytes(blob), rng.choice([0, 3, TIMEOUT + 10])]
    chunks += [TIMEOUT + 10, context(100, 1, mod), modexp(101, 1, 77, 12345, mod),
               Frame(caps_request(102))]

    def answered(responses):
        return {100, 101, 102} <= {r.tag for r in responses if r.status == LinkStatus.OK}

    responses, parser, quiet = exchange(chunks, answered)
    got = {r.tag: r for r in responses if r.status == LinkStatus.OK}
    assert unpack_words(got[101].payload, W) == pow(77, 12345, mod)
    assert Capabilities.decode(got[102].payload).lanes == LANES
    assert parser.bad_crc == 0 and quiet
    assert all(r.status != LinkStatus.OK for r in responses if r.tag not in (100, 101, 102))


def test_a_frame_into_full_buffers_is_refused_not_lost():
    """Faster than the host rule allows, with the responses held up: the responder holds one
    answer, the executor waits to hand over the next, the two buffers fill, and the frame after
    that is answered BUSY with its tag; the others all complete."""
    rng = random.Random(8)
    mod = rng.getrandbits(60) | 1 | 1 << 59
    frames = [context(t, t % 2, mod) for t in (1, 2, 3, 4)]
    responses, _, quiet = exchange(frames, 4, backpressure=[0] * 3000 + [1] * 3000, gap=0,
                                   credits=None)
    # which of the last two finds both buffers full depends on the executor's cycle count per
    # frame; exactly one of them does, and every frame is answered once with its tag
    answers = sorted((r.tag, r.status) for r in responses)
    assert [tag for tag, _ in answers] == [1, 2, 3, 4]
    assert answers[:2] == [(1, LinkStatus.OK), (2, LinkStatus.OK)]
    assert sorted(status for _, status in answers[2:]) == [LinkStatus.OK, LinkStatus.BUSY]
    assert quiet


@pytest.mark.parametrize("argument, value, message", [
    ("contexts", 0, "Context count must be an integer from 1 to 255, not 0"),
    ("contexts", 256, "Context count must be an integer from 1 to 255, not 256"),
    ("timeout", 0, "Timeout must be a positive integer of cycles, not 0"),
    ("lanes", 0, "Lane count must be a positive integer, not 0"),
])
def test_refused_arguments_are_named_and_leave_no_unused_elaboratable(argument, value,
                                                                       message):
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=message):
            FrameLink(**{argument: value})
        gc.collect()
    assert [w for w in caught if "never used" in str(w.message)] == []


def test_capabilities_and_sizes_are_read_only():
    dut = FrameLink(width=W, max_words=S, max_windows=NW, contexts=CONTEXTS)
    assert dut.caps.contexts == CONTEXTS and dut.buffer_bytes == 3 + 4 + S * 2 + NW
    for name in ("caps", "buffer_bytes", "array"):
        with pytest.raises(AttributeError):
            setattr(dut, name, None)
    Fragment.get(dut, None)             # elaborated, so not an unused elaboratable


# -- the comb: a table written once, jobs of digits -------------------------------------------

def comb_table(g, mod, bits, tables, steps):
    """The driver's table of g, in Montgomery form."""
    r = pow(2, W * montgomery_words(mod.bit_length(), W), mod)
    return [v * r % mod for v in driver_comb_table(g, mod, CombShape(bits, tables, steps))]


def comb_digits(alpha, bits, tables, steps):
    return driver_comb_digits(alpha, CombShape(bits, tables, steps))


def comb_frames(tag, ctx, g, mod, bits, tables, steps, alphas, first_write_tag=900):
    s = montgomery_words(mod.bit_length(), W)
    writes = [Frame(table_write_request(first_write_tag + i, ctx, i, v, width=W, words=s))
              for i, v in enumerate(comb_table(g, mod, bits, tables, steps))]
    jobs = [comb_digits(a, bits, tables, steps) for a in alphas]
    return writes, Frame(comb_request(tag, ctx, steps, tables, bits, jobs))


@pytest.mark.parametrize("bits, tables, steps, jobs", [(2, 2, 3, 2), (3, 2, 2, 1), (4, 1, 5, 2),
                                                       (1, 3, 4, 2)])
def test_comb_powers_against_gmpy2(bits, tables, steps, jobs):
    """Fixed-base powers by the link's comb: every job's power exact, answered with tag + job
    and the COMB opcode, zero and all-ones exponents included; an exponentiation after it
    works."""
    rng = random.Random(bits * 10 + tables)
    mod = rng.getrandbits(80) | 1 | (1 << 79)
    g = rng.randrange(2, mod)
    e_bits = bits * tables * steps
    alphas = [0, (1 << e_bits) - 1, rng.getrandbits(e_bits)][:jobs] if jobs > 1 else \
        [rng.getrandbits(e_bits)]
    writes, comb = comb_frames(40, 1, g, mod, bits, tables, steps, alphas)
    chunks = [context(1, 1, mod), *writes, comb, modexp(60, 1, 5, 7, mod)]
    responses, parser, quiet = exchange(chunks, 2 + len(writes) + len(alphas))
    by_tag = {r.tag: r for r in responses}
    assert all(by_tag[w.tag].status == LinkStatus.OK for w in writes)
    for j, alpha in enumerate(alphas):
        r = by_tag[40 + j]
        assert (r.opcode, r.status) == (Opcode.COMB, LinkStatus.OK), r
        assert unpack_words(r.payload, W) == pow(g, alpha, mod), (j, alpha)
    assert unpack_words(by_tag[60].payload, W) == pow(5, 7, mod)
    assert parser.bad_crc == 0 and quiet


def test_comb_refusals():
    """Every way a table write or a comb can be wrong gets its status and runs nothing; the
    table belongs to the context that wrote it until that context is loaded again or a reset."""
    rng = random.Random(7)
    mod = rng.getrandbits(80) | 1 | (1 << 79)
    other = rng.getrandbits(60) | 1 | (1 << 59)
    s = montgomery_words(mod.bit_length(), W)
    g = rng.randrange(2, mod)
    writes, good = comb_frames(70, 0, g, mod, 2, 2, 3, [5, 9])
    digits = comb_digits(5, 2, 2, 3)

    def comb(tag, ctx=0, steps=3, tables=2, bits=2, jobs=(digits,)):
        """A comb frame as a host could send it, shape checks left to the device."""
        payload = bytes([ctx, steps, tables, bits, len(jobs)]) + b"".join(jobs)
        return Frame(encode_request(Opcode.COMB, tag, payload))

    chunks = [
        comb(1),                                                    # no context at all
        context(2, 0, mod), context(3, 1, other),
        comb(4),                                                    # no table yet
        Frame(table_write_request(5, 0, ENTRIES, 1, width=W, words=s)),     # entry too far
        Frame(table_write_request(6, 1, 0, 1, width=W, words=s)[:-9] + b""),  # cut short
        Frame(encode_request(Opcode.TABLE_WRITE, 7, bytes([0, 0, 0]) + bytes(2 * s + 2))),
        Frame(encode_request(Opcode.TABLE_WRITE, 8, bytes([3, 0, 0]) + bytes(2 * s))),  # ctx
        *writes,
        comb(10, ctx=1),                                            # the table is context 0's
        comb(11, bits=9), comb(12, steps=0), comb(13, tables=0), comb(14, bits=0),
        comb(15, tables=5, bits=2, jobs=(bytes(15),)),              # 5 x 4 entries > 16
        comb(16, jobs=(digits,) * (LANES + 1)),                     # more jobs than lanes
        Frame(encode_request(Opcode.COMB, 17, bytes([0, 3, 2, 2, 1]) + digits[:-1])),
        Frame(encode_request(Opcode.COMB, 18, bytes([0, 3, 2, 2, 1]) + digits + b"x")),
        Frame(encode_request(Opcode.COMB, 19, bytes([0, 3, 2]))),   # no header
        Frame(encode_request(Opcode.COMB, 20, bytes([0, 3, 2, 2, 0]))),     # no jobs
        good,
        context(21, 0, mod),                                        # reloads: table gone
        comb(22),
    ]
    expected = 1 + 2 + 1 + 4 + len(writes) + 11 + 2 + 1 + 1
    responses, parser, quiet = exchange(chunks, expected)
    status = {r.tag: r.status for r in responses}
    assert status[1] == status[4] == status[10] == status[22] == LinkStatus.NO_CONTEXT
    assert status[5] == LinkStatus.BAD_LENGTH
    assert status[8] == LinkStatus.NO_CONTEXT
    assert status[6] == LinkStatus.SHORT_FRAME or status[6] == LinkStatus.BAD_CRC
    assert status[7] == LinkStatus.LONG_FRAME
    for tag in (11, 12, 13, 14, 15, 16, 20):
        assert status[tag] == LinkStatus.BAD_LENGTH, tag
    assert status[17] == LinkStatus.SHORT_FRAME and status[18] == LinkStatus.LONG_FRAME
    assert status[19] == LinkStatus.SHORT_FRAME
    results = {r.tag: unpack_words(r.payload, W) for r in responses if r.opcode == Opcode.COMB
               and r.status == LinkStatus.OK}
    assert results == {70: pow(g, 5, mod), 71: pow(g, 9, mod)}
    assert parser.bad_crc == 0 and quiet
