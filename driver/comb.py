"""The host's half of the device's comb (``docs/protocol.md``, "The comb"): the shape that fits
a build's table, the table of a base, and an exponent's digits.

A comb of ``v`` tables of ``2^h`` entries over ``b`` steps covers exponents of up to
``h·a`` bits, ``a = b·v`` columns: entry ``d`` of table ``t`` is the product of
``g^(2^(j·a + t·b))`` over the bits ``j`` of ``d``, and a power takes ``b·(v + 1) − 1``
Montgomery products on the device whatever the exponent (``docs/gateware-plan.md``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gmpy2

from ..device.model import (
    LINK_WINDOW,
    LinkFrame,
    comb_frame_cycles,
    link_schedule_seconds,
    montmul_cycles,
)
from ..device.wire import (
    COMB_MAX_DIGITS,
    Opcode,
    comb_request,
    encode_response,
    table_write_request,
    word_bytes,
)

__all__ = [
    "CombShape",
    "MultiexpFrame",
    "MultiexpPlan",
    "choose_shape",
    "chunk_entries",
    "comb_digits",
    "comb_link_frame",
    "comb_table",
    "device_plan",
    "multiexp_digits",
    "multiexp_frames",
    "multiexp_link_frames",
    "multiexp_steps",
    "subset_tables",
    "table_write_frame",
]


@dataclass(frozen=True)
class CombShape:
    """``bits`` (h), ``tables`` (v) and ``steps`` (b) of a comb."""

    bits: int
    tables: int
    steps: int

    @property
    def columns(self) -> int:
        return self.steps * self.tables

    @property
    def max_bits(self) -> int:
        """The longest exponent the comb covers."""
        return self.bits * self.columns

    @property
    def entries(self) -> int:
        return self.tables << self.bits

    @property
    def products(self) -> int:
        """Montgomery products a power takes: a load, then per step a squaring (not the
        first) and a product a table, and the conversion out."""
        return self.steps * (self.tables + 1) - 1


def choose_shape(max_bits: int, table_entries: int,
                 max_digits: int = COMB_MAX_DIGITS) -> CombShape | None:
    """The comb with the fewest products for exponents of ``max_bits`` bits within a table of
    ``table_entries`` (the smaller table on a tie); ``None`` if none fits."""
    if max_bits < 1:
        raise ValueError(f"a comb covers exponents of at least 1 bit, not {max_bits}")
    best = None
    for bits in range(1, 9):
        columns = -(-max_bits // bits)
        for tables in range(1, table_entries // (1 << bits) + 1):
            steps = -(-columns // tables)
            if steps * tables > max_digits:
                continue
            shape = CombShape(bits, tables, steps)
            key = (shape.products, shape.entries)
            if best is None or key < best[0]:
                best = (key, shape)
    return best[1] if best else None


def comb_table(base: int, modulus: int, shape: CombShape) -> list[int]:
    """The table's entries (plain residues; the device takes them times ``R mod m``), table
    after table: ``shape.entries`` products of powers ``base^(2^k)``."""
    m = gmpy2.mpz(modulus)
    a = shape.columns
    powers = []
    x = gmpy2.mpz(base) % m
    for _ in range(shape.max_bits):
        powers.append(x)
        x = x * x % m
    out = []
    for t in range(shape.tables):
        entries = [gmpy2.mpz(1) % m]
        for d in range(1, 1 << shape.bits):
            low = (d & -d).bit_length() - 1
            entries.append(entries[d & (d - 1)] * powers[low * a + t * shape.steps] % m)
        out += [int(e) for e in entries]
    return out


def comb_digits(exponent: int, shape: CombShape) -> bytes:
    """A job's digits: per step from the most significant, per table, the bits of
    ``exponent`` at ``j·a + t·b + i`` for ``j < h``."""
    if exponent < 0 or exponent.bit_length() > shape.max_bits:
        raise ValueError(f"a {shape.max_bits}-bit comb cannot take an exponent of "
                         f"{exponent.bit_length()} bits{' (negative)' if exponent < 0 else ''}")
    a, b = shape.columns, shape.steps
    out = bytearray()
    for i in range(b - 1, -1, -1):
        for t in range(shape.tables):
            col = t * b + i
            out.append(sum(((exponent >> (j * a + col)) & 1) << j for j in range(shape.bits)))
    return bytes(out)


# -- multi-exponentiation on the comb ----------------------------------------------------------
#
# The comb computes, per job, Π_t T_t[d_t] over its steps with a squaring between them. With
# table t the products of the subsets of a group of h bases, and d_t the group's exponent bits
# of a step, that is Π_i c_i^(e_i) over the groups' bases: Straus's simultaneous
# multi-exponentiation. A job is one row over one chunk of v groups; the tables are the host's
# (2^h − 1 − h products a group on the CPU), written once a chunk and shared by every row.
#
# A frame's jobs share one shape, but not one chunk: the comb's digits are h + k bits wide, the
# top k choosing one of 2^k slots, each holding a chunk's tables (entry (t·2^k + slot)·2^h + d).
# So a frame takes the next lane's worth of (chunk, row) jobs over up to 2^k consecutive chunks,
# and no lane idles because a chunk has fewer rows than there are lanes.


@dataclass(frozen=True)
class MultiexpPlan:
    """Groups of ``bits`` bases, ``tables`` groups a chunk (a job), ``steps`` exponent bits,
    ``slots`` chunks resident in the table at once (a power of two)."""

    bits: int
    tables: int
    steps: int
    slots: int = 1

    @property
    def slot_bits(self) -> int:
        return self.slots.bit_length() - 1

    @property
    def shape(self) -> CombShape:
        """The comb's shape: a digit is a slot and a group's subset."""
        return CombShape(self.bits + self.slot_bits, self.tables, self.steps)

    @property
    def chunk_bases(self) -> int:
        return self.bits * self.tables

    def entry(self, table: int, slot: int, subset: int) -> int:
        """The table index of entry ``subset`` of group ``table`` of the chunk in ``slot``."""
        return (((table << self.slot_bits) | slot) << self.bits) | subset


def subset_tables(bases: list[int], modulus: int, bits: int) -> list[list[int]]:
    """For each group of ``bits`` bases (the last may be shorter), the products of its subsets:
    entry ``d`` the product of the bases at the bits of ``d`` (entries a short group does not
    have are 1, never indexed)."""
    m = gmpy2.mpz(modulus)
    out = []
    for start in range(0, len(bases), bits):
        group = [gmpy2.mpz(b) % m for b in bases[start:start + bits]]
        entries = [gmpy2.mpz(1) % m] * (1 << bits)
        for d in range(1, 1 << len(group)):
            low = (d & -d).bit_length() - 1
            entries[d] = group[low] if d == 1 << low else entries[d & (d - 1)] * group[low] % m
        out.append([int(e) for e in entries])
    return out


def chunk_entries(plan: MultiexpPlan, chunk: int, groups: int) -> list[tuple[int, int | None, int]]:
    """Where chunk ``chunk`` of a multi-exponentiation over ``groups`` groups sits in the
    table: ``(index, group, subset)`` for each entry written for it, in its slot — a group
    past the last (``group`` None) gets only its empty subset, the one its zero digits
    multiply by."""
    slot = chunk % plan.slots
    out = []
    for t in range(plan.tables):
        g = chunk * plan.tables + t
        for subset in range(1 << plan.bits) if g < groups else (0,):
            out.append((plan.entry(t, slot, subset), g if g < groups else None, subset))
    return out


def multiexp_digits(exponents: list[int], plan: MultiexpPlan, slot: int = 0) -> bytes:
    """A job's digits: one row's (non-negative, ``plan.steps``-bit) exponents of a chunk's
    bases (at most ``plan.chunk_bases``), per step from the most significant, per group the
    chunk's slot and the bits of its bases' exponents at that step (a group the chunk does
    not have: the empty subset)."""
    h = plan.bits
    top = slot << h
    out = bytearray()
    for i in range(plan.steps - 1, -1, -1):
        for t in range(plan.tables):
            group = exponents[t * h:(t + 1) * h]
            out.append(top | sum(((e >> i) & 1) << j for j, e in enumerate(group)))
    return bytes(out)


@dataclass(frozen=True)
class MultiexpFrame:
    """One comb frame of a multi-exponentiation: its jobs (chunk, row), and the chunks to be
    written into their slots (chunk ``c`` lives in slot ``c mod slots``) before it."""

    jobs: tuple[tuple[int, int], ...]
    loads: tuple[int, ...]


def multiexp_frames(chunks: int, rows: int, lanes: int, slots: int) -> list[MultiexpFrame]:
    """The frames of ``chunks × rows`` jobs, chunk after chunk: at most ``lanes`` jobs a frame
    over at most ``slots`` consecutive chunks (so none of its chunks evicts another)."""
    frames = []
    resident: dict[int, int] = {}
    jobs = [(c, r) for c in range(chunks) for r in range(rows)]
    at = 0
    while at < len(jobs):
        first = jobs[at][0]
        take = []
        while at < len(jobs) and len(take) < lanes and jobs[at][0] - first < slots:
            take.append(jobs[at])
            at += 1
        loads = []
        for c in sorted({c for c, _ in take}):
            if resident.get(c % slots) != c:
                resident[c % slots] = c
                loads.append(c)
        frames.append(MultiexpFrame(tuple(take), tuple(loads)))
    return frames


def multiexp_steps(rows: list[list[int]]) -> tuple[int, int]:
    """The comb's steps for these exponent rows and the offset that makes them non-negative:
    ``(B, 2^(B−1))`` with a negative exponent among them, else ``(bits, 0)``."""
    longest = max((abs(e).bit_length() for row in rows for e in row), default=0)
    negative = any(e < 0 for row in rows for e in row)
    steps = max(longest + negative, 1)
    return steps, (1 << (steps - 1)) if negative else 0


def table_write_frame(width: int, words: int) -> LinkFrame:
    """One table entry's ``TABLE_WRITE`` and its answer, as the link's schedule sees them. The
    device stores an entry in far less time than its bytes take on the wire, so the frame
    counts no device time."""
    return LinkFrame(len(table_write_request(0, 0, 0, 0, width=width, words=words)), 0.0,
                     len(encode_response(Opcode.TABLE_WRITE, 0, 0)))


def _answer_bytes(width: int, words: int) -> int:
    """Link bytes of one comb job's result."""
    return len(encode_response(Opcode.COMB, 0, 0, bytes(words * word_bytes(width))))


def comb_link_frame(shape: CombShape, jobs: int, *, lanes: int, words: int, width: int,
                    clock_hz: float) -> LinkFrame:
    """A comb frame of ``jobs`` jobs of ``shape`` as the link's schedule sees it: the request
    with its digits, the lanes' time by the cycle model, the jobs' results."""
    return LinkFrame(
        len(comb_request(0, 0, shape.steps, shape.tables, shape.bits,
                         [bytes(shape.columns)] * jobs)),
        comb_frame_cycles(lanes, words, jobs, shape.steps, shape.tables, width) / clock_hz,
        jobs * _answer_bytes(width, words))


def multiexp_link_frames(plan: MultiexpPlan, bases: int, rows: int, *, lanes: int,
                         words: int, width: int, clock_hz: float) -> list[LinkFrame]:
    """The link's frames of ``rows`` rows over ``bases`` bases by ``plan``, as the ``fpga``
    backend sends them to a table that holds none of their entries: before each comb frame
    (:func:`multiexp_frames`) a ``TABLE_WRITE`` for each entry of its new chunks
    (:func:`chunk_entries`: a group's non-empty subsets; the one, of the empty subset and of
    a short group's missing bases, where the table does not hold the one already), then the
    comb, its jobs' results back."""
    entry = table_write_frame(width, words)
    h, v = plan.bits, plan.tables
    groups = -(-bases // h)
    ones: set[int] = set()
    combs: dict[int, LinkFrame] = {}        # a comb frame by its jobs: a few shapes, many frames
    frames: list[LinkFrame] = []
    for frame in multiexp_frames(-(-groups // v), rows, lanes, plan.slots):
        writes = 0
        for c in frame.loads:
            for t in range(v):
                g = c * v + t
                first = plan.entry(t, c % plan.slots, 0)
                size = min(h, bases - g * h) if g < groups else 0
                writes += (1 << size) - 1
                if ones:
                    ones.difference_update(range(first + 1, first + (1 << size)))
                # a group past the last writes only its empty subset
                for index in [first, *range(first + (1 << size), first + (1 << h))] \
                        if g < groups else [first]:
                    if index not in ones:
                        ones.add(index)
                        writes += 1
        frames += [entry] * writes
        jobs = len(frame.jobs)
        if jobs not in combs:
            combs[jobs] = comb_link_frame(plan.shape, jobs, lanes=lanes, words=words,
                                          width=width, clock_hz=clock_hz)
        frames.append(combs[jobs])
    return frames


@functools.lru_cache(maxsize=256)
def device_plan(steps: int, rows: int, bases: int, *, table_entries: int, width: int,
                words: int, lanes: int, clock_hz: float, bytes_per_s: float,
                window: int = LINK_WINDOW) -> MultiexpPlan | None:
    """The plan that a device of these figures finishes soonest, by the cycle model and the
    link's schedule (:func:`~montpipe.device.model.link_schedule_seconds` over
    :func:`multiexp_link_frames`): every group size, groups a job and number of slots that
    fit; fewer table entries in use, then fewer link bytes, then fewer products break ties.
    A link-bound device gets small groups (few table writes a term), a device-bound one
    larger groups (few products a term). Slots beyond those that fill every frame with a
    lane's worth of jobs only add ones to write, so they are not tried, and the plan leaves
    the rest of the table (a fixed-base table, say) as it was. ``None`` without a table, a
    row or a fitting chunk. Kept per arguments: calls of one shape recur (an FL iteration's)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"a multi-exponentiation plan needs at least one step, not {steps!r}")
    if not table_entries or rows < 1 or bases < 1:
        return None
    entry = table_write_frame(width, words).out_bytes
    answer = _answer_bytes(width, words)
    product = montmul_cycles(words, width)
    best = None
    for bits in range(1, 9):
        groups = -(-bases // bits)
        # every group's non-empty subsets go out, every job's result comes back: no plan of
        # this group size is done before either has crossed the link
        short = bases - (groups - 1) * bits
        writes = (groups - 1) * ((1 << bits) - 1) + (1 << short) - 1
        # most groups a job first: with short exponents the best plans are there, and a good
        # plan found early lets the bounds below pass over the rest unpriced
        for tables in range(min(COMB_MAX_DIGITS // steps, table_entries >> bits), 0, -1):
            chunks = -(-groups // tables)
            full = -(-chunks * rows // lanes)           # frames when every one is full
            # and each frame's lanes take at least one job's products in turn
            device = full * (steps * (tables + 1) - 1) * product / clock_hz
            if best is not None and max(max(writes * entry, chunks * rows * answer)
                                        / bytes_per_s, device) > best[0][0]:
                continue
            slots = 1
            while bits + slots.bit_length() - 1 <= 8 and \
                    tables << (bits + slots.bit_length() - 1) <= table_entries:
                plan = MultiexpPlan(bits, tables, steps, slots)
                frames = multiexp_link_frames(plan, bases, rows, lanes=lanes, words=words,
                                              width=width, clock_hz=clock_hz)
                key = (link_schedule_seconds(frames, bytes_per_s, window), plan.shape.entries,
                       sum(f.out_bytes + f.in_bytes for f in frames),
                       (steps * (tables + 1) - 1) / plan.chunk_bases)
                if best is None or key < best[0]:
                    best = (key, plan)
                if slots >= chunks or sum(1 for f in frames if f.device_seconds) == full:
                    break
                slots <<= 1
    return best[1] if best else None
