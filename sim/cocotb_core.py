"""cocotb tests of the stream front end (:class:`~montpipe.hdl.core.ModExpCore`, or
:class:`~montpipe.hdl.array.ModExpArray` over several lanes) against gmpy2 and the model."""

from __future__ import annotations

import random
import warnings

import cocotb
import gmpy2

from montpipe.device.model import (
    Command,
    batch_cycles,
    batch_products,
    exponent_digits,
    montgomery_words,
    packet_cycles,
    request_frame,
)
from montpipe.device.wire import LinkStatus

from . import _bench
from .tb import StreamTB


def _frame(request: dict, width: int, window: int) -> list[int]:
    beats = request_frame(
        request["tag"], _bench.as_int(request["base"]), _bench.as_int(request["e"]),
        _bench.as_int(request["m"]), width=width, window=window,
        const_time=bool(request.get("const_time")), words=request.get("words"),
        windows=request.get("windows"))
    if "beats" in request:         # a frame cut short (last too early) or run long
        n = request["beats"]
        beats = beats[:n] if n <= len(beats) else beats + [0] * (n - len(beats))
    if "header_windows" in request:
        beats[2] = request["header_windows"]
    return beats


def _value(words: list[int], width: int) -> int:
    return sum(w << (width * k) for k, w in enumerate(words))


async def _exchange(tb: StreamTB, frames: list[list[int]], deadline: int) -> list[dict]:
    tb.sink.frames = []
    tb.source.first_offered = None
    return await tb.exchange(frames, deadline)


@cocotb.test()
async def stream_scenarios(dut):
    """Each planned scenario (requests under an idle pattern and a backpressure pattern):
    results in request order with their tags, values equal to gmpy2, error statuses as
    documented, nothing left in flight; without idle or backpressure, the batch takes exactly
    :func:`~montpipe.device.model.batch_cycles`."""
    plan = _bench.plan()
    W, window, lanes = plan["width"], plan["window"], plan["lanes"]
    for scenario in plan["scenarios"]:
        tb = StreamTB(dut, W, scenario.get("idle"), scenario.get("backpressure"))
        await tb.reset()
        requests = scenario["requests"]
        frames = [_frame(r, W, window) for r in requests]
        results = await _exchange(tb, frames, plan.get("deadline_cycles", 10_000_000))
        assert [f["tag"] for f in results] == [r["tag"] & ((1 << W) - 1) for r in requests], \
            f"{scenario['name']}: tags out of order, lost or doubled"
        digit_lists = []
        for request, result in zip(requests, results, strict=True):
            expect = LinkStatus[request.get("expect", "OK")]
            assert LinkStatus(result["status"]) == expect, \
                f"{scenario['name']} tag {request['tag']}: {result['status']} != {expect!r}"
            if expect == LinkStatus.OK:
                base, e, m = (_bench.as_int(request[k]) for k in ("base", "e", "m"))
                want = int(gmpy2.powmod(base, e, m))
                assert _value(result["words"], W) == want, f"tag {request['tag']}: wrong value"
                digit_lists.append(exponent_digits(e, window, request.get("windows")))
            else:
                assert result["words"] == [0], "an error result is one zero word"
        assert await tb.settle_idle(), f"{scenario['name']}: the core did not end idle"
        _bench.checked(len(results))
        if scenario.get("check_cycles"):
            s = {montgomery_words(_bench.as_int(r["m"]).bit_length(), W) for r in requests}
            const_time = {bool(r.get("const_time")) for r in requests}
            assert len(s) == 1 and len(const_time) == 1, "cycle check needs one shape"
            (s,), (ct,) = s, const_time
            model = batch_cycles(lanes, s, window, digit_lists, ct, W,
                                 chain=plan.get("chain", True))
            assert tb.cycles() == model, (scenario["name"], tb.cycles(), model)
            bits = _bench.as_int(requests[0]["m"]).bit_length()
            _bench.record(shape=f"{scenario['name']} L={bits} lanes={lanes} x{len(requests)}",
                          words=s, lanes=lanes, measured=tb.cycles(), model=model,
                          products=batch_products(window, digit_lists, ct))
    _bench.flush("stream_scenarios")


@cocotb.test()
async def packet_chains(dut):
    """Chains of product packets, one a lane, dealt round-robin as the link deals them: every
    acknowledgement one zero word with status OK, every ``RAW`` congruent and below ``2m``,
    every ``OUT`` equal to gmpy2's product, tags in order; without idle or backpressure the
    stream takes exactly :func:`~montpipe.device.model.packet_cycles`."""
    plan = _bench.plan()
    W, lanes = plan["width"], plan["lanes"]
    for scenario in plan["packets"]:
        tb = StreamTB(dut, W, scenario.get("idle"), scenario.get("backpressure"))
        await tb.reset()
        chains = scenario["chains"]
        frames, expect, commands = [], [], []
        for k in range(len(chains[0]["frames"])):
            for chain in chains:
                frames.append(chain["frames"][k])
                expect.append((chain["expect"][k], _bench.as_int(chain["modulus"])))
                commands.append(Command[chain["commands"][k]])
        results = await _exchange(tb, frames, plan.get("deadline_cycles", 10_000_000))
        assert [f["tag"] for f in results] == [f[0] for f in frames], \
            f"{scenario['name']}: tags out of order, lost or doubled"
        for (want, m), result in zip(expect, results, strict=True):
            assert LinkStatus(result["status"]) == LinkStatus.OK, (scenario["name"], result)
            if want is None:
                assert result["words"] == [0], f"tag {result['tag']}: not an acknowledgement"
                continue
            got = _value(result["words"], W)
            if want[0] == "raw":
                assert got < 2 * m and got % m == _bench.as_int(want[1]) % m, result["tag"]
            else:
                assert got == _bench.as_int(want[1]), f"tag {result['tag']}: wrong value"
        assert await tb.settle_idle(), f"{scenario['name']}: the core did not end idle"
        _bench.checked(len(results))
        if scenario.get("check_cycles"):
            s = chains[0]["words"]
            model = packet_cycles(lanes, s, commands, W, chain=plan.get("chain", True))
            assert tb.cycles() == model, (scenario["name"], tb.cycles(), model)
            _bench.record(shape=f"{scenario['name']} s={s} lanes={lanes} x{len(frames)}",
                          words=s, lanes=lanes, measured=tb.cycles(), model=model,
                          products=sum(c in (Command.MUL, Command.SQUARE, Command.OUT)
                                       for c in commands))
    _bench.flush("packet_chains")


@cocotb.test()
async def paillier_round_trip(dut):
    """A Paillier key of ``key_bits``: the encryption's ``r^n mod n²`` and the decryption's
    ``c^(p−1) mod p²`` and ``c^(q−1) mod q²`` (constant time) run in RTL, the rest in
    ``montpipe.driver``; the ciphertext equals the driver's for the same ``r`` and decrypts to
    the message."""
    from montpipe.driver import paillier

    plan = _bench.plan()
    W, window = plan["width"], plan["window"]
    rng = random.Random(plan["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        public, private = paillier.generate_paillier_keypair(n_length=plan["paillier_bits"],
                                                             mode="standard")
    n, nsq = public.n, public.nsquare
    message = rng.randrange(n)
    r = rng.randrange(1, n)
    tb = StreamTB(dut, W)
    await tb.reset()

    async def powmod(tag, base, e, m, const_time, windows=None):
        request = {"tag": tag, "base": base, "e": e, "m": m, "const_time": const_time,
                   "windows": windows}
        results = await _exchange(tb, [_frame(request, W, window)], 10**10)
        assert LinkStatus(results[0]["status"]) == LinkStatus.OK
        digits = exponent_digits(e, window, windows)
        s = montgomery_words(m.bit_length(), W)
        model = batch_cycles(1, s, window, [digits], const_time, W, chain=False)
        assert tb.cycles() == model, (tb.cycles(), model)
        _bench.checked()
        _bench.record(shape=f"paillier-{plan['paillier_bits']} L={m.bit_length()} "
                            f"e={e.bit_length()}{' ct' if const_time else ''}",
                      words=s, lanes=1, measured=tb.cycles(), model=model,
                      products=batch_products(window, [digits], const_time))
        return _value(results[0]["words"], W)

    obfuscator = await powmod(1, r, n, nsq, False)
    ciphertext = public.nudes([message])[0] * obfuscator % nsq
    assert ciphertext == public.raw_encrypt(message, r_value=r), "RTL ciphertext != driver's"
    p, q = private.p, private.q
    # the secret exponent's length is declared from the prime's size, not from its bits
    windows = -(-plan["paillier_bits"] // 2 // window)
    xp = await powmod(2, ciphertext % private.psquare, p - 1, private.psquare, True, windows)
    xq = await powmod(3, ciphertext % private.qsquare, q - 1, private.qsquare, True, windows)
    mp = private.l_function(xp, p) * private.hp % p
    mq = private.l_function(xq, q) * private.hq % q
    decrypted = private.crt(mp, mq)
    assert decrypted == message, "RTL decryption lost the message"
    assert private.raw_decrypt(ciphertext) == message
    _bench.flush("paillier_round_trip")
