"""Bit-exact and cycle-exact models of the gateware, for tests and for the ``model`` backend.

Everything here is plain Python (no Amaranth), so the driver can import it to project device
time without the toolchain installed.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

__all__ = [
    "DRAIN",
    "LINK_WINDOW",
    "MAX_WIDTH",
    "MIN_WORDS",
    "ROW_GAP",
    "Command",
    "LinkFrame",
    "Pipeline",
    "batch_cycles",
    "batch_products",
    "comb_commands",
    "comb_frame_cycles",
    "command_cycles",
    "exponent_digits",
    "link_schedule_seconds",
    "modexp_cycles",
    "montgomery_words",
    "montmul_cycles",
    "montmul_reference",
    "mprime",
    "multiplier_utilisation",
    "packet_cycles",
    "packet_frame",
    "pipeline",
    "request_beats",
    "request_frame",
]

#: the lane's smallest run-time word count
MIN_WORDS = 3
#: widest word: a W × W product on four MULT18X18D (two 18-bit halves of each operand)
MAX_WIDTH = 36


class Pipeline(NamedTuple):
    """The lane's timing for one word width (``hdl/montmul.py`` has the stage table).

    ``latency``: cycles through a multiplier (registered inputs to registered product): 2 on one
    MULT18X18D (W ≤ 18), 5 on four (W > 18: a fabric register in front of the blocks, and
    the partial products summed in two more register stages). ``drain``: the stage (cycles
    after a word's reads issue) at which its carry add is done, plus one. ``row_gap``: the
    shortest row period, so that a row never reads ``t_{j−1}`` before the previous row has
    written it. A row also lasts at least ``s + latency`` cycles: multiplier B takes the row's
    quotient digit, ``latency`` cycles later the first of its ``s`` products. ``blocks``:
    MULT18X18D behind each multiplier (one W × W word product).
    """

    latency: int
    drain: int
    row_gap: int
    blocks: int

    def row_period(self, words: int) -> int:
        return max(words + self.latency, self.row_gap)


def pipeline(width: int = 16) -> Pipeline:
    """The lane's :class:`Pipeline` at word width ``width`` (2 … :data:`MAX_WIDTH`)."""
    if not isinstance(width, int) or not 2 <= width <= MAX_WIDTH:
        raise ValueError(f"word width must be an integer from 2 to {MAX_WIDTH}, not {width!r}")
    latency, blocks = (2, 1) if width <= 18 else (5, 4)
    drain = 3 * latency + 5
    return Pipeline(latency, drain, drain + 2, blocks)


#: :func:`pipeline` at W ≤ 18: the carry add is done at stage ``DRAIN - 1``
DRAIN = pipeline(16).drain
#: :func:`pipeline` at W ≤ 18: the shortest row period
ROW_GAP = pipeline(16).row_gap


def montgomery_words(modulus_bits: int, width: int) -> int:
    """Words ``s`` for an ``L``-bit modulus: ``R = 2^(W·s) > 4m`` keeps every operand and result
    below ``2m``, so no subtraction is needed between multiplications. At least 3: the lane
    reads ``t_{s−2}`` and ``t_{s−1}`` of a row no earlier than the previous row writes them."""
    if modulus_bits < 2:
        raise ValueError(f"modulus must have at least 2 bits, not {modulus_bits}")
    return max(MIN_WORDS, -(-(modulus_bits + 2) // width))


def mprime(modulus: int, width: int) -> int:
    """``-m⁻¹ mod 2^W`` for odd ``m``."""
    if modulus % 2 == 0:
        raise ValueError(f"Montgomery multiplication needs an odd modulus, not {modulus}")
    return (-pow(modulus, -1, 1 << width)) % (1 << width)


def montmul_reference(a: int, b: int, modulus: int, width: int, words: int) -> tuple[int, int]:
    """What :class:`~montpipe.hdl.montmul.MontMulLane` computes, word for word: the FIOS
    result ``t`` (``s`` words) and the word above it."""
    mask = (1 << width) - 1
    mp = mprime(modulus, width)
    aw = [(a >> (width * i)) & mask for i in range(words)]
    bw = [(b >> (width * i)) & mask for i in range(words)]
    mw = [(modulus >> (width * i)) & mask for i in range(words)]
    t = [0] * words
    top = 0
    for i in range(words):
        p = t[0] + aw[i] * bw[0]
        q = ((p & mask) * mp) & mask
        carry = (p + q * mw[0]) >> width
        for j in range(1, words):
            x = t[j] + aw[i] * bw[j] + q * mw[j] + carry
            t[j - 1] = x & mask
            carry = x >> width
        x = top + carry
        t[words - 1] = x & mask
        top = x >> width
    return sum(v << (width * k) for k, v in enumerate(t)), top


def montmul_cycles(words: int, width: int = 16) -> int:
    """Cycles from the clock edge that takes ``start`` to the first one with ``done`` high.

    ``s`` rows of ``max(s + L, row_gap)`` cycles (:func:`pipeline`; at W ≤ 18, ``L = 2`` and
    ``row_gap = 13``) — multiplier B spends ``s + 1`` of them on the quotient digit and ``s``
    products, and waits ``L − 1`` for the digit; short rows wait for the previous row's writes —
    then the pipeline drains and the last row's top word closes (``drain + 1`` cycles), and one
    cycle registers ``done``.
    """
    if words < MIN_WORDS:
        raise ValueError(f"the lane needs at least {MIN_WORDS} words, not {words}")
    p = pipeline(width)
    return words * p.row_period(words) + p.drain + 3


class Command(enum.IntEnum):
    """What a lane runs (bits 1 to 3 of a request's flags beat, ``hdl/core.py``): an
    exponentiation, or one packet of a chain of products over an accumulator the lane keeps."""

    MODEXP = 0
    BEGIN = 1       # write the Montgomery one for the modulus loaded with it
    LOAD = 2        # the operand becomes the accumulator
    MUL = 3         # accumulator × operand
    SQUARE = 4      # accumulator²
    OUT = 5         # the accumulator out of the Montgomery domain, fully reduced
    RAW = 6         # the accumulator as it is (Montgomery form, below 2m)
    NOP = 7         # nothing: keeps a lane's turn in the round-robin when it has no work


def command_cycles(command: Command, words: int, width: int = 16) -> int:
    """Cycles from the edge that takes ``start`` to the first with ``done`` high, for a packet
    command of :class:`~montpipe.hdl.modexp.ModExpLane` (``MODEXP``: :func:`modexp_cycles`).

    ``BEGIN`` writes the slot ``ONE`` (``s`` cycles); ``LOAD`` and ``RAW`` only move the
    accumulator; ``MUL`` and ``SQUARE`` are one product (issue, wait, decide) and a cycle to
    signal; ``OUT`` is the conversion out and the comparison with ``m`` an exponentiation ends
    with."""
    command = Command(command)
    product = montmul_cycles(words, width) + 2
    if command is Command.BEGIN:
        return words + 2
    if command in (Command.LOAD, Command.RAW):
        return 2
    if command is Command.NOP:
        return 0
    if command in (Command.MUL, Command.SQUARE):
        return product + 1
    if command is Command.OUT:
        return product + words + 3
    raise ValueError("an exponentiation's cycles are modexp_cycles, not command_cycles")


def comb_commands(lanes: int, jobs: int, steps: int, tables: int) -> list[Command]:
    """The packets the link's comb sends (``hdl/link_comb.py``), in order: rounds of one packet
    a lane — ``BEGIN``, ``LOAD`` and ``tables − 1`` ``MUL``, then per later step ``SQUARE`` and
    ``tables`` ``MUL``, then ``OUT`` — with ``NOP`` for the lanes beyond ``jobs``. Its cycles
    are :func:`packet_cycles` of this list."""
    if not 1 <= jobs <= lanes:
        raise ValueError(f"a comb runs 1 to {lanes} jobs (one a lane), not {jobs}")
    if steps < 1 or tables < 1:
        raise ValueError(f"a comb has at least one step and one table, not {steps} and {tables}")
    rounds = [Command.BEGIN, Command.LOAD] + [Command.MUL] * (tables - 1)
    for _ in range(steps - 1):
        rounds += [Command.SQUARE] + [Command.MUL] * tables
    rounds.append(Command.OUT)
    return [c if j < jobs else Command.NOP for c in rounds for j in range(lanes)]


def exponent_digits(exponent: int, window: int, windows: int | None = None) -> list[int]:
    """The ``window``-bit digits of ``exponent``, least significant first, as
    :class:`~montpipe.hdl.modexp.ModExpLane` takes them; ``windows`` pads with zero digits to a
    declared length (constant-time mode), or defaults to ``ceil(bits / window)``."""
    if exponent < 0:
        raise ValueError(f"exponent must be non-negative, not {exponent}")
    needed = -(-exponent.bit_length() // window)
    if windows is None:
        windows = needed
    elif windows < needed:
        raise ValueError(f"exponent of {exponent.bit_length()} bits does not fit {windows} "
                         f"windows of {window} bits")
    mask = (1 << window) - 1
    return [(exponent >> (window * i)) & mask for i in range(windows)]


def modexp_cycles(words: int, window: int, digits: list[int], const_time: bool,
                  width: int = 16) -> int:
    """Cycles from the edge that takes ``start`` to the first with ``done`` high, for
    :class:`~montpipe.hdl.modexp.ModExpLane`.

    Writing the slot ``ONE`` takes ``s`` cycles; every product costs ``montmul_cycles(s) + 2``
    (issue, wait, decide); ``2^w`` products build the table (conversion of the base and of 1
    included); every window but the most significant takes ``w`` squarings, its digit product
    (always in constant-time mode, for non-zero digits otherwise) and two cycles of control;
    conversion out is one product; the final comparison with ``m`` takes ``s + 1`` cycles.
    In constant-time mode the count depends only on ``len(digits)``.
    """
    product = montmul_cycles(words, width) + 2
    cycles = 1 + words + (1 << window) * product + 1 + 1 + product + 1 + words
    if digits:
        cycles += 2
        for d in digits[:-1]:
            cycles += 2 + window * product + (product if (d or const_time) else 0)
    return cycles


def request_beats(words: int, windows: int) -> int:
    """Beats of a request frame to :class:`~montpipe.hdl.core.ModExpCore`: a header of 5,
    the modulus, ``R² mod m`` and the base (``s`` each), one beat per exponent window."""
    return 5 + 3 * words + windows


class _Frame(NamedTuple):
    """A request frame as the array's timing sees it: its beats, cycles from its last beat
    taken to the engine's ``start`` (chained; a lone core's are ``alone``), the engine's cycles,
    cycles from ``done`` to the result's first word offered, and the result's beats."""

    beats: int
    to_start: int
    engine: int
    to_offer: int
    result: int
    alone: int      # a lone core: cycles from its first beat taken to ``start``


def _modexp_frame(words: int, window: int, digits: list[int], const_time: bool,
                  width: int) -> _Frame:
    nw = len(digits)
    return _Frame(request_beats(words, nw), 1 if nw else 2,
                  modexp_cycles(words, window, digits, const_time, width), 2, words,
                  6 + 4 * words + nw)


@functools.lru_cache(maxsize=64)
def _packet_frame(command: Command, words: int, width: int) -> _Frame:
    command = Command(command)
    operand = command in (Command.BEGIN, Command.LOAD, Command.MUL)
    returns = command in (Command.OUT, Command.RAW)
    beats = 5 + (words if operand else 0)
    if command is Command.NOP:      # answered from Decide: no engine
        return _Frame(beats, 1, 0, 1, 1, beats)
    return _Frame(beats, 1, command_cycles(command, words, width), 2 if returns else 1,
                  words if returns else 1, beats)


def batch_cycles(lanes: int, words: int, window: int, digit_lists: list[list[int]],
                 const_time: bool, width: int = 16, *, chain: bool = True) -> int:
    """Cycles :class:`~montpipe.hdl.array.ModExpArray` takes for a batch of exponentiations
    under one word count, from the cycle the first request beat is offered to the cycle the
    last result word is taken, with requests offered back to back and results always taken.

    Request ``k`` goes to lane ``k mod lanes`` and results leave in request order. The array's
    request chain carries a beat a stage a cycle and a beat every two cycles; a lane takes its
    frame at that pace (the base at its own two cycles a word), then one cycle to check the
    base and one to start the engine, or one after the last exponent digit; it runs
    :func:`modexp_cycles` and offers its ``s`` result words two cycles apart, each reaching the
    array's output ``lane + 1`` cycles after the result chain took it, and a result's first
    word two cycles after the previous result's last. A lane takes its next frame once its
    last result word is in the chain. Exact when every frame has more beats than there are
    lanes (a shorter frame can sit wholly in a stalled chain), as real ones do.

    ``chain=False`` counts a lone :class:`~montpipe.hdl.core.ModExpCore` instead (one lane,
    no chains): it takes a beat a cycle (the base at two), and its words leave as it offers them.
    """
    return _frames_cycles(lanes, [_modexp_frame(words, window, d, const_time, width)
                                  for d in digit_lists], chain)


def packet_cycles(lanes: int, words: int, commands: list[Command], width: int = 16, *,
                  chain: bool = True) -> int:
    """:func:`batch_cycles` for a stream of packets (:func:`packet_frame`), packet ``k`` to
    lane ``k mod lanes``: a packet's beats (a header of five, and ``s`` for ``BEGIN``,
    ``LOAD`` and ``MUL``), one cycle to start the engine, :func:`command_cycles`, then a
    one-beat acknowledgement offered the cycle after ``done``, or for ``OUT`` and ``RAW`` the
    ``s`` result words as an exponentiation's. A lone core takes a packet's beats one a cycle.
    Exact under the same condition as :func:`batch_cycles`, which header-only packets
    (``SQUARE``, ``OUT``, ``RAW``: five beats) meet up to four lanes."""
    return _frames_cycles(lanes, [_packet_frame(c, words, width) for c in commands], chain)


@functools.lru_cache(maxsize=128)
def comb_frame_cycles(lanes: int, words: int, jobs: int, steps: int, tables: int,
                      width: int = 16) -> int:
    """:func:`packet_cycles` of one comb frame (:func:`comb_commands`). A frame is thousands
    of packets and the backends price every frame they send or project, nearly all of one
    shape, so the figure is kept per shape."""
    return packet_cycles(lanes, words, comb_commands(lanes, jobs, steps, tables), width)


def _frames_cycles(lanes: int, frames: list[_Frame], chain: bool) -> int:
    if lanes < 1:
        raise ValueError(f"lane count must be at least 1, not {lanes}")
    if not chain:
        if lanes != 1:
            raise ValueError(f"a lone core is one lane, not {lanes}")
        return _core_cycles(frames)
    free = [0] * lanes          # first cycle each lane can take a header beat
    last_in = None              # (cycle, lane) the previous frame's last beat was taken
    last = None                 # cycle the previous result's last word left
    for k, f in enumerate(frames):
        lane = k % lanes
        # the frame's first beat enters the chain two cycles after the previous frame's last
        arrive = 1 if last_in is None else last_in[0] - last_in[1] + lane + 2
        first = max(arrive, free[lane])
        taken = first + 2 * (f.beats - 1)          # the frame's last beat
        last_in = (taken, lane)
        start = taken + f.to_start                 # the cycle the engine takes start
        ready = start + f.engine + f.to_offer
        out = ready + lane + 1
        if last is not None:
            out = max(out, last + 2)
        last = out + 2 * f.result - 2              # the result's last word leaves
        free[lane] = last - lane
    return last + 1 if frames else 0


def _core_cycles(frames: list[_Frame]) -> int:
    # a frame's header is taken the cycle after the previous result's last word left (the core
    # takes nothing while it runs or sends), so each frame starts where the last one ended
    last = -1                   # the cycle the previous result's last word left
    for f in frames:
        start = last + 1 + f.alone                             # the engine takes start
        last = start + f.engine + f.to_offer + 2 * (f.result - 1)
    return last + 1 if frames else 0


def batch_products(window: int, digit_lists: list[list[int]], const_time: bool) -> int:
    """Montgomery products a batch computes: per exponentiation ``2^w`` for the table
    (conversions included), ``w`` squarings and (always in constant-time mode, else for a
    non-zero digit) one product per window after the first, and one for conversion out."""
    total = 0
    for digits in digit_lists:
        total += (1 << window) + 1
        for d in digits[:-1]:
            total += window + (1 if (d or const_time) else 0)
    return total


def multiplier_utilisation(lanes: int, words: int, window: int,
                           digit_lists: list[list[int]], const_time: bool,
                           width: int = 16) -> float:
    """Useful multiplier cycles over available ones for a batch: each product needs
    ``2s² + s`` (``s²`` word products ``a_i·b_j``, ``s²`` products ``q_i·m_j`` and ``s`` quotient
    digits) out of ``2 · lanes`` W × W multipliers for :func:`batch_cycles`."""
    cycles = batch_cycles(lanes, words, window, digit_lists, const_time, width)
    useful = batch_products(window, digit_lists, const_time) * (2 * words * words + words)
    return useful / (2 * lanes * cycles) if cycles else 0.0


#: request frames a host may leave unanswered among table writes and combs: the link's two
#: request buffers hold the frame being served and one more (a comb keeps its buffer until its
#: last packet is dealt, and the host cannot see when that is: only its answers, which come
#: later), so a third frame could find both full and be refused ``BUSY``
LINK_WINDOW = 2


class LinkFrame(NamedTuple):
    """A request frame as the link's schedule sees it: its bytes to the device, the device's
    seconds serving it, and the bytes of its answers."""

    out_bytes: int
    device_seconds: float
    in_bytes: int


def link_schedule_seconds(frames: list[LinkFrame], bytes_per_s: float,
                          window: int = LINK_WINDOW) -> float:
    """Seconds from the first byte of ``frames`` sent to the last answer in, sent in order
    over a link that carries ``bytes_per_s`` each way at once (a UART's two wires), with at
    most ``window`` frames unanswered. The device serves a frame once it has arrived whole and
    the frame before is served; its answers leave once it is served, behind the answers before
    them. So a frame goes out while the one before is served, and answers come back while the
    next is served, but a frame that must wait for a free buffer waits for an answer.

    Not counted: the host's turnaround between an answer and the next frame, and a comb's
    results that leave before its last job is done (each is taken to leave at its end), so the
    figure is what the device and the link allow, met by a host that keeps up."""
    if window < 1:
        raise ValueError(f"a link window is at least one frame, not {window}")
    if bytes_per_s <= 0:
        raise ValueError(f"the link's byte rate must be positive, not {bytes_per_s}")
    line = served = 0.0         # the host's line free; the device done with the frame before
    answered: list[float] = []  # when each frame's last answer byte is in
    for i, f in enumerate(frames):
        start = line if i < window else max(line, answered[i - window])
        line = start + f.out_bytes / bytes_per_s
        served = max(line, served) + f.device_seconds
        back = max(served, answered[-1]) if answered else served
        answered.append(back + f.in_bytes / bytes_per_s)
    return answered[-1] if answered else 0.0


def request_frame(tag: int, base: int, exponent: int, modulus: int, *, width: int, window: int,
                  const_time: bool = False, words: int | None = None,
                  windows: int | None = None) -> list[int]:
    """The beats of a request frame to :class:`~montpipe.hdl.core.ModExpCore` (``last`` goes on
    the final one): tag, ``s``, windows, flags, ``m'``, then ``m``, ``R² mod m`` and the base
    (``s`` words each, least significant first) and the exponent's digits.

    ``words`` and ``windows`` override the natural lengths (to declare a constant-time length,
    or to build frames the core must refuse); an even modulus gets ``m' = 0``. Values that do
    not fit are masked to the word, as a host would send them.
    """
    mask = (1 << width) - 1
    s = words if words is not None else montgomery_words(max(modulus.bit_length(), 2), width)
    digits = exponent_digits(exponent, window, windows)
    mp = mprime(modulus, width) if modulus % 2 else 0
    r2 = pow(2, 2 * width * s, modulus) if modulus > 1 else 0
    beats = [tag & mask, s & mask, len(digits) & mask, int(const_time), mp]
    for value in (modulus, r2, base):
        beats += [(value >> (width * k)) & mask for k in range(s)]
    return beats + digits


def packet_frame(tag: int, command: Command, modulus: int, operand: int | None = None, *,
                 width: int, words: int | None = None) -> list[int]:
    """The beats of a packet to :class:`~montpipe.hdl.core.ModExpCore`: the five-beat header
    (tag, ``s``, 0 windows, the command in bits 1 to 3 of the flags, ``m'``), then ``m`` for
    ``BEGIN`` or the operand (Montgomery form, below ``2m``) for ``LOAD`` and ``MUL``."""
    command = Command(command)
    if command is Command.MODEXP:
        raise ValueError("an exponentiation's frame is request_frame, not packet_frame")
    mask = (1 << width) - 1
    s = words if words is not None else montgomery_words(max(modulus.bit_length(), 2), width)
    mp = mprime(modulus, width) if modulus % 2 else 0
    beats = [tag & mask, s & mask, 0, int(command) << 1, mp]
    if command is Command.BEGIN:
        operand = modulus
    elif command in (Command.LOAD, Command.MUL):
        if operand is None:
            raise ValueError(f"a {command.name} packet carries an operand")
    else:
        return beats
    return beats + [(operand >> (width * k)) & mask for k in range(s)]


def _batch_table(lanes_list=(1, 59), width: int = 16, seed: int = 1) -> list[str]:
    """Rows of the batch table in ``docs/gateware-plan.md``."""
    import random

    rng = random.Random(seed)
    rows = ["| modulus / exponent | mode, window | lanes | cycles per product × lanes "
            "| ÷ bound | multiplier utilisation |", "|---|---|---|---|---|---|"]
    shapes = [(4096, 2048, True, 4), (4096, 2048, False, 4), (4096, 2048, False, 1),
              (2048, 1024, True, 4)]
    for bits, e_bits, const_time, window in shapes:
        s = montgomery_words(bits, width)
        bound = -(-(2 * s * s + s) // 2)
        for lanes in lanes_list:
            digit_lists = [exponent_digits(rng.getrandbits(e_bits) | 1 << (e_bits - 1), window)
                           for _ in range(2 * lanes)]
            cycles = batch_cycles(lanes, s, window, digit_lists, const_time)
            per = cycles * lanes / batch_products(window, digit_lists, const_time)
            util = multiplier_utilisation(lanes, s, window, digit_lists, const_time)
            mode = "constant time" if const_time else "variable time"
            rows.append(f"| {bits} / {e_bits} | {mode}, w = {window} | {lanes} | {per:,.0f} "
                        f"| {per / bound:.3f} | {100 * util:.1f} % |")
    return rows


if __name__ == "__main__":
    print("\n".join(_batch_table()))
