"""Several small integers in one Paillier plaintext, and batch operations on such ciphertexts.

A Paillier plaintext has ``n.bit_length() - 1`` usable bits; a fixed-point gradient needs ~60.
Packing puts several non-negative integers side by side in one plaintext (*slots*, lowest
first), so one encryption, one homomorphic addition and one decryption serve all of them. Sums
of packed plaintexts stay packed as long as no slot carries into the next: a slot that holds
the sum of up to ``terms`` values in ``[0, max_value]`` needs
``slot_bits(max_value, terms) = (max_value * terms).bit_length()`` bits, and the whole plaintext
must stay below ``n`` (:meth:`SlotLayout.check_fits`).

The operations, each a few backend calls whatever the length:

* :func:`pack` / :func:`unpack` — integer columns to packed plaintexts and back (no crypto);
* :func:`group_sum` — the encrypted sums of a vector's elements by a plaintext group index
  (one :meth:`~montpipe.driver.backend.Backend.group_prodmod` call): a histogram;
* :func:`compress` / :func:`decompress` — after the sums are formed, shift ``k`` ciphertexts into
  one (``c_0 · c_1^(2^s) · c_2^(2^(2s)) ⋯``, by Horner's rule: ``k - 1`` batched powers by
  ``2^s``), so that the key holder decrypts ``1/k`` as many ciphertexts.

Packed vectors are :class:`~montpipe.driver.vector.EncryptedVector` s at exponent 0 whose
plaintexts are the packed integers (``raw_encrypt_batch`` / ``raw_decrypt_batch``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .paillier import PaillierPublicKey
from .vector import EncryptedVector

__all__ = ["SlotLayout", "compress", "decompress", "group_sum", "pack", "slot_bits",
           "slots_per_plaintext", "unpack"]


def slot_bits(max_value: int, terms: int) -> int:
    """Bits a slot needs to hold a sum of up to ``terms`` values in ``[0, max_value]``."""
    if int(max_value) < 0 or int(terms) < 1:
        raise ValueError(f"need max_value >= 0 and terms >= 1, not {max_value} and {terms}")
    return max(1, (int(max_value) * int(terms)).bit_length())


def slots_per_plaintext(public_key: PaillierPublicKey, bits: int) -> int:
    """How many ``bits``-wide slots fit below ``n`` (``(n.bit_length() - 1) // bits``)."""
    if int(bits) < 1:
        raise ValueError(f"slot width must be at least 1 bit, not {bits}")
    return (public_key.n.bit_length() - 1) // int(bits)


class SlotLayout:
    """Fields of fixed widths in one integer, the first field in the lowest bits.

    Parameters
    ----------
    widths:
        The width of each field in bits (each at least 1).
    """

    def __init__(self, widths: Sequence[int]) -> None:
        widths = [int(w) for w in widths]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"field widths must be a non-empty list of positive ints, "
                             f"not {widths}")
        self.widths = widths
        self.shifts = [sum(widths[:i]) for i in range(len(widths))]
        #: the width of the whole packed integer
        self.bits = sum(widths)

    def __repr__(self) -> str:
        return f"SlotLayout({self.widths})"

    def check_fits(self, public_key: PaillierPublicKey) -> None:
        """``ValueError`` unless a full packed integer is below ``n`` (no wrap-around)."""
        if self.bits > public_key.n.bit_length() - 1:
            raise ValueError(f"a packed plaintext needs {self.bits} bits but this "
                             f"{public_key.n.bit_length()}-bit key holds "
                             f"{public_key.n.bit_length() - 1}; use a larger key or fewer bits")

    def pack(self, columns: Sequence) -> list[int]:
        """One integer per row from one column per field (see :func:`pack`)."""
        return pack(columns, self.widths)

    def unpack(self, values: Sequence[int]) -> list[np.ndarray]:
        """The columns back from packed integers (see :func:`unpack`)."""
        return unpack(values, self.widths)


def pack(columns: Sequence, widths: Sequence[int]) -> list[int]:
    """``sum_f columns[f][i] << (widths[0] + ... + widths[f-1])`` for every row ``i``.

    Every entry must be an integer in ``[0, 2**widths[f])``; a ``ValueError`` names the first
    that is not.
    """
    widths = [int(w) for w in widths]
    if len(columns) != len(widths):
        raise ValueError(f"got {len(columns)} columns for {len(widths)} field widths")
    cols = [np.asarray(c) for c in columns]
    length = len(cols[0]) if cols else 0
    out = [0] * length
    shift = 0
    for f, (col, w) in enumerate(zip(cols, widths, strict=True)):
        if col.shape != (length,):
            raise ValueError(f"column {f} has shape {col.shape}, expected ({length},)")
        if length and col.dtype.kind not in "iuO":
            raise ValueError(f"column {f} holds {col.dtype}, not integers")
        limit = 1 << w
        for i, v in enumerate(col.tolist()):
            if not isinstance(v, int) or not 0 <= v < limit:
                raise ValueError(f"column {f}, row {i}: {v!r} is outside the field's range "
                                 f"[0, 2**{w})")
            out[i] |= v << shift
        shift += w
    return out


def unpack(values: Sequence[int], widths: Sequence[int]) -> list[np.ndarray]:
    """The fields of packed integers, one column (numpy object array of ints) per field.

    A value wider than the layout (a carry out of the top field: the bound was wrong) is a
    ``ValueError``.
    """
    widths = [int(w) for w in widths]
    total = sum(widths)
    cols = [np.empty(len(values), dtype=object) for _ in widths]
    for i, v in enumerate(values):
        v = int(v)
        if v < 0 or v >> total:
            raise ValueError(f"packed value {i} does not fit its {total}-bit layout "
                             f"(a slot overflowed)")
        for f, w in enumerate(widths):
            cols[f][i] = v & ((1 << w) - 1)
            v >>= w
    return cols


def group_sum(vector: EncryptedVector, groups, n_groups: int) -> EncryptedVector:
    """``out[g] = sum(vector[i] for i with groups[i] == g)`` for ``g < n_groups``, encrypted.

    ``groups[i] == -1`` leaves element ``i`` out; an empty group sums to an (unobfuscated)
    encryption of 0. One backend call (:meth:`~montpipe.driver.backend.Backend.group_prodmod`)
    whatever the number of groups; the result keeps the vector's exponent.
    """
    if not isinstance(vector, EncryptedVector):
        raise TypeError(f"expected an EncryptedVector, not {type(vector).__name__}")
    pk = vector.public_key
    cts = pk.backend.group_prodmod(vector.ciphertexts(be_secure=False), groups, n_groups,
                                   pk.nsquare)
    return EncryptedVector(pk, cts, vector.exponent)


def compress(vector: EncryptedVector, bits: int, per_ciphertext: int) -> EncryptedVector:
    """Shift ``per_ciphertext`` consecutive elements into one ciphertext, ``bits`` apart.

    Element ``j * k + i`` lands in slot ``i`` (bits ``i*bits`` up) of output ``j`` (``k`` =
    ``per_ciphertext``; the last output may hold fewer). ``k * bits`` must stay below ``n``'s
    width, which is checked here. Every plaintext must be an integer in ``[0, 2**bits)`` at
    exponent 0, which nobody can check on ciphertexts: that bound is the caller's, and a value
    beyond it corrupts the slot above it (:func:`decompress` notices only a carry out of the
    top slot).
    """
    if not isinstance(vector, EncryptedVector):
        raise TypeError(f"expected an EncryptedVector, not {type(vector).__name__}")
    if vector.exponent != 0:
        raise ValueError(f"compress takes integer plaintexts (exponent 0), not exponent "
                         f"{vector.exponent}")
    pk = vector.public_key
    k = int(per_ciphertext)
    if k < 1 or k > slots_per_plaintext(pk, bits):
        raise ValueError(f"{per_ciphertext} slots of {bits} bits do not fit this "
                         f"{pk.n.bit_length()}-bit key (at most "
                         f"{slots_per_plaintext(pk, bits)})")
    cts = vector.ciphertexts(be_secure=False)
    outputs = -(-len(cts) // k)
    backend, nsq = pk.backend, pk.nsquare
    acc: list[int | None] = [None] * outputs
    shift = 1 << int(bits)
    for i in reversed(range(k)):   # Horner: the highest slot first
        members = [j for j in range(outputs) if j * k + i < len(cts)]
        started = [j for j in members if acc[j] is not None]
        if started:
            shifted = backend.powmod([acc[j] for j in started], shift, nsq)
            fresh = backend.mulmod(shifted, [cts[j * k + i] for j in started], nsq)
            for j, c in zip(started, fresh, strict=True):
                acc[j] = c
        for j in members:
            if acc[j] is None:
                acc[j] = cts[j * k + i]
    return EncryptedVector(pk, [int(c) for c in acc], 0)


def decompress(plaintexts: Sequence[int], bits: int, per_ciphertext: int, count: int) -> list[int]:
    """The ``count`` slot values from decrypted :func:`compress` outputs, in element order."""
    k, bits = int(per_ciphertext), int(bits)
    if k < 1:
        raise ValueError(f"per_ciphertext must be at least 1, not {per_ciphertext}")
    if len(plaintexts) != -(-int(count) // k):
        raise ValueError(f"{len(plaintexts)} plaintexts cannot hold {count} values at "
                         f"{k} a plaintext")
    mask = (1 << bits) - 1
    out = []
    for j, v in enumerate(plaintexts):
        v = int(v)
        held = min(k, count - j * k)
        if v >> (held * bits):
            raise ValueError(f"compressed plaintext {j} is wider than its {held} slots of "
                             f"{bits} bits (a slot overflowed)")
        for _ in range(held):
            out.append(v & mask)
            v >>= bits
    return out
