"""The wire codec and the host's response parser: round trips, and that noise on the line
never costs a whole frame (property tests; `make fuzz` runs them longer)."""

import itertools
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from montpipe.device.wire import (
    RESPONSE_MARKER,
    Capabilities,
    Response,
    ResponseParser,
    encode_request,
    encode_response,
    pack_words,
    unpack_words,
)

CAPS = Capabilities(1, 16, 512, 4, 2, 256, 4, 100_000)
LIMIT = CAPS.max_response_length()

responses = st.builds(
    lambda opcode, tag, status, payload: Response(opcode, tag, status, payload),
    st.integers(0, 0x7F), st.integers(0, 0xFFFF), st.integers(0, 0xFF),
    st.binary(max_size=LIMIT - 4))


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _same(r: Response, want: Response) -> bool:
    return (r.opcode, r.tag, int(r.status), r.payload) == \
        (want.opcode, want.tag, want.status, want.payload)


@given(st.lists(responses, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_property_responses_round_trip_in_any_chunking(frames, cuts):
    data = b"".join(encode_response(r.opcode, r.tag, r.status, r.payload) for r in frames)
    parser = ResponseParser(LIMIT)
    got = [r for chunk in _chunks(data, cuts) for r in parser.feed(chunk)]
    assert len(got) == len(frames) and all(map(_same, got, frames))
    assert parser.discarded == 0


noise = st.one_of(
    st.binary(max_size=40),
    # a stray marker with a plausible length, a length beyond the device's, or a cut frame
    st.builds(lambda n, tail: bytes([RESPONSE_MARKER]) + struct.pack("<H", n) + tail,
              st.integers(0, 0xFFFF), st.binary(max_size=12)),
    # (cut before its CRC: a frame missing only its last byte, that byte a marker, is a
    # frame again with the next frame's marker, which no parser could tell apart)
    st.builds(lambda r, k: (lambda f: f[:min(k, len(f) - 4)])(
        encode_response(r.opcode, r.tag, r.status, r.payload)), responses, st.integers(1, 30)),
).filter(lambda junk: not ResponseParser(LIMIT).feed(junk))   # noise that is no frame itself


@given(st.lists(st.tuples(noise, responses), min_size=1, max_size=4), noise,
       st.lists(st.integers(0, 10_000), max_size=8))
def test_property_noise_never_costs_a_whole_frame(pairs, trailing, cuts):
    """Whatever bytes come between frames (stray markers with any length, frames cut short),
    every whole frame is delivered, in order, once the bytes are in: nothing waits for a
    timeout."""
    data = b"".join(junk + encode_response(r.opcode, r.tag, r.status, r.payload)
                    for junk, r in pairs) + trailing
    parser = ResponseParser(LIMIT)
    got = [r for chunk in _chunks(data, cuts) for r in parser.feed(chunk)]
    frames = [r for _, r in pairs]
    assert len(got) == len(frames) and all(map(_same, got, frames))


@given(st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.binary(max_size=600))
def test_property_requests_carry_their_fields(opcode, tag, payload):
    frame = encode_request(opcode, tag, payload)
    length, op, t = struct.unpack_from("<HBH", frame, 1)
    assert frame[0] == 0xA5 and (length, op, t) == (3 + len(payload), opcode, tag)
    assert frame[6:-4] == payload
    assert struct.unpack("<I", frame[-4:])[0] == zlib.crc32(frame[1:-4])


@given(st.integers(2, 36), st.integers(1, 40), st.data())
def test_property_words_round_trip(width, words, data):
    value = data.draw(st.integers(0, (1 << (width * words)) - 1))
    packed = pack_words(value, words, width)
    assert unpack_words(packed, width) == value
    with pytest.raises(ValueError, match="does not fit"):
        pack_words(1 << (width * words), words, width)


def test_max_response_length_follows_the_capabilities():
    # a 512-bit modulus in 16-bit words: 33 words of 2 bytes, plus status and header
    assert LIMIT == 4 + 33 * 2
    assert Capabilities(1, 36, 4102, 15, 2, 1024, 4, 75_000).max_response_length() == \
        4 + 114 * 5
    # a device reporting nonsense still gives a parser, never a division by zero
    assert Capabilities(1, 0, 65535, 1, 2, 1, 1, 0).max_response_length() == 0xFFFF


def test_capabilities_decode_to_the_one_device_configuration():
    """What a device reports is the same description the board tops are built from."""
    from montpipe.device.config import DeviceConfig
    from montpipe.device.wire import PROTOCOL_VERSION, Capabilities

    built = DeviceConfig()
    caps = Capabilities(PROTOCOL_VERSION, built.width, built.n_max_bits, built.lanes,
                        built.window, built.max_windows, built.contexts,
                        round(built.clock_mhz * 1000), built.table_entries)
    assert Capabilities.decode(caps.encode()).device_config() == built
    with pytest.raises(ValueError, match="word width of 0 bits"):
        Capabilities(1, 0, 100, 1, 2, 4, 1, 1000).device_config()
    with pytest.raises(ValueError, match="device clock_mhz must be a positive number, not 0"):
        Capabilities(1, 16, 126, 1, 2, 4, 1, 0).device_config()
