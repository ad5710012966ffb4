"""cocotb test of a whole board top through its pins (a gate-level netlist of
:class:`~montpipe.hdl.board.BoardTop`): the board clock in, 8N1 frames on the UART's RX pin,
responses read off its TX pin with the host's own protocol code, the LEDs watched.

The plan names the pins and gives the UART divisor, the build's capabilities and the requests:
capabilities; a context; exponentiations against gmpy2 (at most ``lanes + 1`` outstanding, the
host's rule), each timed from the stop bit of its request to the start bit of its response;
on a build with a comb table, the table written and fixed-base powers by the comb, a lane's
worth a frame, against gmpy2; a frame with a corrupted CRC answered ``BAD_CRC`` with its tag
and the error LED lit; STATUS counting it; RESET answered OK and the LED dark again; the
heartbeat blinking throughout.
"""

from __future__ import annotations

import cocotb
import gmpy2
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, Timer

from montpipe.device.model import (
    batch_cycles,
    batch_products,
    exponent_digits,
    montgomery_words,
    mprime,
)
from montpipe.device.wire import (
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
from montpipe.driver.comb import choose_shape, comb_digits, comb_table

from . import _bench
from .tb import PERIOD_NS


class UARTHost:
    """The host end of the serial line: bytes out on ``rx`` (the board's input), responses in
    from ``tx``, parsed as they arrive; ``led`` pins sampled at every received byte."""

    def __init__(self, dut, plan: dict) -> None:
        self.dut = dut
        self.rx = getattr(dut, plan["pins"]["rx"])
        self.tx = getattr(dut, plan["pins"]["tx"])
        self.leds = [getattr(dut, name) for name in plan["pins"]["leds"]]
        self.bit_ns = plan["uart_divisor"] * PERIOD_NS
        self.parser = ResponseParser()
        self.responses: list = []
        self.arrivals: list[int] = []          # cycle each response's first byte started
        self.led_samples: list[tuple[int, ...]] = []
        self.rx.value = 1
        self._frame_start: int | None = None

    def now(self) -> int:
        return int(get_sim_time(unit="ns")) // PERIOD_NS

    async def send(self, frame: bytes) -> int:
        """8N1 at the build's divisor; returns the cycle the last stop bit ended."""
        for byte in frame:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.rx.value = bit
                await Timer(self.bit_ns, unit="ns")
        return self.now()

    async def listen(self) -> None:
        while True:
            await FallingEdge(self.tx)                     # a start bit
            start = self.now()
            await Timer(self.bit_ns * 3 // 2, unit="ns")   # the middle of data bit 0
            byte = 0
            for k in range(8):
                byte |= int(self.tx.value) << k
                await Timer(self.bit_ns, unit="ns")
            assert int(self.tx.value) == 1, f"no stop bit after {byte:#04x}"
            before = len(self.responses)
            if self._frame_start is None:
                self._frame_start = start
            self.responses += self.parser.feed(bytes([byte]))
            for _ in range(len(self.responses) - before):
                self.arrivals.append(self._frame_start)
                self._frame_start = None
            self.led_samples.append(tuple(int(p.value) for p in self.leds))

    async def wait_for(self, count: int, deadline_cycles: int) -> None:
        start = self.now()
        while len(self.responses) < count:
            if self.now() - start > deadline_cycles:
                raise AssertionError(f"{len(self.responses)} of {count} responses within "
                                     f"{deadline_cycles} cycles: {self.responses}")
            await Timer(1000 * PERIOD_NS, unit="ns")


async def _heartbeat_edges(pin, cycles: int) -> int:
    """Edges of ``pin`` within ``cycles``."""
    edges = 0
    end = int(get_sim_time(unit="ns")) + cycles * PERIOD_NS
    while int(get_sim_time(unit="ns")) < end:
        left = end - int(get_sim_time(unit="ns"))
        fired = await First(pin.value_change, Timer(left, unit="ns"))
        if isinstance(fired, Timer):
            break
        edges += 1
    return edges


@cocotb.test()
async def board_through_the_pins(dut):
    plan = _bench.plan()
    caps_want = plan["caps"]
    W, window, lanes = caps_want["width"], caps_want["window"], caps_want["lanes"]
    Clock(getattr(dut, plan["pins"]["clk"]), PERIOD_NS, unit="ns").start()
    host = UARTHost(dut, plan)
    cocotb.start_soon(host.listen())
    heartbeat, busy_led, error_led = host.leds
    await Timer(200 * PERIOD_NS, unit="ns")            # PLL lock, reset synchroniser

    # the heartbeat blinks: two periods of its counter show at least three edges
    edges = await _heartbeat_edges(heartbeat, 2 ** (plan["heartbeat_bits"] + 1) + 16)
    assert edges >= 3, f"heartbeat LED: {edges} edges in two periods"
    assert int(error_led.value) == 0 and int(busy_led.value) == 0

    await host.send(caps_request(1))
    await host.wait_for(1, 10**6)
    caps = Capabilities.decode(host.responses[0].payload)
    assert (caps.width, caps.lanes, caps.window, caps.max_windows, caps.contexts) == \
        (W, lanes, window, caps_want["max_windows"], caps_want["contexts"]), caps
    checked = 1

    moduli = [int(m, 16) for m in plan["moduli"]]
    for context, m in enumerate(moduli):
        s = montgomery_words(m.bit_length(), W)
        count = len(host.responses)
        await host.send(load_context_request(2 + context, context, m, width=W, words=s,
                                             mprime=mprime(m, W), r2=pow(2, 2 * W * s, m)))
        await host.wait_for(count + 1, 10**7)
        assert (host.responses[-1].tag, host.responses[-1].status) == (2 + context,
                                                                        LinkStatus.OK)
        checked += 1

    cases = [(10 + k, r.get("context", 0), int(r["base"], 16), int(r["e"], 16),
              bool(r.get("const_time"))) for k, r in enumerate(plan["requests"])]
    latencies: dict[tuple, list[int]] = {}
    busy_seen = False
    for tag, context, base, e, ct in cases:
        m = moduli[context]
        s = montgomery_words(m.bit_length(), W)
        windows = -(-plan["exponent_bits"][context] // window) if ct else None
        digits = exponent_digits(e, window, windows)
        frame = modexp_request(tag, context, base, digits, width=W, words=s, const_time=ct)
        count = len(host.responses)
        sent = await host.send(frame)
        busy_seen |= bool(int(busy_led.value))
        await host.wait_for(count + 1, plan.get("deadline_cycles", 10**8))
        r = host.responses[-1]
        assert (r.tag, r.opcode, r.status) == (tag, Opcode.MODEXP, LinkStatus.OK), r
        want = int(gmpy2.powmod(base, e, m))
        assert unpack_words(r.payload, W) == want, f"tag {tag}: wrong result"
        # exponentiation k goes to lane k mod lanes; a lone request on lane L takes 2L cycles
        # more than on lane 0 (L stages of the request chain in, L of the result chain out)
        lane = (tag - 10) % lanes
        model = batch_cycles(1, s, window, [digits], ct, W, chain=lanes > 1) + 2 * lane
        measured = host.arrivals[-1] - sent
        latencies.setdefault((context, len(digits), ct), []).append(measured - model)
        _bench.record(shape=f"board modexp L={m.bit_length()} windows={len(digits)}"
                            f"{' ct' if ct else ''}", words=s, lanes=lanes, measured=measured,
                      model=model, products=batch_products(window, [digits], ct))
        checked += 1
    assert busy_seen, "the busy LED was dark while an exponentiation was under way"
    # the link's part (the frame fed to the engine, the response's first byte) is the same for
    # every request of one shape: the engine's time is the model's
    for shape, overheads in latencies.items():
        assert len(set(overheads)) == 1, (shape, overheads)

    # the comb: its table written under context 0, then powers a lane's worth a frame
    comb_frames = 0
    # the reference build's table at full size would take the simulated UART hours to write:
    # a plan may comb shorter exponents over the table's first entries (full-width words in
    # the first of the table's block RAMs, read through the same bank multiplexer)
    comb_plan = plan.get("comb", {})
    entries = min(caps.table_entries, comb_plan.get("entries", caps.table_entries))
    shape = choose_shape(comb_plan.get("exponent_bits", plan["exponent_bits"][0]), entries) \
        if entries else None
    if shape is not None:
        m = moduli[0]
        s = montgomery_words(m.bit_length(), W)
        r = pow(2, W * s, m)
        g = int(gmpy2.mpz(cases[0][2]) % m) or 2
        for index, value in enumerate(comb_table(g, m, shape)):
            count = len(host.responses)
            await host.send(table_write_request(100 + index, 0, index, value * r % m, width=W,
                                                words=s))
            await host.wait_for(count + 1, 10**7)
            assert (host.responses[-1].tag, host.responses[-1].status) == (100 + index,
                                                                            LinkStatus.OK)
            comb_frames += 1
        exps = [0, (1 << shape.max_bits) - 1] + [int(c[3]) % (1 << shape.max_bits)
                                                 for c in cases]
        for at in range(0, len(exps), lanes):
            jobs = exps[at:at + lanes]
            count = len(host.responses)
            await host.send(comb_request(400 + at, 0, shape.steps, shape.tables, shape.bits,
                                         [comb_digits(e, shape) for e in jobs]))
            await host.wait_for(count + len(jobs), plan.get("deadline_cycles", 10**8))
            for j, e in enumerate(jobs):
                r_ = host.responses[count + j]
                assert (r_.tag, r_.opcode, r_.status) == (400 + at + j, Opcode.COMB,
                                                          LinkStatus.OK), r_
                assert unpack_words(r_.payload, W) == int(gmpy2.powmod(g, e, m)), e
            comb_frames += 1
        checked += comb_frames

    # a corrupted frame: BAD_CRC with its tag, the error LED lit
    bad = bytearray(caps_request(40))
    bad[-1] ^= 0x5A
    count = len(host.responses)
    await host.send(bytes(bad))
    await host.wait_for(count + 1, 10**6)
    r = host.responses[-1]
    assert (r.tag, r.status) == (40, LinkStatus.BAD_CRC), r
    await Timer(4 * plan["uart_divisor"] * PERIOD_NS, unit="ns")
    assert int(error_led.value) == 1, "the error LED did not light on BAD_CRC"
    checked += 1

    await host.send(encode_request(Opcode.STATUS, 41))
    await host.wait_for(count + 2, 10**6)
    r = host.responses[-1]
    ok_frames, bad_crc, errors, timeouts = (int.from_bytes(r.payload[4 * k:4 * k + 4], "little")
                                            for k in range(4))
    assert bad_crc == 1 and timeouts == 0 and \
        ok_frames == 1 + len(moduli) + len(cases) + comb_frames + 1, \
        (ok_frames, bad_crc, errors, timeouts)
    checked += 1

    await host.send(encode_request(Opcode.RESET, 42))
    await host.wait_for(count + 3, 10**6)
    assert (host.responses[-1].tag, host.responses[-1].status) == (42, LinkStatus.OK)
    await Timer(4 * plan["uart_divisor"] * PERIOD_NS, unit="ns")
    assert int(error_led.value) == 0, "RESET answered OK did not clear the error LED"
    checked += 1
    assert host.parser.bad_crc == 0 and host.parser.discarded == 0
    _bench.checked(checked)
    _bench.flush("board_through_the_pins")
