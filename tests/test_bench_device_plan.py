"""The device plan's product counts are those of the algorithms run: a Lim–Lee comb and a comb
over groups of bases, computed here with every product counted, against pow()."""

import random

import pytest

from montpipe.bench.device_plan import (
    comb_fixed_base_products,
    comb_fixed_base_squarings,
    comb_multiexp_products,
)


class Counter:
    def __init__(self, m):
        self.m, self.products, self.squarings = m, 0, 0

    def mul(self, a, b):
        self.products += 1
        return a * b % self.m

    def square(self, a):
        self.squarings += 1
        return self.mul(a, a)


def comb_fixed_base(h_s, alpha, e_bits, h, v, m, c):
    """h_s^α by v comb tables of 2^h entries, constant time: a step squares (not the first)
    and multiplies by one entry of each table, the first product of all a load."""
    a = -(-e_bits // h)                     # columns
    b = -(-a // v)                          # steps
    # table t, entry d: the product over bits j of d of h_s^(2^((j·a) + t·b)), column t·b + i
    tables = []
    for t in range(v):
        entries = []
        for d in range(1 << h):
            x = 1
            for j in range(h):
                if d >> j & 1:
                    x = x * pow(h_s, 1 << (j * a + t * b), m) % m
            entries.append(x)
        tables.append(entries)
    acc = None
    for i in range(b - 1, -1, -1):
        if acc is not None:
            acc = c.square(acc)
        for t in range(v):
            col = t * b + i
            d = sum(((alpha >> (j * a + col)) & 1) << j for j in range(h)) if col < a else 0
            acc = tables[t][d] if acc is None else c.mul(acc, tables[t][d])
    return c.mul(acc, 1)                    # conversion out


def subset_tables(bases, h, c):
    """Per group of h bases, the products of its subsets: entry d is entry d without its lowest
    bit times that bit's base (the singletons are the bases themselves)."""
    tables = []
    for i in range(0, len(bases), h):
        g = bases[i:i + h]
        t = [1] * (1 << len(g))
        for d in range(1, 1 << len(g)):
            low = d & -d
            t[d] = g[low.bit_length() - 1] if d == low else c.mul(t[d ^ low], t[low])
        tables.append(t)
    return tables


def comb_row(tables, exps, e_bits, h, v, c):
    """One row: v groups' tables at a time, e_bits steps a chunk, a product joining chunks."""
    gexps = [exps[i:i + h] for i in range(0, len(exps), h)]
    row = None
    for start in range(0, len(tables), v):
        acc = None
        for i in range(e_bits - 1, -1, -1):
            if acc is not None:
                acc = c.square(acc)
            for g in range(start, min(start + v, len(tables))):
                d = sum(((e >> i) & 1) << j for j, e in enumerate(gexps[g]))
                acc = tables[g][d] if acc is None else c.mul(acc, tables[g][d])
        row = acc if row is None else c.mul(row, acc)
    return c.mul(row, 1)


@pytest.mark.parametrize("e_bits, h, v", [(64, 8, 1), (64, 6, 4), (100, 5, 3), (1024, 6, 4)])
def test_fixed_base_comb_counts(e_bits, h, v):
    rng = random.Random(e_bits + h)
    m = rng.getrandbits(128) | 1
    h_s = rng.randrange(m)
    for alpha in (0, 1, (1 << e_bits) - 1, rng.getrandbits(e_bits)):
        c = Counter(m)
        assert comb_fixed_base(h_s, alpha, e_bits, h, v, m, c) == pow(h_s, alpha, m)
        assert c.products == comb_fixed_base_products(e_bits, h, v)
        assert c.squarings == comb_fixed_base_squarings(e_bits, h, v)


@pytest.mark.parametrize("bases, rows, e_bits, h, v", [(13, 3, 9, 3, 2), (24, 2, 12, 6, 3),
                                                       (7, 1, 5, 6, 1)])
def test_multiexp_comb_counts(bases, rows, e_bits, h, v):
    rng = random.Random(bases)
    m = rng.getrandbits(100) | 1
    cs = [rng.randrange(1, m) for _ in range(bases)]
    c = Counter(m)
    tables = subset_tables(cs, h, c)
    for _ in range(rows):
        es = [rng.getrandbits(e_bits) for _ in range(bases)]
        want = 1
        for b, e in zip(cs, es, strict=True):
            want = want * pow(b, e, m) % m
        assert comb_row(tables, es, e_bits, h, v, c) == want
    products, entries = comb_multiexp_products(bases, rows, e_bits, h, v)
    assert entries == v * (1 << h)
    assert c.products == products
