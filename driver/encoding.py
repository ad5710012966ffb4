"""Fixed-point encoding of ints and floats for Paillier, as python-paillier defines it.

A number is ``mantissa * BASE ** exponent`` with ``BASE = 16``; the mantissa is stored modulo
``n`` (values above ``n - max_int`` are negative, the band between is overflow). This is
python-paillier's ``EncodedNumber`` so that encodings and ciphertexts interoperate; the array
helpers at the bottom encode whole numpy arrays with one shared exponent for the vector API.
"""

from __future__ import annotations

import fractions
import math
import numbers
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .paillier import PaillierPublicKey

__all__ = [
    "EncodedNumber",
    "encode_array",
    "exponent_range",
    "natural_exponent",
    "signed_mantissa",
]

# how far (in base-16 digits) an array's shared exponent may reach below its largest element's
_EXACT_RANGE_DIGITS = 16


class EncodedNumber:
    """A float or int encoded for Paillier encryption (python-paillier compatible).

    A subclass may set another ``BASE`` (with its ``LOG2_BASE``), as python-paillier allows:
    encoding, decoding and exponent arithmetic then use that base.

    Parameters
    ----------
    public_key:
        The key whose ``n`` and ``max_int`` bound the encoding.
    encoding:
        The mantissa modulo ``n`` (``0 <= encoding < n``).
    exponent:
        Precision: the value is ``mantissa * BASE ** exponent``.
    """

    BASE = 16
    LOG2_BASE = math.log(BASE, 2)
    FLOAT_MANTISSA_BITS = sys.float_info.mant_dig

    def __init__(self, public_key: PaillierPublicKey, encoding: int, exponent: int) -> None:
        self.public_key = public_key
        self.encoding = encoding
        self.exponent = exponent

    def __repr__(self) -> str:
        return f"<EncodedNumber exponent={self.exponent}>"

    @classmethod
    def encode(
        cls,
        public_key: PaillierPublicKey,
        scalar,
        precision: float | None = None,
        max_exponent: int | None = None,
    ) -> EncodedNumber:
        """Encode an int or float; same rules and errors as python-paillier.

        Raises
        ------
        TypeError
            ``scalar`` is neither an integer nor a real number.
        ValueError
            The mantissa would exceed ``public_key.max_int`` in magnitude.
        """
        scalar = _as_python_number(scalar)
        if precision is None:
            prec_exponent = 0 if isinstance(scalar, int) else \
                natural_exponent(scalar, cls.LOG2_BASE)
        else:
            if not (isinstance(precision, numbers.Real) and precision > 0):
                raise ValueError(f"precision must be a positive number, not {precision!r}")
            prec_exponent = math.floor(math.log(precision, cls.BASE))
        exponent = prec_exponent if max_exponent is None else min(max_exponent, prec_exponent)
        int_rep = round(fractions.Fraction(scalar) * fractions.Fraction(cls.BASE) ** -exponent)
        if abs(int_rep) > public_key.max_int:
            # the message names the bound, not the value: it may be someone's secret
            raise ValueError(
                f"Integer needs to be within +/- max_int ({public_key.max_int.bit_length()} "
                f"bits for this key) at exponent {exponent}; the value is too large"
            )
        return cls(public_key, int_rep % public_key.n, exponent)

    def decode(self):
        """Return the int or float; ``OverflowError`` when the mantissa is in the overflow band."""
        if self.encoding >= self.public_key.n:
            raise ValueError("Attempted to decode corrupted number")
        mantissa = signed_mantissa(self.encoding, self.public_key.n, self.public_key.max_int)
        if mantissa is None:
            raise OverflowError("Overflow detected in decrypted number")
        return decode_mantissa(mantissa, self.exponent, self.BASE)

    def decrease_exponent_to(self, new_exp: int) -> EncodedNumber:
        """The same value at a lower exponent (more precision); raising it is a ``ValueError``."""
        if new_exp > self.exponent:
            raise ValueError(
                f"New exponent {new_exp} should be more negative than old exponent "
                f"{self.exponent}"
            )
        factor = pow(self.BASE, self.exponent - new_exp)
        new_enc = self.encoding * factor % self.public_key.n
        return self.__class__(self.public_key, new_enc, new_exp)


def _as_python_number(scalar):
    if isinstance(scalar, bool | int | float):
        return scalar
    if isinstance(scalar, numbers.Integral):
        return int(scalar)
    if isinstance(scalar, numbers.Real):
        return float(scalar)
    raise TypeError(f"Don't know the precision of type {type(scalar)}.")


def natural_exponent(value: float, log2_base: float = EncodedNumber.LOG2_BASE) -> int:
    """The exponent python-paillier picks for a float: keep all 53 mantissa bits."""
    bin_lsb_exponent = math.frexp(value)[1] - EncodedNumber.FLOAT_MANTISSA_BITS
    return math.floor(bin_lsb_exponent / log2_base)


#: float64's range: its smallest (subnormal) value is 2**-1074, its largest below 2**1024
_FLOAT_MIN_LOG2, _FLOAT_MAX_LOG2 = 1074, 1024


def exponent_range(n: int) -> tuple[int, int]:
    """The exponents (base 16) a ciphertext under modulus ``n`` can usefully carry.

    Below the lower end even the largest mantissa, ``n``, times ``16**exponent`` is below the
    smallest float64: every value decodes to zero. Above the upper end every nonzero value
    exceeds the largest float64 times the largest integer the key holds (``max_int``). Loaders
    refuse exponents outside the range: aligning two exponents costs an exponentiation by
    ``16**(difference)``, which a hostile document could otherwise make arbitrarily long.
    """
    bits = int(n).bit_length()
    return -((bits + _FLOAT_MIN_LOG2) // 4), (bits + _FLOAT_MAX_LOG2 + 3) // 4


def signed_mantissa(residue: int, n: int, max_int: int) -> int | None:
    """The signed mantissa a residue in ``[0, n)`` encodes, or ``None`` in the overflow band
    ``(max_int, n - max_int)``."""
    if residue <= max_int:
        return residue
    if residue >= n - max_int:
        return residue - n
    return None


def decode_mantissa(mantissa: int, exponent: int, base: int = EncodedNumber.BASE):
    """``mantissa * base ** exponent``: an int for ``exponent >= 0``, else a float."""
    if exponent >= 0:
        return mantissa * base**exponent
    try:
        return mantissa / base**-exponent
    except OverflowError as e:
        raise OverflowError("decoded result too large for a float") from e


def encode_array(
    public_key: PaillierPublicKey,
    values,
    precision: float | None = None,
    exponent: int | None = None,
    max_exponent: int | None = None,
    *,
    exact: bool = True,
) -> tuple[list[int], int, tuple[int, ...]]:
    """Encode an array with one shared exponent; return ``(signed mantissas, exponent, shape)``.

    The exponent is, in order of precedence: ``exponent``; ``floor(log16(precision))``;
    0 for integer arrays; otherwise the lowest exponent python-paillier would give any element,
    so every float round-trips exactly, but at most 16 hexadecimal digits (64 bits) below the
    largest element's: elements under ``2**-64`` times the largest keep that absolute precision
    (``2**-117`` of the largest) rather than all their bits, which bounds mantissa growth.
    ``exact=False`` (used for plaintext multipliers, whose bit length is the cost of a scalar
    product) keeps 53 bits of the largest element instead, as fixed point does.
    ``max_exponent`` caps the result. Mantissas are signed Python ints.

    Raises
    ------
    ValueError
        A value is NaN or infinite, or a mantissa exceeds ``max_int``.
    TypeError
        The array holds something other than numbers.
    """
    arr = np.asarray(values)
    shape = arr.shape
    flat = arr.reshape(-1)
    kind = flat.dtype.kind
    if kind == "O":
        items = [_as_python_number(v) for v in flat.tolist()]
        is_int = all(isinstance(v, int) for v in items)
        flat_f = None
    elif kind in "biu":
        items = [int(v) for v in flat.tolist()]
        is_int = True
        flat_f = None
    elif kind == "f":
        flat_f = flat.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(flat_f))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"values[{i}] is {flat_f[i]}; only finite numbers can be encrypted")
        items = None
        is_int = False
    else:
        raise TypeError(f"cannot encode an array of dtype {flat.dtype}; expected ints or floats")

    if exponent is None:
        if precision is not None:
            if not (isinstance(precision, numbers.Real) and precision > 0):
                raise ValueError(f"precision must be a positive number, not {precision!r}")
            exponent = math.floor(math.log(precision, EncodedNumber.BASE))
        elif is_int:
            exponent = 0
        else:
            mags = np.abs(flat_f) if flat_f is not None else np.abs(
                np.array([float(v) for v in items], dtype=np.float64))
            biggest = float(np.max(mags)) if mags.size else 0.0
            nonzero = mags[mags > 0]
            smallest = float(np.min(nonzero)) if nonzero.size and exact else biggest
            exponent = max(natural_exponent(smallest),
                           natural_exponent(biggest) - _EXACT_RANGE_DIGITS)
    if max_exponent is not None:
        exponent = min(exponent, max_exponent)

    if flat_f is not None and exponent <= 0 and -4 * exponent <= 900:
        # ldexp by a power of two is exact, and rint rounds half to even like Python's round()
        scaled = np.rint(np.ldexp(flat_f, -4 * exponent))
        if scaled.size and np.max(np.abs(scaled)) < 2.0**62:
            mantissas = scaled.astype(np.int64).tolist()
        else:
            mantissas = [int(v) for v in scaled.tolist()]
    else:
        if items is None:
            items = flat_f.tolist()
        scale = fractions.Fraction(EncodedNumber.BASE) ** -exponent
        mantissas = [
            v * (EncodedNumber.BASE**-exponent) if isinstance(v, int) and exponent <= 0
            else round(fractions.Fraction(v) * scale)
            for v in items
        ]
    max_int = public_key.max_int
    for i, mnt in enumerate(mantissas):
        if abs(mnt) > max_int:
            # the message names the element and the bound, not the value (it may be secret)
            raise ValueError(
                f"values[{i}] encodes at exponent {exponent} to a mantissa outside +/- max_int "
                f"({max_int.bit_length()} bits for this key); use a larger key or a coarser "
                f"precision"
            )
    return mantissas, exponent, shape
