"""The board tops' status LEDs on Amaranth's simulator (heartbeat, link activity, error latch),
and every board top wiring them to pins of its board."""

from itertools import pairwise

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.sim import Simulator

from montpipe.device.wire import Opcode, encode_response
from montpipe.hdl.board import StatusLEDs


def run_leds(chunks, *, bits=4, stretch=6):
    """Feed ``chunks`` (bytes: response frames sent a byte a cycle, ready held low every
    other cycle; ``("busy", n)``: the link busy for n cycles; an int: idle cycles) and return the
    LEDs sampled every cycle as (heartbeat, busy, error) and the cycle each chunk ended."""
    dut = StatusLEDs(bits, stretch)
    trace, ends = [], []

    async def bench(ctx):
        async def step():
            await ctx.tick()
            trace.append((ctx.get(dut.heartbeat), ctx.get(dut.busy), ctx.get(dut.error)))

        for chunk in chunks:
            if isinstance(chunk, int):
                for _ in range(chunk):
                    await step()
            elif isinstance(chunk, tuple):
                ctx.set(dut.busy_in, 1)
                for _ in range(chunk[1]):
                    await step()
                ctx.set(dut.busy_in, 0)
            else:
                ctx.set(dut.tx_valid, 1)
                for byte in chunk:
                    ctx.set(dut.tx_payload, byte)
                    ctx.set(dut.tx_ready, 0)     # a stalled byte is not a transfer
                    await step()
                    ctx.set(dut.tx_ready, 1)
                    await step()
                ctx.set(dut.tx_valid, 0)
                ctx.set(dut.tx_ready, 0)
            ends.append(len(trace))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace, ends


def test_heartbeat_is_the_counters_top_bit():
    trace, _ = run_leds([64], bits=4)
    beat = [t[0] for t in trace]
    # 16-cycle period, 8 cycles lit: it blinks, steadily
    edges = [i for i in range(1, len(beat)) if beat[i] != beat[i - 1]]
    assert len(edges) >= 6 and {b - a for a, b in pairwise(edges)} == {8}
    with pytest.raises(ValueError, match="heartbeat_bits must be at least 2 and stretch at "
                                         "least 1, not 1 and 5"):
        StatusLEDs(1, 5)
    # at 75 MHz: a 0.89 s period, a 1/16 s flash
    assert StatusLEDs.clock_parameters(75e6) == (26, 4_687_500)


def test_busy_is_stretched_so_a_short_frame_is_seen():
    trace, ends = run_leds([5, ("busy", 1), 20], stretch=6)
    busy = [t[1] for t in trace]
    assert busy[:ends[0]] == [0] * 5
    lit = busy[ends[0]:]                        # one cycle busy: lit for six
    assert lit[:6] == [1] * 6 and lit[6:] == [0] * len(lit[6:])


def test_error_latches_on_a_bad_status_and_clears_on_reset():
    # OK payloads full of marker bytes and of bytes that read as a failing frame's header
    decoy = bytes([0x5A, 0x04, 0x00, 0x83, 0x01, 0x00, 0x10]) * 3
    ok = encode_response(Opcode.MODEXP, 7, 0, decoy)
    caps = encode_response(Opcode.CAPS, 8, 0, b"\x01" * 14)
    bad_crc = encode_response(0, 0, 0x10)
    reset_ok = encode_response(Opcode.RESET, 9, 0)
    trace, ends = run_leds([ok, 3, caps, bad_crc, 3, ok, caps, reset_ok, 2, ok, 2])
    error = [t[2] for t in trace]
    assert not any(error[:ends[2]]), "an OK frame (marker bytes in its payload) lit the LED"
    # lit from the bad status byte (index 6, sent at cycles 13, 14 of its frame) onwards
    assert error[ends[2] + 14] == 1
    assert all(error[ends[3]:ends[6]]), "the latch let go before a RESET was answered"
    assert not any(error[ends[7]:]), "an OK answer to RESET did not clear it"


def test_a_failed_reset_does_not_clear_the_latch():
    trace, _ = run_leds([encode_response(Opcode.MODEXP, 1, 4),
                         encode_response(Opcode.RESET, 2, 0x10), 3])
    assert trace[-1][2] == 1


@pytest.mark.parametrize("board", ["ulx3s-85f", "ecpix5-85", "orangecrab-85f"])
def test_every_board_top_drives_three_leds(board):
    pytest.importorskip("amaranth_boards", reason="board tops need pip install .[toolchain]")
    from amaranth.hdl import Fragment

    from montpipe.device.config import DeviceConfig
    from montpipe.hdl.board import BoardTop, make_platform

    platform = make_platform(board)
    top = BoardTop(board, DeviceConfig(lanes=1, width=16, max_words=4, max_windows=4,
                                       contexts=1, clock_mhz=50.0, baud=1_000_000))
    Fragment.get(top, platform)
    requested = set(platform._requested)
    assert ("led" if board.startswith("ulx3s") else "rgb_led", 0) in requested
    if board.startswith("ulx3s"):
        assert {("led", 1), ("led", 2)} <= requested
