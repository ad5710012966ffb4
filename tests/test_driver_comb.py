"""The host's half of the comb: shapes within a table, tables and digits that give pow()."""

import random

import pytest

from montpipe.device.wire import COMB_MAX_DIGITS
from montpipe.driver.comb import (
    CombShape,
    MultiexpPlan,
    choose_shape,
    chunk_entries,
    comb_digits,
    comb_table,
    device_plan,
    multiexp_digits,
    multiexp_frames,
    multiexp_link_frames,
    subset_tables,
)


def run_comb(table, digits, shape, m):
    """The device's comb, in Python: a load, then per step a squaring (not the first) and a
    product an entry of each table."""
    acc = None
    for k, d in enumerate(digits):
        t = k % shape.tables
        if t == 0 and acc is not None:
            acc = acc * acc % m
        entry = table[(t << shape.bits) + d]
        acc = entry if acc is None else acc * entry % m
    return acc


@pytest.mark.parametrize("max_bits, entries", [(1, 2), (17, 16), (512, 256), (1024, 256),
                                               (64, 4096), (100, 3)])
def test_shapes_fit_and_the_comb_gives_pow(max_bits, entries):
    rng = random.Random(max_bits * entries)
    shape = choose_shape(max_bits, entries)
    assert shape.entries <= entries and shape.max_bits >= max_bits
    assert shape.columns <= COMB_MAX_DIGITS
    m = rng.getrandbits(200) | 1
    g = rng.randrange(2, m)
    table = comb_table(g, m, shape)
    assert len(table) == shape.entries
    for e in (0, 1, (1 << max_bits) - 1, rng.getrandbits(max_bits)):
        digits = comb_digits(e, shape)
        assert len(digits) == shape.columns
        assert all(d < 1 << shape.bits for d in digits)
        assert run_comb(table, digits, shape, m) == pow(g, e, m)


def test_the_chosen_shape_is_the_fewest_products():
    """At 1024-bit exponents and 256 entries: h = 6 over 4 tables, 214 products (the plan's
    table of candidates in docs/gateware-plan.md)."""
    assert choose_shape(1024, 256) == CombShape(6, 4, 43)
    assert choose_shape(1024, 256).products == 214
    for bits in range(1, 9):                    # no shape within the table does better
        for tables in range(1, 256 // (1 << bits) + 1):
            columns = -(-1024 // bits)
            steps = -(-columns // tables)
            if steps * tables <= COMB_MAX_DIGITS:
                assert steps * (tables + 1) - 1 >= 214


def test_what_cannot_be_combed():
    assert choose_shape(COMB_MAX_DIGITS * 8 + 1, 4096) is None     # more digits than a job
    assert choose_shape(8, 1) is None                               # no table of 2 entries
    with pytest.raises(ValueError, match="at least 1 bit"):
        choose_shape(0, 256)
    shape = CombShape(2, 2, 3)
    with pytest.raises(ValueError, match="12-bit comb cannot take an exponent of 13 bits"):
        comb_digits(1 << 12, shape)
    with pytest.raises(ValueError, match="negative"):
        comb_digits(-1, shape)


@pytest.mark.parametrize("chunks, rows, lanes, slots", [
    (1, 1, 1, 1), (5, 3, 2, 1), (38, 20, 15, 8), (42, 11, 15, 16), (7, 1, 15, 4),
    (9, 2, 15, 2), (3, 40, 15, 4)])
def test_multiexp_frames_fill_the_lanes_without_evicting_their_own_chunks(chunks, rows, lanes,
                                                                          slots):
    frames = multiexp_frames(chunks, rows, lanes, slots)
    jobs = [j for f in frames for j in f.jobs]
    assert jobs == [(c, r) for c in range(chunks) for r in range(rows)]
    resident = {}
    for k, f in enumerate(frames):
        assert 1 <= len(f.jobs) <= lanes
        span = {c for c, _ in f.jobs}
        assert max(span) - min(span) < slots
        for c in f.loads:
            assert resident.get(c % slots) != c         # loaded only when not there
            resident[c % slots] = c
        assert all(resident[c % slots] == c for c in span), (k, f, resident)
        # a frame is short only at the end, or where one more job would need a chunk more
        # than the slots hold
        if len(f.jobs) < lanes and k < len(frames) - 1:
            assert frames[k + 1].jobs[0][0] - min(span) >= slots
    # each chunk is written once when a frame's chunks fit the slots with room to spare
    if slots >= -(-lanes // rows) + 1:
        assert sorted(c for f in frames for c in f.loads) == list(range(chunks))
        assert all(len(f.jobs) == lanes for f in frames[:-1])


#: a link-bound device (a 3 Mbaud UART) and a device-bound one (12 Mbaud, a slow clock)
RATES = {"link-bound": dict(clock_hz=100e6, bytes_per_s=300e3),
         "device-bound": dict(clock_hz=5e6, bytes_per_s=1.2e6)}


@pytest.mark.parametrize("rates", sorted(RATES))
@pytest.mark.parametrize("bases, rows, entries", [(1, 1, 16), (13, 3, 16), (40, 5, 256),
                                                  (29, 2, 64)])
def test_multiexp_by_slots_gives_the_products(bases, rows, entries, rates):
    """The layout both backends use (chunk_entries), in Python: each chunk's group tables in
    its slot, each job's digits over them through the comb, the chunks' results multiplied per
    row; for the plans a link-bound and a device-bound device get."""
    rng = random.Random(bases * rows)
    m = rng.getrandbits(160) | 1
    cs = [rng.randrange(m) for _ in range(bases)]
    exps = [[rng.getrandbits(20) for _ in range(bases)] for _ in range(rows)]
    exps[0][0] = 0
    plan = device_plan(20, rows, bases, table_entries=entries, width=16, words=11, lanes=3,
                       **RATES[rates])
    assert plan.shape.entries <= entries and plan.shape.bits <= 8
    groups = subset_tables(cs, m, plan.bits)
    chunks = -(-len(groups) // plan.tables)
    table = {}
    out = [1] * rows
    for f in multiexp_frames(chunks, rows, 3, plan.slots):
        for c in f.loads:
            for index, g, d in chunk_entries(plan, c, len(groups)):
                table[index] = 1 if g is None else groups[g][d]
        for c, r in f.jobs:
            digits = multiexp_digits(exps[r][c * plan.chunk_bases:(c + 1) * plan.chunk_bases],
                                     plan, c % plan.slots)
            assert len(digits) == plan.steps * plan.tables
            out[r] = out[r] * run_comb(table, digits, plan.shape, m) % m
    for r in range(rows):
        want = 1
        for c, e in zip(cs, exps[r], strict=True):
            want = want * pow(c, e, m) % m
        assert out[r] == want


def test_the_plan_is_the_soonest_done_for_the_devices_rates():
    """456 bases, 20 rows of 56-bit exponents on 15 lanes (the FL demo's host): a 3 Mbaud link
    gets smaller groups than a 12 Mbaud one (fewer table writes against fewer products), and
    each device's plan beats the other's plan on that device by the link's schedule."""
    from montpipe.device.model import link_schedule_seconds

    shape = dict(table_entries=256, width=36, words=114, lanes=15)
    devices = {"ULX3S": dict(clock_hz=62.5e6, bytes_per_s=300e3),
               "ECPIX-5": dict(clock_hz=83.33e6, bytes_per_s=1.2e6)}
    plans = {name: device_plan(56, 20, 456, **shape, **rates) for name, rates in devices.items()}
    assert plans["ULX3S"].bits < plans["ECPIX-5"].bits, plans

    def seconds(plan, rates):
        frames = multiexp_link_frames(plan, 456, 20, lanes=15, words=114, width=36,
                                      clock_hz=rates["clock_hz"])
        return link_schedule_seconds(frames, rates["bytes_per_s"])

    for name, rates in devices.items():
        other = plans["ECPIX-5" if name == "ULX3S" else "ULX3S"]
        assert seconds(plans[name], rates) < seconds(other, rates), name


def test_nothing_to_plan():
    rates = RATES["link-bound"]
    assert device_plan(20, 3, 5, table_entries=0, width=16, words=11, lanes=3, **rates) is None
    assert device_plan(20, 0, 5, table_entries=64, width=16, words=11, lanes=3, **rates) is None
    assert device_plan(20, 3, 0, table_entries=64, width=16, words=11, lanes=3, **rates) is None
    # 300 digits a job do not fit a frame's 256
    assert device_plan(300, 3, 5, table_entries=64, width=16, words=11, lanes=3, **rates) is None
    with pytest.raises(ValueError, match="at least one step, not 0"):
        device_plan(0, 3, 5, table_entries=64, width=16, words=11, lanes=3, **rates)


@pytest.mark.parametrize("steps, rows, bases", [(2, 5, 40), (9, 3, 53), (20, 7, 29), (33, 1, 61),
                                                (56, 4, 17)])
@pytest.mark.parametrize("rates", sorted(RATES))
def test_the_plan_is_the_best_of_every_candidate(steps, rows, bases, rates):
    """The bounds and the order device_plan searches in pass over no better plan: its plan's
    key is the least of every group size, groups a job and slot count priced in full."""
    from montpipe.device.model import link_schedule_seconds

    device = dict(lanes=3, words=11, width=16, clock_hz=RATES[rates]["clock_hz"])
    rate = RATES[rates]["bytes_per_s"]

    def key(plan):
        frames = multiexp_link_frames(plan, bases, rows, **device)
        return (link_schedule_seconds(frames, rate), plan.shape.entries,
                sum(f.out_bytes + f.in_bytes for f in frames),
                (plan.steps * (plan.tables + 1) - 1) / plan.chunk_bases)

    candidates = []
    for bits in range(1, 9):
        for tables in range(1, min(COMB_MAX_DIGITS // steps, 64 >> bits) + 1):
            chunks = -(-((bases + bits - 1) // bits) // tables)
            for slot_bits in range(0, 9 - bits):
                if tables << (bits + slot_bits) <= 64 and (1 << slot_bits) < 2 * chunks:
                    candidates.append(MultiexpPlan(bits, tables, steps, 1 << slot_bits))
    plan = device_plan(steps, rows, bases, table_entries=64, bytes_per_s=rate, **device)
    assert key(plan) == min(key(c) for c in candidates)
