"""What the host link's parts share: the CRC-32 step, a shift-add multiply, and the interfaces
between :class:`~montpipe.hdl.link_receiver.LinkReceiver`,
:class:`~montpipe.hdl.link_executor.LinkExecutor` and
:class:`~montpipe.hdl.link_responder.LinkResponder` (joined in
:class:`~montpipe.hdl.link.FrameLink`).

Every member of these interfaces is driven by a register or by the same logic that drove it
when the three parts were one module, so splitting them adds no logic between a register and
its decision.
"""

from __future__ import annotations

from amaranth import Cat
from amaranth.hdl import ValueLike
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "Contents",
    "CountersSignature",
    "FrameBufferSignature",
    "LinkError",
    "Response",
    "crc32_update",
    "times",
]

_POLY = 0xEDB88320


def _crc32_step(value: int) -> int:
    for _ in range(8):
        value = (value >> 1) ^ _POLY if value & 1 else value >> 1
    return value


#: bit i of one byte's CRC step is the parity of (crc ^ byte) & _CRC_TAPS[i]: the step is linear
_CRC_TAPS = [sum(1 << j for j in range(32) if _crc32_step(1 << j) >> i & 1) for i in range(32)]


def crc32_update(crc: ValueLike, byte: ValueLike):
    """One byte of the reflected CRC-32 (IEEE) as an Amaranth expression: 32 parities.

    Written as eight conditional shifts, the expression would name each intermediate value
    three times, and the netlist would grow as 3^8. ``amaranth.lib.crc.Processor`` computes
    the same parities, but selects its start value with a multiplexer in front of them on every
    update; here the receiver and the responder load the start value in states of their own,
    so the step stays a bare XOR tree behind the CRC register.
    """
    c = crc ^ byte
    return Cat(*((c & taps).xor() for taps in _CRC_TAPS))


def times(value: ValueLike, constant: int):
    """``value × constant`` as a sum of shifted copies.

    yosys maps a ``*`` by a constant to a DSP multiplier, a slow combinational block that
    would sit in front of the link's length checks and read addresses; shifted adds stay in
    the fabric's carry chains.
    """
    if not isinstance(constant, int) or constant < 1:
        raise ValueError(f"The constant must be a positive integer, not {constant!r}")
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class Contents(enum.Enum, shape=2):
    """What follows the status in one of the executor's responses."""

    NOTHING = 0
    CAPABILITIES = 1
    COUNTERS = 2


#: a response the executor hands the responder: opcode (with bit 7 set), tag, status, payload
Response = data.StructLayout({"op": 8, "tag": 16, "status": 8, "contents": Contents})

#: an error the receiver reports before a frame reaches the executor (tag 0 if not yet known)
LinkError = data.StructLayout({"status": 8, "tag": 16})


class FrameBufferSignature(wiring.Signature):
    """A verified request frame, held in the receiver's request buffer, as the receiver offers
    it (flip it for the executor).

    Members
    -------
    valid : Out(1)
        A frame is held; ``length`` and the buffer's bytes stay put until ``release``.
    length : Out(16)
        Its body length in bytes (opcode, tag and payload).
    addr : In(range(buffer_bytes + 1))
        The byte offset the executor reads, within the frame.
    data : Out(8)
        The byte at ``addr`` as of the previous cycle (a block-RAM read).
    release : In(1)
        The executor is done with the frame: the receiver may fill the buffer again.

    Parameters
    ----------
    buffer_bytes:
        The longest frame body a buffer holds.
    """

    def __init__(self, buffer_bytes: int) -> None:
        if not isinstance(buffer_bytes, int) or buffer_bytes < 3:
            raise ValueError(f"The buffer must hold at least 3 bytes (opcode and tag), not "
                             f"{buffer_bytes!r}")
        self._buffer_bytes = buffer_bytes
        super().__init__({
            "valid": Out(1),
            "length": Out(16),
            "addr": In(range(buffer_bytes + 1)),
            "data": Out(8),
            "release": In(1),
        })

    @property
    def buffer_bytes(self) -> int:
        return self._buffer_bytes

    def __eq__(self, other):
        return type(other) is type(self) and other.buffer_bytes == self.buffer_bytes

    def __repr__(self):
        return f"FrameBufferSignature({self._buffer_bytes})"


#: the receiver's counters, as the status command reports them
CountersSignature = wiring.Signature({
    name: Out(32) for name in ("frames_ok", "bad_crc", "errors", "timeouts")})
