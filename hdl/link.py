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

Three components do the work, each a state machine of its own:
:class:`~montpipe.hdl.link_receiver.LinkReceiver` (marker, length, CRC, the two request
buffers), :class:`~montpipe.hdl.link_executor.LinkExecutor` (acts on a verified frame: contexts,
the array's request frames, the link's own responses) and
:class:`~montpipe.hdl.link_responder.LinkResponder` (response frames with their CRC);
:class:`FrameLink` joins them with ``wiring.connect``.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..device.wire import COMB_MAX_DIGITS, PROTOCOL_VERSION, Capabilities, word_bytes
from ._checked import Checked
from .array import ModExpArray
from .link_common import crc32_update
from .link_executor import LinkExecutor
from .link_receiver import LinkReceiver
from .link_responder import LinkResponder

__all__ = ["FrameLink", "crc32_update"]


class FrameLink(Checked, wiring.Component):
    """Frames in, engine, frames out: a :class:`~montpipe.hdl.link_receiver.LinkReceiver`, a
    :class:`~montpipe.hdl.link_executor.LinkExecutor` and a
    :class:`~montpipe.hdl.link_responder.LinkResponder` around a
    :class:`~montpipe.hdl.array.ModExpArray`.

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
    table_entries:
        The comb table's entries (0: a build without the comb's opcodes).
    ecp5_dsp:
        Instantiate the lanes' ``MULT18X18D`` blocks (synthesis for ECP5; see
        :class:`~montpipe.hdl.montmul.MontMulLane`).

    Attributes
    ----------
    i_rx : In(stream.Signature(8))
        Request bytes; always ready.
    o_tx : Out(stream.Signature(8))
        Response bytes.
    busy : Out(1)
        Anything under way (a frame, a response, an exponentiation): an activity LED, and how
        the simulated board knows it may sleep until the host sends.

    Raises
    ------
    ValueError
        ``contexts`` not an integer from 1 to 255, ``timeout`` not a positive integer, or
        array parameters :class:`~montpipe.hdl.array.ModExpArray` refuses (checked before the
        link exists, so a refused link is not an unused elaboratable).
    """

    @classmethod
    def check(cls, *, width, max_words, window, max_windows, lanes, contexts, timeout,
              table_entries=0, **_) -> None:
        if not isinstance(table_entries, int) or not 0 <= table_entries <= 4096:
            raise ValueError(f"Table entries must be an integer from 0 to 4096, "
                             f"not {table_entries!r}")
        if not isinstance(contexts, int) or not 1 <= contexts <= 255:
            raise ValueError(f"Context count must be an integer from 1 to 255, not {contexts!r}")
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"Timeout must be a positive integer of cycles, not {timeout!r}")
        ModExpArray.check(lanes=lanes, width=width, max_words=max_words, window=window,
                          max_windows=max_windows)

    def __init__(self, *, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 32, lanes: int = 2, contexts: int = 2,
                 timeout: int = 100_000, clock_khz: int = 0, ecp5_dsp: bool = False,
                 table_entries: int = 0) -> None:
        self._width, self._max_words = width, max_words
        self._contexts, self._timeout = contexts, timeout
        self._lanes, self._entries = lanes, table_entries
        wb = word_bytes(width)
        load = 3 + 3 + wb + 2 * max_words * wb
        modexp = 3 + 4 + max_words * wb + max_windows
        # a comb: a job a lane, each up to COMB_MAX_DIGITS digits
        comb = 3 + 5 + lanes * COMB_MAX_DIGITS if table_entries else 0
        self._buffer_bytes = max(load, modexp, comb)
        self._caps = Capabilities(PROTOCOL_VERSION, width, width * max_words - 2, lanes, window,
                                  max_windows, contexts, clock_khz, table_entries)
        self._array = ModExpArray(lanes, width, max_words, window, max_windows,
                                  ecp5_dsp=ecp5_dsp)
        super().__init__({
            "i_rx": In(stream.Signature(8)),
            "o_tx": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    @property
    def array(self) -> ModExpArray:
        """The exponentiation lanes behind the link."""
        return self._array

    @property
    def buffer_bytes(self) -> int:
        """A request buffer's size in bytes: the longest valid frame body."""
        return self._buffer_bytes

    @property
    def caps(self) -> Capabilities:
        """What the capabilities command reports."""
        return self._caps

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.receiver = receiver = LinkReceiver(buffer_bytes=self._buffer_bytes,
                                                        timeout=self._timeout)
        m.submodules.executor = executor = LinkExecutor(
            width=self._width, max_words=self._max_words, contexts=self._contexts,
            buffer_bytes=self._buffer_bytes, lanes=self._lanes, table_entries=self._entries)
        m.submodules.responder = responder = LinkResponder(
            width=self._width, max_words=self._max_words, capabilities=self._caps)

        connect(m, flipped(self.i_rx), receiver.i_rx)
        connect(m, receiver.frame, executor.frame)
        connect(m, executor.o_req, array.i_req)
        connect(m, array.o_res, responder.i_result)
        connect(m, executor.o_words, responder.i_words)
        connect(m, executor.o_response, responder.i_response)
        connect(m, receiver.o_error, responder.i_error)
        connect(m, receiver.counters, responder.counters)
        connect(m, responder.o_tx, flipped(self.o_tx))
        m.d.comb += self.busy.eq(array.busy | receiver.busy | executor.busy | responder.busy)
        return m
