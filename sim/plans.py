"""What the cocotb runs check: the reduced set (``make test``, small widths, both simulators)
and the full set (``make sim``: every run-time length of the small builds, and the real Paillier
shapes at full size on Verilator). Vectors come from one seed, printed and overridable."""

from __future__ import annotations

import random

from montpipe.device.model import Command, montgomery_words, packet_frame

from .runner import Job

W = 16


def _hex(value: int) -> str:
    return hex(value)


def _moduli(rng: random.Random, s: int, width: int = W) -> list[int]:
    """Odd moduli whose word count is ``s``: ``2^k − 1``, ``2^(k−1) + 1`` (just above a power of
    two) at the largest and smallest bit lengths that give ``s`` words, and a random one."""
    high = width * s - 2                 # montgomery_words(L) == s for L in (high - W, high]
    low = max(2, high - width + 1)
    out = [(1 << high) - 1, (1 << (low - 1)) + 1, rng.getrandbits(high) | 1 | (1 << (high - 1))]
    assert all(montgomery_words(m.bit_length(), width) == s for m in out), (s, out)
    return out


def _montmul(rng: random.Random, lengths: list[int], extra: list[int] = (),
             width: int = W) -> dict:
    vectors = []
    for s in lengths:
        for m in _moduli(rng, s, width):
            for a, b in ((0, rng.randrange(m)), (1, m - 1), (m - 1, m - 1),
                         (rng.randrange(m), rng.randrange(m)),
                         (rng.randrange(m, 2 * m), rng.randrange(m, 2 * m))):  # lazy: < 2m
                vectors.append({"a": _hex(a), "b": _hex(b), "m": _hex(m)})
    for bits in extra:
        m = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
        vectors.append({"a": _hex(rng.randrange(m)), "b": _hex(rng.randrange(m)),
                        "m": _hex(m)})
    return {"width": width, "vectors": vectors}


def _exponents(rng: random.Random, bits: int) -> list[int]:
    """0, 1, all ones, a single high bit, random."""
    return [0, 1, (1 << bits) - 1, 1 << (bits - 1), rng.getrandbits(bits) | 1 << (bits - 1)]


def _modexp(rng: random.Random, lengths: list[int], window: int, e_bits: int,
            width: int = W) -> dict:
    vectors = []
    declared = -(-e_bits // window)
    for s in lengths:
        for m in _moduli(rng, s, width):
            for base in (0, 1, m - 1, rng.randrange(m)):
                e = rng.getrandbits(e_bits)
                vectors.append({"base": _hex(base), "e": _hex(e), "m": _hex(m)})
            for e in _exponents(rng, e_bits):
                base = rng.randrange(2, m)
                vectors.append({"base": _hex(base), "e": _hex(e), "m": _hex(m)})
                vectors.append({"base": _hex(base), "e": _hex(e), "m": _hex(m),
                                "const_time": True, "windows": declared})
    return {"width": width, "window": window, "vectors": vectors}


def _requests(rng: random.Random, count: int, s_choices: list[int], e_bits: int, *,
              const_time: bool = False, tag0: int = 0) -> list[dict]:
    out = []
    for k in range(count):
        m = rng.choice(_moduli(rng, rng.choice(s_choices)))
        out.append({"tag": tag0 + k, "base": _hex(rng.randrange(m)),
                    "e": _hex(rng.getrandbits(rng.choice([1, e_bits // 2, e_bits]))),
                    "m": _hex(m), "const_time": const_time})
    return out


def _error_requests(rng: random.Random, max_words: int, max_windows: int) -> list[dict]:
    """One request per documented error status, then a good one."""
    m = _moduli(rng, 3)[2]
    good = {"tag": 99, "base": _hex(12345), "e": _hex(65537), "m": _hex(m)}
    # a whole frame is 5 + 3s + windows beats
    s = montgomery_words(m.bit_length(), W)
    return [
        {"tag": 1, "base": "0x5", "e": "0x3", "m": _hex(m), "words": max_words + 1,
         "expect": "BAD_LENGTH"},
        {"tag": 2, "base": "0x5", "e": "0x3", "m": _hex(m), "words": 2, "expect": "BAD_LENGTH"},
        {"tag": 3, "base": "0x5", "e": "0x3", "m": _hex(m), "header_windows": max_windows + 1,
         "expect": "BAD_LENGTH"},
        {"tag": 4, "base": "0x5", "e": "0x3", "m": _hex(m + 1), "expect": "EVEN_MODULUS"},
        {"tag": 5, "base": "0x0", "e": "0x3", "m": "0x0", "words": 4, "expect": "ZERO_MODULUS"},
        {"tag": 6, "base": _hex(m), "e": "0x3", "m": _hex(m), "expect": "BASE_NOT_BELOW_MODULUS"},
        {"tag": 7, "base": _hex(m + 9), "e": "0x3", "m": _hex(m),
         "expect": "BASE_NOT_BELOW_MODULUS"},
        {"tag": 8, "base": "0x5", "e": "0x3", "m": _hex(m), "beats": 7, "expect": "BAD_FRAME"},
        {"tag": 10, "base": "0x5", "e": "0x3", "m": _hex(m), "beats": 5 + 3 * s + 1 + 2,
         "expect": "BAD_FRAME"},
        {"tag": 11, "base": "0x5", "e": "0x3", "m": _hex(m), "beats": 5, "expect": "BAD_FRAME"},
        good,
    ]


def packet_chain(rng: random.Random, modulus: int, tag0: int, steps: int,
                 width: int = W) -> dict:
    """A chain of product packets under ``modulus`` (``BEGIN``, ``LOAD``, ``steps`` random
    ``MUL`` and ``SQUARE``, ``RAW``, ``OUT``) and what each must answer: ``frames`` (beats),
    ``commands``, and ``expect`` — ``None`` for an acknowledgement, ``["raw", v]`` for a
    Montgomery-form value congruent to ``v`` below ``2m``, ``["out", v]`` for exactly ``v``
    (values as hex). Operands include 0, 1, ``m − 1`` and values above ``m``, as a lane's own
    results can be."""
    s = montgomery_words(modulus.bit_length(), width)
    r = pow(2, width * s, modulus)
    x = rng.choice([0, 1, modulus - 1, rng.randrange(modulus)])
    commands, operands = [Command.BEGIN, Command.LOAD], [None, x * r % modulus]
    for _ in range(steps):
        if rng.random() < 0.4:
            commands.append(Command.SQUARE)
            operands.append(None)
            x = x * x % modulus
        else:
            y = rng.choice([1, modulus - 1, rng.randrange(modulus)])
            mont = y * r % modulus
            if rng.random() < 0.3 and mont + modulus < 1 << (width * s):
                mont += modulus
            commands.append(Command.MUL)
            operands.append(mont)
            x = x * y % modulus
    commands += [Command.RAW, Command.OUT]
    operands += [None, None]
    frames = [packet_frame(tag0 + k, c, modulus, v, width=width)
              for k, (c, v) in enumerate(zip(commands, operands, strict=True))]
    expect = [None] * (len(commands) - 2) + [["raw", _hex(x * r % modulus)], ["out", _hex(x)]]
    return {"frames": frames, "commands": [c.name for c in commands], "expect": expect,
            "words": s, "modulus": _hex(modulus)}


def _packets(rng: random.Random, lanes: int, max_words: int, handshakes,
             width: int = W) -> list[dict]:
    """Scenarios of product packets: one chain a lane dealt round-robin (packet ``k`` to lane
    ``k mod lanes``) under one modulus, cycles checked without idle or backpressure; and every
    handshake pattern over chains at random lengths."""
    scenarios = []
    for n, (idle, backpressure) in enumerate(handshakes):
        s = max_words if n == 0 else rng.randrange(3, max_words + 1)
        modulus = _moduli(rng, s, width)[rng.randrange(3)]
        chains = [packet_chain(rng, modulus, 1000 * (n + 1) + 100 * k, 5 - k % 2, width)
                  for k in range(lanes)]
        # a lane without work keeps its turn with NOPs, as the link's comb does
        longest = max(len(c["frames"]) for c in chains)
        for k, c in enumerate(chains):
            for extra in range(longest - len(c["frames"])):
                c["frames"].append(packet_frame(1000 * (n + 1) + 100 * k + 90 + extra,
                                                Command.NOP, modulus, width=width))
                c["commands"].append(Command.NOP.name)
                c["expect"].append(None)
        scenarios.append({"name": f"packets{n}", "idle": idle, "backpressure": backpressure,
                          "check_cycles": idle is None and backpressure is None,
                          "chains": chains})
    return scenarios


HANDSHAKES = [(None, None), ([1, 1, 0], None), (None, [1, 0, 0, 1]), ([0, 1], [1, 1, 1, 0])]


def _stream(rng: random.Random, lanes: int, max_words: int, window: int, max_windows: int,
            e_bits: int, handshakes, batch: int, *, chain: bool = True) -> dict:
    small = list(range(3, max_words + 1))
    scenarios = [{
        "name": "batch", "check_cycles": True,
        "requests": _requests(rng, batch, [max_words], e_bits, const_time=True),
    }]
    for n, (idle, backpressure) in enumerate(handshakes):
        scenarios.append({"name": f"handshake{n}", "idle": idle, "backpressure": backpressure,
                          "requests": _requests(rng, 2 * lanes + 3, small, e_bits,
                                                tag0=100 * (n + 1))})
    scenarios.append({"name": "errors", "idle": [1, 0, 1], "backpressure": [1, 1, 0],
                      "requests": _error_requests(rng, max_words, max_windows)})
    packets = _packets(rng, lanes, max_words, [(None, None), *handshakes])
    # chain: the design is an array (lanes on chains of registers), not a lone core
    return {"width": W, "window": window, "lanes": lanes, "chain": chain,
            "scenarios": scenarios, "packets": packets}


def reduced(seed: int) -> list[Job]:
    """Small widths and short vectors, both simulators: a few minutes in ``make test``."""
    rng = random.Random(seed)
    small = {"width": W, "max_words": 6, "window": 2, "max_windows": 20}
    return [
        Job("montmul", {"width": W, "max_words": 8}, {**_montmul(rng, [3, 5, 8]), "seed": seed},
            ["montmul_vectors"]),
        Job("montmul", {"width": 18, "max_words": 5},
            {**_montmul(rng, [3, 5], width=18), "seed": seed}, ["montmul_vectors"]),
        # 36-bit words: four multiplier blocks a multiplier, a longer pipeline
        Job("montmul", {"width": 36, "max_words": 5},
            {**_montmul(rng, [3, 5], width=36), "seed": seed}, ["montmul_vectors"]),
        # the same lane as the board builds synthesise it: four MULT18X18D a multiplier
        Job("montmul_ecp5", {"width": 36, "max_words": 5},
            {**_montmul(rng, [3, 5], width=36), "seed": seed}, ["montmul_vectors"]),
        Job("modexp", small, {**_modexp(rng, [3, 6], 2, 36), "seed": seed}, ["modexp_vectors"]),
        Job("modexp", {**small, "width": 36, "max_words": 4},
            {**_modexp(rng, [4], 2, 36, width=36), "seed": seed}, ["modexp_vectors"]),
        Job("core", small,
            {**_stream(rng, 1, 6, 2, 20, 36, HANDSHAKES[::3], 3, chain=False), "seed": seed},
            ["stream_scenarios", "packet_chains"]),
        Job("array", {"lanes": 3, **small},
            {**_stream(rng, 3, 6, 2, 20, 36, HANDSHAKES[1:3], 7), "seed": seed},
            ["stream_scenarios", "packet_chains"]),
        _link(seed, 4),
    ]


def _link(seed: int, requests: int) -> Job:
    """The host link with the host's protocol code (contexts, a corrupted frame, in-order
    tagged results against gmpy2; a comb table written and fixed-base powers by it)."""
    return Job("link", {"lanes": 2, "contexts": 2, "width": W, "max_words": 6, "window": 2,
                        "max_windows": 20, "table_entries": 16},
               {"width": W, "window": 2, "lanes": 2, "modulus_bits": 80, "exponent_bits": 36,
                "requests": requests, "seed": seed}, ["link_exchange", "link_comb"])


def full(seed: int) -> list[Job]:
    """``make sim``: every run-time length of the small builds, handshakes crossed, windows 1
    and 4, the 4096-bit lane on both simulators; on Verilator the real Paillier shapes at full
    size (4096-bit modulus with a 2048-bit exponent, 2048-bit with 1024 in constant time) and a
    Paillier round trip at 1024-bit keys."""
    rng = random.Random(seed)
    jobs = [
        Job("montmul", {"width": W, "max_words": 12},
            {**_montmul(rng, list(range(3, 13))), "seed": seed}, ["montmul_vectors"]),
        Job("montmul", {"width": W, "max_words": 257},
            {**_montmul(rng, [], extra=[4096, 4094, 2048, 1024]), "seed": seed},
            ["montmul_vectors"]),
        # W = 18 fills MULT18X18D's unsigned 18 x 18 (docs/gateware-plan.md: the faster lane)
        Job("montmul", {"width": 18, "max_words": 228},
            {**_montmul(rng, [3, 7, 12], extra=[4096, 2048, 1024], width=18), "seed": seed},
            ["montmul_vectors"]),
        Job("montmul", {"width": 36, "max_words": 114},
            {**_montmul(rng, [3, 7, 12], extra=[4096, 2048, 1024], width=36), "seed": seed},
            ["montmul_vectors"]),
    ]
    for window in (1, 2, 4):
        params = {"width": W, "max_words": 8, "window": window, "max_windows": 64 // window}
        jobs.append(Job("modexp", params,
                        {**_modexp(rng, list(range(3, 9)), window, 60), "seed": seed},
                        ["modexp_vectors"]))
    small = {"width": W, "max_words": 8, "window": 2, "max_windows": 32}
    jobs.append(Job("core", small,
                    {**_stream(rng, 1, 8, 2, 32, 60, HANDSHAKES, 4, chain=False), "seed": seed},
                    ["stream_scenarios", "packet_chains"]))
    jobs.append(Job("array", {"lanes": 4, **small},
                    {**_stream(rng, 4, 8, 2, 32, 60, HANDSHAKES, 9), "seed": seed},
                    ["stream_scenarios", "packet_chains"]))
    jobs.append(_link(seed, 12))
    big = {"width": W, "max_words": 257, "window": 4, "max_windows": 512}
    n4096 = rng.getrandbits(4096) | 1 | (1 << 4095)
    n2048 = rng.getrandbits(2048) | 1 | (1 << 2047)
    paillier_shapes = {"width": W, "window": 4, "lanes": 1, "chain": False, "seed": seed,
                       "paillier_bits": 1024, "deadline_cycles": 400_000_000, "scenarios": [
        {"name": "encrypt-2048-key", "check_cycles": True, "requests": [
            {"tag": 1, "base": _hex(rng.randrange(n4096)),
             "e": _hex(rng.getrandbits(2048) | 1 << 2047), "m": _hex(n4096)}]},
        {"name": "crt-half-2048-key", "check_cycles": True, "requests": [
            {"tag": 2, "base": _hex(rng.randrange(n2048)),
             "e": _hex(rng.getrandbits(1024) | 1 << 1023), "m": _hex(n2048),
             "const_time": True, "windows": 256}]},
    ]}
    jobs.append(Job("core", big, paillier_shapes, ["stream_scenarios", "paillier_round_trip"],
                    simulators=("verilator",), label="core-paillier-full"))
    return jobs
