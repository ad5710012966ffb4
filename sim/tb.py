"""cocotb testbench classes, one per device under test (they run inside the simulator).

Inputs are driven and outputs sampled on the falling clock edge, so Icarus and Verilator agree
(on the rising edge their orderings of testbench writes and design reads differ); every
``ready``/``valid`` of the designs depends on registered state only, so what is read at the
falling edge is what the next rising edge sees. Long waits
(an exponentiation) let the simulator run free until ``done`` or ``valid`` rises: Python never
touches every cycle of a hot loop. Cycle counts come from simulation time, not from counting
edges in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import cycle

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

PERIOD_NS = 10


class _ClockedTB:
    """Clock, reset and cycle arithmetic shared by the testbenches."""

    def __init__(self, dut) -> None:
        self.dut = dut
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def now(self) -> int:
        """The current cycle (sampled on a falling edge: the cycle that edge is in)."""
        return int(get_sim_time(unit="ns")) // PERIOD_NS

    async def reset(self, inputs: Iterable[str] = ()) -> None:
        for name in inputs:
            getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)


class LaneTB(_ClockedTB):
    """:class:`~montpipe.hdl.montmul.MontMulLane`: load words, multiply, read back."""

    def __init__(self, dut, width: int) -> None:
        super().__init__(dut)
        self.width = width

    async def reset(self) -> None:
        await super().reset(["start", "wr_en", "wr_mod"])

    async def write(self, slot: int, value: int, words: int, *, modulus: bool = False) -> None:
        mask = (1 << self.width) - 1
        dut = self.dut
        dut.wr_en.value, dut.wr_mod.value, dut.wr_slot.value = 1, int(modulus), slot
        for k in range(words):
            dut.wr_addr.value = k
            dut.wr_data.value = (value >> (self.width * k)) & mask
            await FallingEdge(dut.clk)
        dut.wr_en.value = 0

    async def multiply(self, words: int, mprime: int, a: int, b: int, t: int) -> int:
        """Start ``a·b`` into slot ``t``; the cycles from the edge taking ``start`` to the first
        cycle with ``done`` high, as :func:`~montpipe.device.model.montmul_cycles` counts."""
        dut = self.dut
        dut.words.value, dut.mprime.value = words, mprime
        dut.a_slot.value, dut.b_slot.value, dut.t_slot.value = a, b, t
        dut.start.value = 1
        taken = self.now()              # the edge ending this cycle takes start
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await RisingEdge(dut.done)
        await FallingEdge(dut.clk)
        return self.now() - taken

    async def read(self, slot: int, words: int) -> int:
        dut = self.dut
        value = 0
        dut.rd_slot.value = slot
        for k in range(words):
            dut.rd_addr.value = k
            await FallingEdge(dut.clk)
            value |= int(dut.rd_data.value) << (self.width * k)
        return value


class ModExpTB(_ClockedTB):
    """:class:`~montpipe.hdl.modexp.ModExpLane`: load operands and digits, run, read back."""

    MODULUS, BASE, R2, EXPONENT = range(4)   # montpipe.hdl.modexp.Target

    def __init__(self, dut, width: int) -> None:
        super().__init__(dut)
        self.width = width

    async def reset(self) -> None:
        # command 0 is MODEXP (the lane's packet commands are the core's business)
        await super().reset(["start", "wr_en", "command"])

    async def load(self, target: int, words: list[int]) -> None:
        dut = self.dut
        dut.wr_en.value, dut.wr_target.value = 1, target
        for k, word in enumerate(words):
            dut.wr_addr.value, dut.wr_data.value = k, word
            await FallingEdge(dut.clk)
        dut.wr_en.value = 0

    async def run(self, words: int, mprime: int, windows: int, const_time: bool) -> int:
        dut = self.dut
        dut.words.value, dut.mprime.value = words, mprime
        dut.windows.value, dut.const_time.value = windows, int(const_time)
        dut.start.value = 1
        taken = self.now()
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await RisingEdge(dut.done)
        await FallingEdge(dut.clk)
        return self.now() - taken

    async def read(self, words: int) -> int:
        dut = self.dut
        value = 0
        for k in range(words):
            dut.rd_addr.value = k
            await FallingEdge(dut.clk)
            value |= int(dut.rd_data.value) << (self.width * k)
        return value


def _bind_stream(port, dut, name: str, fields: dict[str, tuple[int, int]]) -> None:
    """The clock and ``<name>__payload/__valid/__ready`` handles of a stream port."""
    port.clk = dut.clk
    port.payload = getattr(dut, f"{name}__payload")
    port.valid = getattr(dut, f"{name}__valid")
    port.ready = getattr(dut, f"{name}__ready")
    port.fields = fields


class StreamSource:
    """Drives an Amaranth ``lib.stream`` input (``<name>__payload/__valid/__ready``) with
    frames of beats; ``idle`` is a repeating pattern of 1 (offer a beat) and 0 (hold off)."""

    def __init__(self, dut, name: str, fields: dict[str, tuple[int, int]],
                 idle: list[int] | None = None) -> None:
        _bind_stream(self, dut, name, fields)
        self.idle: Iterator[int] = cycle(idle or [1])
        self.valid.value = 0
        self.first_offered: int | None = None

    def _pack(self, **values: int) -> int:
        word = 0
        for name, value in values.items():
            offset, width = self.fields[name]
            word |= (value & ((1 << width) - 1)) << offset
        return word

    async def send(self, frames: list[list[int]], now) -> None:
        for beats in frames:
            for k, data in enumerate(beats):
                while True:
                    await FallingEdge(self.clk)
                    if not next(self.idle):
                        self.valid.value = 0
                        continue
                    self.valid.value = 1
                    self.payload.value = self._pack(data=data, last=int(k == len(beats) - 1))
                    if self.first_offered is None:
                        self.first_offered = now()
                    if self.ready.value:
                        break          # taken by the rising edge that ends this cycle
        await FallingEdge(self.clk)
        self.valid.value = 0


class StreamSink:
    """Takes frames from an Amaranth ``lib.stream`` output; ``backpressure`` is a repeating
    pattern of ``ready``. While nothing is offered it waits for ``valid`` to rise, so a long
    computation runs free."""

    def __init__(self, dut, name: str, fields: dict[str, tuple[int, int]],
                 backpressure: list[int] | None = None) -> None:
        _bind_stream(self, dut, name, fields)
        self.pattern: Iterator[int] = cycle(backpressure or [1])
        self.ready.value = 0
        self.frames: list[dict] = []
        self.last_taken: int | None = None

    def _unpack(self, word: int) -> dict[str, int]:
        return {name: (word >> off) & ((1 << width) - 1)
                for name, (off, width) in self.fields.items()}

    async def receive(self, count: int, now, deadline_cycles: int) -> None:
        words: list[int] = []
        while len(self.frames) < count:
            await FallingEdge(self.clk)
            if not self.valid.value and not words:
                self.ready.value = 0
                await First(RisingEdge(self.valid),
                            Timer(deadline_cycles * PERIOD_NS, unit="ns"))
                if not self.valid.value:
                    raise AssertionError(f"no result within {deadline_cycles} cycles; "
                                         f"{len(self.frames)} of {count} frames received")
                continue
            ready = next(self.pattern)
            self.ready.value = ready
            if ready and self.valid.value:
                beat = self._unpack(int(self.payload.value))
                words.append(beat["data"])
                if beat["last"]:
                    self.frames.append({"tag": beat["tag"], "status": beat["status"],
                                        "words": words})
                    words = []
                    self.last_taken = now()
        await FallingEdge(self.clk)
        self.ready.value = 0


class StreamTB(_ClockedTB):
    """:class:`~montpipe.hdl.core.ModExpCore` or :class:`~montpipe.hdl.array.ModExpArray`
    behind its request and result streams."""

    def __init__(self, dut, width: int, idle=None, backpressure=None) -> None:
        super().__init__(dut)
        self.width = width
        req = {"data": (0, width), "last": (width, 1)}
        res = {"tag": (0, width), "status": (width, 3), "data": (width + 3, width),
               "last": (2 * width + 3, 1)}
        self.source = StreamSource(dut, "i_req", req, idle)
        self.sink = StreamSink(dut, "o_res", res, backpressure)

    async def reset(self) -> None:
        await super().reset()

    async def exchange(self, frames: list[list[int]], deadline_cycles: int) -> list[dict]:
        """Send ``frames``, collect as many result frames; returns them in arrival order."""
        sender = cocotb.start_soon(self.source.send(frames, self.now))
        await self.sink.receive(len(frames), self.now, deadline_cycles)
        await sender
        return self.sink.frames

    def cycles(self) -> int:
        """From the cycle the first request beat was offered to the cycle the last result word
        was taken, inclusive (as :func:`~montpipe.device.model.batch_cycles` counts)."""
        return self.sink.last_taken - self.source.first_offered + 1

    async def settle_idle(self) -> bool:
        """After a few cycles: nothing in flight (not busy, no result offered)."""
        for _ in range(3):
            await FallingEdge(self.dut.clk)
        return not int(self.dut.busy.value) and not int(self.dut.o_res__valid.value)


class LinkTB(_ClockedTB):
    """:class:`~montpipe.hdl.link.FrameLink`: request bytes in on ``i_rx``, response bytes out
    on ``o_tx``, parsed with the host's :class:`~montpipe.device.wire.ResponseParser` by a
    monitor that runs from the start (a response may begin while a request is still going
    out). Bytes go in one every ``pace`` cycles, as a UART delivers them (far more slowly)."""

    def __init__(self, dut, pace: int = 6) -> None:
        from montpipe.device.wire import ResponseParser

        super().__init__(dut)
        self.pace = pace
        self.parser = ResponseParser()
        self.responses: list = []
        dut.i_rx__valid.value = 0
        dut.o_tx__ready.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            if dut.o_tx__valid.value:          # ready is always high: taken at the next edge
                self.responses += self.parser.feed(bytes([int(dut.o_tx__payload.value)]))
            else:
                await RisingEdge(dut.o_tx__valid)   # the simulator runs free meanwhile

    async def send(self, frame: bytes) -> None:
        dut = self.dut
        for byte in frame:
            await FallingEdge(dut.clk)
            dut.i_rx__valid.value, dut.i_rx__payload.value = 1, byte
            await FallingEdge(dut.clk)
            dut.i_rx__valid.value = 0
            for _ in range(self.pace - 2):
                await FallingEdge(dut.clk)

    async def collect(self, until, deadline_cycles: int) -> list:
        """Wait until ``until(responses)``, checking every 100 cycles."""
        start = self.now()
        while not until(self.responses):
            if self.now() - start > deadline_cycles:
                raise AssertionError(f"no answer within {deadline_cycles} cycles: "
                                     f"{self.responses}")
            await Timer(100 * PERIOD_NS, unit="ns")
        return self.responses
