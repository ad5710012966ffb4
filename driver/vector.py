"""Encrypted vectors over numpy: the batch API for real workloads.

An :class:`EncryptedVector` is a 1-D sequence of Paillier ciphertexts under one key with one
shared exponent (fixed point), so element-wise operations need no per-element exponent
alignment. Every modular exponentiation an operation needs goes to the key's backend in one
call; plaintext-matrix × encrypted-vector (``X.T @ enc``, the hot path of vertical logistic
regression) is one multi-exponentiation (Pippenger, negative entries through one inversion per
output) rather than a full modular exponentiation per matrix element.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence

import numpy as np

from . import serialization
from .encoding import EncodedNumber, decode_mantissa, encode_array, signed_mantissa
from .paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey

__all__ = ["EncryptedVector"]


class EncryptedVector:
    """Paillier ciphertexts of a 1-D array, sharing one key and one exponent.

    Build one with :meth:`PaillierPublicKey.encrypt_vector` (or :meth:`encrypt`), and decrypt
    with :meth:`PaillierPrivateKey.decrypt_vector`. Supported: ``+``/``-`` with encrypted or
    plaintext vectors and scalars, ``*`` and ``/`` by plaintext scalars and vectors, unary
    ``-``, :meth:`sum`, :meth:`dot`, ``X @ v`` for a plaintext matrix ``X``, indexing and
    slicing, :func:`len` and iteration (as :class:`EncryptedNumber`).

    Results of arithmetic are not obfuscated; :meth:`ciphertexts` obfuscates (in one batch)
    before they leave unless ``be_secure=False``, like python-paillier's ``ciphertext()``.
    """

    # numpy must hand `X @ v`, `a + v`, `a * v` to our reflected operators
    __array_ufunc__ = None

    def __init__(
        self,
        public_key: PaillierPublicKey,
        ciphertexts: Sequence[int],
        exponent: int = 0,
        *,
        obfuscated: bool = False,
    ) -> None:
        if not isinstance(public_key, PaillierPublicKey):
            raise TypeError(f"public_key must be a PaillierPublicKey, not {type(public_key)}")
        if not isinstance(exponent, numbers.Integral):
            raise TypeError(f"exponent must be an int, not {type(exponent).__name__}")
        self.public_key = public_key
        self._cts = [int(c) for c in ciphertexts]
        self.exponent = int(exponent)
        self._obfuscated = obfuscated

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def encrypt(
        cls,
        public_key: PaillierPublicKey,
        values,
        precision: float | None = None,
        *,
        exponent: int | None = None,
        mode: str | None = None,
    ) -> EncryptedVector:
        """Encrypt an array: one shared exponent, random factors in one backend call."""
        mantissas, exp, _shape = encode_array(public_key, values, precision, exponent)
        n = public_key.n
        cts = public_key.raw_encrypt_batch([m % n for m in mantissas], mode=mode)
        return cls(public_key, cts, exp, obfuscated=True)

    @classmethod
    def from_encrypted_numbers(cls, numbers_: Sequence[EncryptedNumber]) -> EncryptedVector:
        """Gather :class:`EncryptedNumber` s (one key) into a vector at their lowest exponent."""
        numbers_ = list(numbers_)
        if not numbers_:
            raise ValueError("need at least one EncryptedNumber to infer the key")
        pk = numbers_[0].public_key
        for i, x in enumerate(numbers_):
            if not isinstance(x, EncryptedNumber):
                raise TypeError(f"item {i} is a {type(x).__name__}, not an EncryptedNumber")
            if x.public_key != pk:
                raise ValueError(f"item {i} was encrypted under a different public key")
        low = min(x.exponent for x in numbers_)
        cts = [x.ciphertext(be_secure=False) for x in numbers_]
        shifts = [x.exponent - low for x in numbers_]
        if any(shifts):
            exps = [EncodedNumber.BASE**s for s in shifts]
            cts = pk.backend.powmod(cts, exps, pk.nsquare)
        return cls(pk, cts, low, obfuscated=all(x.is_obfuscated for x in numbers_))

    def to_encrypted_numbers(self) -> list[EncryptedNumber]:
        return [EncryptedNumber(self.public_key, c, self.exponent) for c in self._cts]

    # -- container protocol -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._cts)

    @property
    def shape(self) -> tuple[int]:
        return (len(self._cts),)

    #: one dimension, like the arrays it combines with
    ndim = 1

    def __iter__(self) -> Iterator[EncryptedNumber]:
        return iter(self.to_encrypted_numbers())

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral):
            return EncryptedNumber(self.public_key, self._cts[index], self.exponent)
        if isinstance(index, slice):
            return self._like(self._cts[index], self.exponent, self._obfuscated)
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(
                    f"boolean index has shape {idx.shape}, expected ({len(self)},)"
                )
            idx = np.flatnonzero(idx)
        if idx.dtype.kind not in "iu":
            raise IndexError(f"cannot index an EncryptedVector with {index!r}")
        return self._like([self._cts[int(i)] for i in idx.reshape(-1)], self.exponent,
                          self._obfuscated)

    def __repr__(self) -> str:
        return (
            f"<EncryptedVector len={len(self)} exponent={self.exponent} "
            f"key={self.public_key.key_id}>"
        )

    def _like(self, cts, exponent, obfuscated=False) -> EncryptedVector:
        # cts come from this vector or a backend: ints already, so skip the constructor's checks
        out = EncryptedVector.__new__(EncryptedVector)
        out.public_key, out._cts = self.public_key, list(cts)
        out.exponent, out._obfuscated = int(exponent), obfuscated
        return out

    @staticmethod
    def concatenate(vectors: Sequence[EncryptedVector]) -> EncryptedVector:
        """Join vectors under one key (aligned to the lowest exponent)."""
        vectors = list(vectors)
        if not vectors:
            raise ValueError("need at least one EncryptedVector")
        low = min(v.exponent for v in vectors)
        pk = vectors[0].public_key
        cts: list[int] = []
        for i, v in enumerate(vectors):
            if v.public_key != pk:
                raise ValueError(f"vector {i} was encrypted under a different public key")
            cts.extend(v.decrease_exponent_to(low)._cts)
        return EncryptedVector(pk, cts, low)

    # -- ciphertexts ------------------------------------------------------------------------

    def ciphertexts(self, be_secure: bool = True) -> list[int]:
        """The raw ciphertexts; obfuscated first (one batch) unless ``be_secure=False``."""
        if be_secure and not self._obfuscated:
            self.obfuscate()
        return list(self._cts)

    def obfuscate(self) -> None:
        """Multiply every element by a fresh random factor, in one backend call."""
        pk = self.public_key
        factors = pk.random_factors(len(self._cts))
        self._cts = pk.backend.mulmod(self._cts, factors, pk.nsquare)
        self._obfuscated = True

    @property
    def is_obfuscated(self) -> bool:
        return self._obfuscated

    def decrease_exponent_to(self, new_exp: int) -> EncryptedVector:
        """The same values at a lower exponent: one batch of powmods by ``16**(old-new)``."""
        if new_exp > self.exponent:
            raise ValueError(
                f"New exponent {new_exp} should be more negative than old exponent "
                f"{self.exponent}"
            )
        if new_exp == self.exponent:
            return self
        pk = self.public_key
        factor = EncodedNumber.BASE ** (self.exponent - new_exp)
        return self._like(pk.backend.powmod(self._cts, factor, pk.nsquare), new_exp)

    # -- decryption -------------------------------------------------------------------------

    def decrypt(self, private_key: PaillierPrivateKey, *, dtype=None) -> np.ndarray:
        """Decrypt to a numpy array: float64 for negative exponents, int64 (or object for
        very large values) otherwise; ``dtype`` overrides."""
        if not isinstance(private_key, PaillierPrivateKey):
            raise TypeError(f"Expected a PaillierPrivateKey, not {type(private_key).__name__}")
        pk = self.public_key
        if private_key.public_key != pk:
            raise ValueError(
                f"this vector was encrypted under key {pk.key_id}, but the private key is for "
                f"{private_key.public_key.key_id}"
            )
        plain = private_key.raw_decrypt_batch(self._cts)
        mantissas = []
        for i, x in enumerate(plain):
            mantissa = signed_mantissa(x, pk.n, pk.max_int)
            if mantissa is None:
                raise OverflowError(f"Overflow detected in decrypted element {i}")
            mantissas.append(mantissa)
        values = [decode_mantissa(m, self.exponent) for m in mantissas]
        if dtype is not None:
            return np.array(values, dtype=dtype)
        if self.exponent < 0:
            return np.array(values, dtype=np.float64)
        if all(-(2**63) <= v < 2**63 for v in values):
            return np.array(values, dtype=np.int64)
        return np.array(values, dtype=object)

    # -- arithmetic -------------------------------------------------------------------------

    def _check_peer(self, other: EncryptedVector) -> None:
        if other.public_key != self.public_key:
            raise ValueError("Attempted to add numbers encrypted against different public keys!")
        if len(other) != len(self):
            raise ValueError(
                f"cannot combine encrypted vectors of lengths {len(self)} and {len(other)}"
            )

    def _plain_operand(self, other, max_exponent=None, exact=True):
        """Encode a plaintext scalar or vector as (mantissas of len(self), exponent)."""
        arr = np.asarray(other)
        if arr.ndim == 0:
            arr = np.full(len(self), arr.item(), dtype=arr.dtype)
        elif arr.ndim != 1 or arr.shape[0] != len(self):
            raise ValueError(
                f"plaintext operand has shape {arr.shape}, expected ({len(self)},) or a scalar"
            )
        mantissas, exp, _ = encode_array(self.public_key, arr, max_exponent=max_exponent,
                                         exact=exact)
        return mantissas, exp

    def __add__(self, other):
        pk = self.public_key
        if isinstance(other, EncryptedVector):
            self._check_peer(other)
            low = min(self.exponent, other.exponent)
            a, b = self.decrease_exponent_to(low), other.decrease_exponent_to(low)
            return self._like(pk.backend.mulmod(a._cts, b._cts, pk.nsquare), low)
        if isinstance(other, EncryptedNumber):
            if other.public_key != pk:
                raise ValueError(
                    "Attempted to add numbers encrypted against different public keys!"
                )
            low = min(self.exponent, other.exponent)
            a = self.decrease_exponent_to(low)
            b = other.decrease_exponent_to(low) if other.exponent > low else other
            c = b.ciphertext(be_secure=False)
            return self._like(pk.backend.mulmod(a._cts, [c] * len(a), pk.nsquare), low)
        if isinstance(other, EncodedNumber):
            if other.public_key != pk:
                raise ValueError(
                    "Attempted to add numbers encoded against different public keys!"
                )
            other = other.decode()
        mantissas, exp = self._plain_operand(other, max_exponent=self.exponent)
        a = self.decrease_exponent_to(exp)
        return self._like(pk.backend.mulmod(a._cts, pk.nudes(mantissas), pk.nsquare), exp)

    def __radd__(self, other):
        return self.__add__(other)

    def add_raw(self, residues: Sequence[int]) -> EncryptedVector:
        """Add raw plaintexts (integers taken modulo ``n``) at this vector's exponent, exactly.

        This is one-time-pad masking: with each residue uniform in ``[0, n)`` the decryption
        is uniform too, and subtracting the residue modulo ``n`` afterwards restores the value.
        """
        residues = list(residues)
        if len(residues) != len(self):
            raise ValueError(f"got {len(residues)} residues for a vector of length {len(self)}")
        pk = self.public_key
        return self._like(pk.backend.mulmod(self._cts, pk.nudes(residues), pk.nsquare),
                          self.exponent)

    def __neg__(self):
        pk = self.public_key
        return self._like(pk.backend.powmod(self._cts, -1, pk.nsquare), self.exponent)

    def __sub__(self, other):
        if isinstance(other, EncryptedVector | EncryptedNumber):
            return self + (-other)
        if isinstance(other, EncodedNumber):
            other = other.decode()
        arr = np.asarray(other)
        if arr.dtype.kind in "ub":
            arr = arr.astype(object)
        return self + (-arr)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, EncryptedVector | EncryptedNumber):
            raise NotImplementedError(
                "Paillier cannot multiply two ciphertexts; multiply by a plaintext instead"
            )
        if isinstance(other, EncodedNumber):
            mantissas, exp = [_signed(other)] * len(self), other.exponent
        else:
            mantissas, exp = self._plain_operand(other, exact=False)
        pk = self.public_key
        products = pk.backend.powmod(self._cts, mantissas, pk.nsquare)
        return self._like(products, self.exponent + exp)

    def __rmul__(self, other):
        return self.__mul__(other)

    def __truediv__(self, other):
        arr = np.asarray(other)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot divide an EncryptedVector by {type(other).__name__}")
        return self.__mul__(1.0 / arr.astype(np.float64))

    def sum(self) -> EncryptedNumber:
        """The encrypted sum of all elements (one product, no exponentiation)."""
        pk = self.public_key
        return EncryptedNumber(pk, pk.backend.prodmod(self._cts, pk.nsquare), self.exponent)

    def dot(self, weights, precision: float | None = None) -> EncryptedNumber:
        """``sum_i weights[i] * self[i]`` as one multi-exponentiation."""
        w = np.asarray(weights)
        if w.shape != (len(self),):
            raise ValueError(f"weights have shape {w.shape}, expected ({len(self)},)")
        out = self.matmul_left(w.reshape(1, -1), precision=precision)
        return out[0]

    def matmul_left(self, matrix, precision: float | None = None) -> EncryptedVector:
        """``matrix @ self`` for a plaintext matrix of shape ``(k, len(self))``.

        The matrix is encoded with one shared exponent (53 bits of its largest entry, or
        ``precision``), and all ``k`` outputs come from one multi-exponentiation call.
        """
        X = np.asarray(matrix)
        if X.ndim != 2 or X.shape[1] != len(self):
            raise ValueError(
                f"cannot multiply a matrix of shape {X.shape} by an encrypted vector of "
                f"length {len(self)}; expected shape (k, {len(self)})"
            )
        pk = self.public_key
        mantissas, exp, _ = encode_array(pk, X, precision, exact=False)
        k, m = X.shape
        rows = [mantissas[r * m:(r + 1) * m] for r in range(k)]
        try:
            cts = pk.backend.multiexp(self._cts, rows, pk.nsquare)
        except ValueError as e:
            raise ValueError(
                f"{e}; some element is not a valid ciphertext for this key"
            ) from None
        return self._like(cts, self.exponent + exp)

    def __rmatmul__(self, matrix):
        if isinstance(matrix, EncryptedVector):
            raise NotImplementedError("Paillier cannot multiply two ciphertexts")
        X = np.asarray(matrix)
        if X.ndim == 1:
            return self.dot(X)
        return self.matmul_left(X)

    def __matmul__(self, other):
        if isinstance(other, EncryptedVector):
            raise NotImplementedError("Paillier cannot multiply two ciphertexts")
        Y = np.asarray(other)
        if Y.ndim == 1:
            return self.dot(Y)
        return self.matmul_left(Y.T)

    # -- serialization ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The documented JSON form; ciphertexts are obfuscated first."""
        pk = self.public_key
        return serialization.dumps(serialization.encrypted_vector_to_dict(
            pk.key_id, self.exponent, self.ciphertexts(True)))

    @classmethod
    def from_json(cls, text: str, public_key: PaillierPublicKey) -> EncryptedVector:
        """Load under ``public_key``; bad input is a ``ValueError`` naming the element (an
        exponent outside :func:`~montpipe.driver.encoding.exponent_range` too)."""
        cts, exponent = serialization.encrypted_vector_fields(
            serialization.loads(text), public_key.n, public_key.key_id)
        return cls(public_key, cts, exponent, obfuscated=True)


def _signed(encoded: EncodedNumber) -> int:
    n, max_int = encoded.public_key.n, encoded.public_key.max_int
    x = encoded.encoding
    return x - n if x >= n - max_int else x

