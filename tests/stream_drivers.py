"""Stream drivers shared by the gateware tests on Amaranth's simulator: offer payloads with idle
cycles, watch transfers, and run a design with its testbenches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from amaranth.sim import Simulator


def simulate(dut, main, *, background: Iterable = (), processes: Iterable = ()) -> None:
    """Run ``main`` (a testbench) to its end, with ``background`` testbenches and ``processes``
    (monitors) alongside, on a 100 MHz clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    for process in processes:
        sim.add_process(process)
    sim.add_testbench(main)
    sim.run()


async def send(ctx, stream, payloads: Iterable, idle: Iterator[int] | None = None) -> None:
    """Offer each payload in turn — a value, or a dict of payload fields — holding ``valid``
    low first for as long as ``idle`` yields 0; ``valid`` never waits for ``ready``."""
    for payload in payloads:
        while idle is not None and not next(idle):
            ctx.set(stream.valid, 0)
            await ctx.tick()
        if isinstance(payload, dict):
            for name, value in payload.items():
                ctx.set(getattr(stream.payload, name), value)
        else:
            ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


def monitor(stream, on_transfer: Callable[[object, int], None]):
    """A process that calls ``on_transfer(payload, tick)`` for every transfer on ``stream``;
    ``tick`` counts clock edges from the start, the first being 1."""
    async def process(ctx):
        ticks = 0
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                stream.valid, stream.ready, stream.payload):
            ticks += 1
            if valid and ready:
                on_transfer(payload, ticks)
    return process
