"""The host link's wire protocol (``docs/protocol.md``): frames, commands, and a resynchronising
response parser. Pure Python: the ``sim`` and ``fpga`` backends and the gateware tests share it.

A request frame is ``A5 | length:u16 | opcode:u8 | tag:u16 | payload | crc:u32``; a response is
``5A | length:u16 | opcode|0x80 | tag:u16 | status:u8 | payload | crc:u32``. ``length`` counts
the bytes from the opcode to the end of the payload; the CRC is CRC-32 (IEEE, as ``zlib.crc32``)
of the length, opcode, tag, status and payload bytes; everything is little-endian.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from .config import DeviceConfig

__all__ = [
    "COMB_MAX_DIGITS",
    "PROTOCOL_VERSION",
    "REQUEST_MARKER",
    "RESPONSE_MARKER",
    "Capabilities",
    "LinkStatus",
    "Opcode",
    "Response",
    "ResponseParser",
    "caps_request",
    "comb_request",
    "encode_request",
    "encode_response",
    "load_context_request",
    "modexp_request",
    "modexp_wire_bytes",
    "pack_words",
    "table_write_request",
    "unpack_words",
]

PROTOCOL_VERSION = 2
#: most digits a comb job may have (steps x tables)
COMB_MAX_DIGITS = 256
REQUEST_MARKER = 0xA5
RESPONSE_MARKER = 0x5A


class Opcode(enum.IntEnum):
    CAPS = 0x01
    LOAD_CONTEXT = 0x02
    MODEXP = 0x03
    STATUS = 0x04
    RESET = 0x05
    TABLE_WRITE = 0x06
    COMB = 0x07


class LinkStatus(enum.IntEnum):
    """Response status: the core's result statuses, then the link's own."""

    OK = 0
    BAD_LENGTH = 1              # core: s or windows out of range
    EVEN_MODULUS = 2
    ZERO_MODULUS = 3
    BASE_NOT_BELOW_MODULUS = 4
    BAD_FRAME = 5               # core: request frame malformed (not reachable through the link)
    NO_PROGRAM = 6              # core: a product packet without its BEGIN (protocol 1 sends none)
    BAD_CRC = 0x10
    UNKNOWN_OPCODE = 0x11
    SHORT_FRAME = 0x12          # payload shorter than its fields need, or bytes stopped coming
    LONG_FRAME = 0x13           # payload longer than its fields, or length above the buffer
    NO_CONTEXT = 0x14           # context index out of range or never loaded
    BUSY = 0x15                 # a frame arrived while the request buffer was still full


def word_bytes(width: int) -> int:
    """Bytes a ``width``-bit word takes on the wire: ``ceil(width / 8)``."""
    return -(-width // 8)


def pack_words(value: int, words: int, width: int) -> bytes:
    """``value`` as ``words`` little-endian words of ``width`` bits, each in ``ceil(width/8)``
    bytes."""
    if value < 0 or value >> (words * width):
        raise ValueError(f"value of {value.bit_length()} bits does not fit {words} words of "
                         f"{width} bits")
    size = word_bytes(width)
    mask = (1 << width) - 1
    return b"".join(((value >> (width * k)) & mask).to_bytes(size, "little")
                    for k in range(words))


def unpack_words(data: bytes, width: int) -> int:
    size = word_bytes(width)
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes is not a whole number of {size}-byte words")
    return sum(int.from_bytes(data[i:i + size], "little") << (width * (i // size))
               for i in range(0, len(data), size))


def encode_request(opcode: int, tag: int, payload: bytes = b"") -> bytes:
    if not 0 <= tag < 1 << 16:
        raise ValueError(f"tag must be in [0, 65536), not {tag}")
    body = struct.pack("<HBH", 3 + len(payload), opcode, tag) + payload
    return bytes([REQUEST_MARKER]) + body + struct.pack("<I", zlib.crc32(body))


def encode_response(opcode: int, tag: int, status: int, payload: bytes = b"") -> bytes:
    """A device's response frame (for device emulators and tests; the gateware builds its own)."""
    body = struct.pack("<HBHB", 4 + len(payload), opcode | 0x80, tag, status) + payload
    return bytes([RESPONSE_MARKER]) + body + struct.pack("<I", zlib.crc32(body))


def caps_request(tag: int) -> bytes:
    return encode_request(Opcode.CAPS, tag)


def load_context_request(tag: int, context: int, modulus: int, *, width: int, words: int,
                         mprime: int, r2: int) -> bytes:
    size = word_bytes(width)
    payload = struct.pack("<BH", context, words) + mprime.to_bytes(size, "little") + \
        pack_words(modulus, words, width) + pack_words(r2, words, width)
    return encode_request(Opcode.LOAD_CONTEXT, tag, payload)


def modexp_request(tag: int, context: int, base: int, digits: list[int], *, width: int,
                   words: int, const_time: bool = False) -> bytes:
    payload = struct.pack("<BBH", context, int(const_time), len(digits)) + \
        pack_words(base, words, width) + bytes(digits)
    return encode_request(Opcode.MODEXP, tag, payload)


def table_write_request(tag: int, context: int, index: int, value: int, *, width: int,
                        words: int) -> bytes:
    """Write entry ``index`` of the device's comb table (Montgomery form, below ``2m``, under
    ``context``'s modulus)."""
    payload = struct.pack("<BH", context, index) + pack_words(value, words, width)
    return encode_request(Opcode.TABLE_WRITE, tag, payload)


def comb_request(tag: int, context: int, steps: int, tables: int, bits: int,
                 jobs: list[bytes]) -> bytes:
    """A comb over the device's table: per job ``steps × tables`` entry digits (``bits`` wide,
    one a byte; the most significant step first, within a step table 0 first). Job ``j`` is
    answered by its own response with tag ``tag + j`` (mod 2^16)."""
    for j, digits in enumerate(jobs):
        if len(digits) != steps * tables:
            raise ValueError(f"job {j} has {len(digits)} digits; a job of {steps} steps over "
                             f"{tables} tables has {steps * tables}")
    payload = struct.pack("<BBBBB", context, steps, tables, bits, len(jobs)) + b"".join(jobs)
    return encode_request(Opcode.COMB, tag, payload)


#: an exponentiation's request and result frames without their words and digits: framing,
#: header and fields, taken from the encoders (a request with no words and no digits, an
#: empty response)
_FRAMES_BYTES = len(modexp_request(0, 0, 0, [], width=8, words=0)) + \
    len(encode_response(Opcode.MODEXP, 0, LinkStatus.OK))


def modexp_wire_bytes(words: int, width: int, digits: int) -> int:
    """Bytes one exponentiation puts on the wire (docs/protocol.md): its request, with the base
    and a byte a digit (the modulus and R² are the context's, loaded once), and its response,
    with the result."""
    return _FRAMES_BYTES + 2 * words * word_bytes(width) + digits


@dataclass(frozen=True)
class Response:
    opcode: int
    tag: int
    status: LinkStatus | int
    payload: bytes


@dataclass(frozen=True)
class Capabilities:
    version: int
    width: int
    n_max_bits: int
    lanes: int
    window: int
    max_windows: int
    contexts: int
    clock_khz: int
    table_entries: int = 0

    FORMAT = "<BBHBBHBIH"

    @classmethod
    def decode(cls, payload: bytes) -> Capabilities:
        size = struct.calcsize(cls.FORMAT)
        if len(payload) != size:
            raise ValueError(f"capabilities payload is {len(payload)} bytes, expected {size}")
        return cls(*struct.unpack(cls.FORMAT, payload))

    def encode(self) -> bytes:
        return struct.pack(self.FORMAT, self.version, self.width, self.n_max_bits, self.lanes,
                           self.window, self.max_windows, self.contexts, self.clock_khz,
                           self.table_entries)

    def device_config(self) -> DeviceConfig:
        """The build these capabilities describe, as the board tops, the simulated board and
        the ``model`` backend describe one (the UART's rate is not reported: the reference's is
        assumed). Raises ``ValueError`` for capabilities no build can have."""
        if self.width < 1:
            raise ValueError(f"capabilities report a word width of {self.width} bits")
        return DeviceConfig(lanes=self.lanes, width=self.width,
                            max_words=(self.n_max_bits + 2) // self.width, window=self.window,
                            max_windows=self.max_windows, contexts=self.contexts,
                            clock_mhz=self.clock_khz / 1000, table_entries=self.table_entries)

    def max_response_length(self) -> int:
        """The largest ``length`` field a response from this device can carry: a MODEXP result
        of the widest context (``s = ceil((N_MAX + 2) / W)`` words), CAPS or STATUS."""
        width = max(self.width, 1)            # a device reporting nonsense gets no division
        words = -(-(self.n_max_bits + 2) // width)
        longest = 4 + max(words * word_bytes(width), struct.calcsize(self.FORMAT),
                          _STATUS_PAYLOAD)
        return min(longest, 0xFFFF)           # what the length field can say


#: STATUS's response payload: four u32 counters
_STATUS_PAYLOAD = 16


class ResponseParser:
    """Feed bytes, get whole responses. Bytes before a marker, and frames whose CRC fails, are
    skipped (counted in ``discarded``/``bad_crc``): the parser resynchronises on the next
    marker, as the device does.

    ``max_length`` is the largest ``length`` a response may carry (give
    :meth:`Capabilities.max_response_length` once the device's CAPS are known): a marker
    followed by a longer one is noise, dropped at once. A marker followed by a plausible
    length that is still waiting for its bytes does not hold up a whole, CRC-valid frame that
    starts after it: that frame is taken, and the bytes before it dropped, so a stray marker
    costs nothing rather than a timeout.
    """

    def __init__(self, max_length: int = 4096) -> None:
        if not isinstance(max_length, int) or not 4 <= max_length <= 0xFFFF:
            raise ValueError(f"max_length must be an integer from 4 to 65535, not "
                             f"{max_length!r}")
        self._buf = bytearray()
        self.max_length = max_length
        self.discarded = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[Response]:
        self._buf += data
        out = []
        while True:
            start = self._buf.find(RESPONSE_MARKER)
            if start < 0:
                self.discarded += len(self._buf)
                self._buf.clear()
                return out
            if start:
                self.discarded += start
                del self._buf[:start]
            if len(self._buf) < 3:
                return out
            (length,) = struct.unpack_from("<H", self._buf, 1)
            if not 4 <= length <= self.max_length:
                self.discarded += 1
                del self._buf[:1]
                continue
            total = 1 + 2 + length + 4
            if len(self._buf) < total:
                later = self._whole_frame_after(1)
                if later < 0:
                    return out
                # the marker at 0 was noise: a whole frame has arrived behind it
                self.discarded += later
                del self._buf[:later]
                continue
            body = bytes(self._buf[1:3 + length])
            (crc,) = struct.unpack_from("<I", self._buf, 3 + length)
            if zlib.crc32(body) != crc:
                self.bad_crc += 1
                self.discarded += 1
                del self._buf[:1]
                continue
            opcode, tag, status = struct.unpack_from("<BHB", body, 2)
            if status in LinkStatus._value2member_map_:
                status = LinkStatus(status)
            out.append(Response(opcode & 0x7F, tag, status, body[6:]))
            del self._buf[:total]

    def _whole_frame_after(self, start: int) -> int:
        """The offset of the first marker at or after ``start`` that begins a complete frame
        with a valid CRC, or -1."""
        buf = self._buf
        at = buf.find(RESPONSE_MARKER, start)
        while at >= 0 and at + 7 <= len(buf):
            (length,) = struct.unpack_from("<H", buf, at + 1)
            end = at + 3 + length
            if 4 <= length <= self.max_length and end + 4 <= len(buf):
                (crc,) = struct.unpack_from("<I", buf, end)
                if zlib.crc32(buf[at + 1:end]) == crc:
                    return at
            at = buf.find(RESPONSE_MARKER, at + 1)
        return -1
