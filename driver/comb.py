"""The host's half of the device's comb (``docs/protocol.md``, "The comb"): the shape that fits
a build's table, the table of a base, and an exponent's digits.

A comb of ``v`` tables of ``2^h`` entries over ``b`` steps covers exponents of up to
``h·a`` bits, ``a = b·v`` columns: entry ``d`` of table ``t`` is the product of
``g^(2^(j·a + t·b))`` over the bits ``j`` of ``d``, and a power takes ``b·(v + 1) − 1``
Montgomery products on the device whatever the exponent (``docs/gateware-plan.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gmpy2

from ..device.wire import COMB_MAX_DIGITS

__all__ = ["CombShape", "choose_shape", "comb_digits", "comb_table"]


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
