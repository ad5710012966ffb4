"""The host's half of the comb: shapes within a table, tables and digits that give pow()."""

import random

import pytest

from montpipe.device.wire import COMB_MAX_DIGITS
from montpipe.driver.comb import CombShape, choose_shape, comb_digits, comb_table


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
