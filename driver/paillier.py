"""Paillier encryption with python-paillier's API, over a pluggable batch backend.

``from montpipe.driver import paillier`` works wherever code does ``from phe import paillier``:
the same classes, methods, attributes, encodings and exception types, and ciphertexts that are
bit-for-bit python-paillier's for the same ``r_value``. What differs:

* Every modular exponentiation goes to the key's backend (:mod:`montpipe.driver.backend`), and
  batch methods (``encrypt_vector``, ``decrypt_vector``, :class:`EncryptedVector`) send whole
  batches in one call.
* Encryption without ``r_value`` is DJN-style by default (Damgård–Jurik–Nielsen, as in Intel's
  IPCL and SecretFlow HEU): the random factor ``r ** n`` is replaced by ``h_s ** alpha`` with
  ``h_s = (-x**2) ** n mod n**2`` for one random ``x`` per key and a fresh random ``alpha`` of
  ``ceil(k/2)`` bits per ciphertext. The result is an ordinary Paillier ciphertext (any Paillier
  implementation decrypts it), but its randomness comes from a subgroup; its semantic security
  rests on the DJN assumption that ``h_s ** alpha`` with short ``alpha`` is indistinguishable
  from a random ``n``-th residue. ``mode="standard"`` on the key (or on a call) gives
  python-paillier's ``r ** n`` with ``r`` uniform in ``[1, n)``.
* The default key length is 2048 bits; shorter keys work and raise a :class:`SecurityWarning`.
* Out-of-range plaintexts and ciphertexts are a ``ValueError`` instead of a silently wrong
  result; messages name the bound, never the plaintext.
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import threading
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import gmpy2

from . import serialization
from .backend import Backend, get_backend
from .encoding import EncodedNumber

if TYPE_CHECKING:  # at run time module __getattr__ (bottom) imports it on first use
    from .vector import EncryptedVector

__all__ = [
    "DEFAULT_KEYSIZE",
    "EncodedNumber",
    "EncryptedNumber",
    "EncryptedVector",
    "PaillierPrivateKey",
    "PaillierPrivateKeyring",
    "PaillierPublicKey",
    "SecurityWarning",
    "check_djn_base",
    "check_modulus",
    "generate_paillier_keypair",
]

DEFAULT_KEYSIZE = 2048
_MODES = ("djn", "standard")


class SecurityWarning(UserWarning):
    """A key or parameter is weaker than current guidance (2048-bit moduli)."""


# -- checks of key material from elsewhere ------------------------------------------------

#: a loaded modulus must have no prime factor below this (trial division by their product)
SMALL_FACTOR_BOUND = 1 << 15
#: a DJN base whose order is at most this is refused: its powers take that few values
SMALL_ORDER_BOUND = 1024
_SMALL_PRIMES = int(gmpy2.primorial(SMALL_FACTOR_BOUND))


def check_modulus(n: int, where: str = "n") -> int:
    """Check a modulus that came from elsewhere (a document) for what makes it no Paillier
    modulus; return it.

    Raises ``ValueError`` for an ``n`` that is even, under 32 bits, prime, a perfect power
    (``p**2``) or has a prime factor below :data:`SMALL_FACTOR_BOUND`, and warns
    (:class:`SecurityWarning`) below 2048 bits.
    """
    if n % 2 == 0 or n.bit_length() < 32:
        raise ValueError(f"{where} must be an odd composite modulus of at least 32 bits, "
                         f"not a {n.bit_length()}-bit {'even' if n % 2 == 0 else 'odd'} number")
    if gmpy2.is_prime(n, 25):
        raise ValueError(f"{where} is prime; a Paillier modulus is the product of two primes")
    if gmpy2.is_power(n):
        raise ValueError(f"{where} is a perfect power (p**2, say); a Paillier modulus is the "
                         f"product of two different primes")
    if math.gcd(n, _SMALL_PRIMES) != 1:
        raise ValueError(f"{where} has a prime factor below {SMALL_FACTOR_BOUND}; a Paillier "
                         f"modulus is the product of two large primes")
    if n.bit_length() < 2048:
        warnings.warn(
            f"{where} is a {n.bit_length()}-bit Paillier modulus, below the 2048 bits current "
            "guidance asks for; use it for tests and compatibility only",
            SecurityWarning,
            stacklevel=3,
        )
    return n


def check_djn_base(n: int, hs: int, where: str = "hs") -> int:
    """Check a DJN base ``h_s`` for what makes it useless as a source of randomness; return it.

    Raises ``ValueError`` unless ``1 < hs < n**2``, ``hs`` is coprime to ``n``, ``hs`` is not
    ``±1`` modulo ``n`` (then its powers are ``±(1+n)**k``: encryptions of ``k`` with no
    randomness; this covers ``1``, ``-1`` and ``n + 1``) and its order exceeds
    :data:`SMALL_ORDER_BOUND`. Whether ``hs`` is an ``n``-th residue needs the factors: the
    private key checks that.
    """
    nsquare = n * n
    if not 1 < hs < nsquare or math.gcd(hs, n) != 1:
        raise ValueError(f"{where} must be in (1, n**2) and coprime to n")
    if hs % n in (1, n - 1):
        raise ValueError(f"{where} is ±1 modulo n, so its powers are ±(1+n)**k: ciphertexts "
                         f"built with it carry no randomness")
    x = gmpy2.mpz(hs)
    acc = x
    for k in range(2, SMALL_ORDER_BOUND + 1):
        acc = acc * x % nsquare
        if acc == 1:
            raise ValueError(f"{where} has order {k} modulo n**2, so ciphertexts built with it "
                             f"take only {k} random factors; expected a base of large order")
    return hs


# -- key generation -----------------------------------------------------------------------

def _random_prime(bits: int) -> int:
    """A uniformly random prime of exactly ``bits`` bits with its top two bits set, from the
    OS CSPRNG (so the product of two has exactly twice the bits)."""
    top = (1 << (bits - 1)) | (1 << (bits - 2))
    while True:
        candidate = secrets.randbits(bits) | top | 1
        if gmpy2.is_prime(candidate, 50):
            return candidate


def generate_paillier_keypair(
    private_keyring: PaillierPrivateKeyring | None = None,
    n_length: int = DEFAULT_KEYSIZE,
    *,
    backend: str | Backend | None = None,
    mode: str = "djn",
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Return a new ``(PaillierPublicKey, PaillierPrivateKey)``.

    ``p`` and ``q`` are distinct primes from the OS CSPRNG, of equal length, and ``n = p*q``
    has exactly ``n_length`` bits. Keys below 2048 bits work but warn (:class:`SecurityWarning`).
    The private key is added to ``private_keyring`` when one is given.
    """
    if not isinstance(n_length, int) or isinstance(n_length, bool):
        raise TypeError(f"n_length must be an int, not {type(n_length).__name__}")
    if n_length < 32 or n_length % 2:
        raise ValueError(f"n_length must be an even number of bits >= 32, not {n_length}")
    if n_length < 2048:
        warnings.warn(
            f"a {n_length}-bit Paillier key is below the 2048 bits current guidance asks for; "
            "use it for tests and compatibility only",
            SecurityWarning,
            stacklevel=2,
        )
    half = n_length // 2
    while True:
        p = _random_prime(half)
        q = _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == n_length and math.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    public_key = PaillierPublicKey(n, backend=backend, mode=mode)
    private_key = PaillierPrivateKey(public_key, p, q)
    if private_keyring is not None:
        private_keyring.add(private_key)
    return public_key, private_key


# -- public key ---------------------------------------------------------------------------

class PaillierPublicKey:
    """A Paillier public key and its encryption methods (python-paillier compatible).

    Parameters
    ----------
    n:
        The modulus.
    backend:
        A :class:`~montpipe.driver.backend.Backend` or its registered name; default: the
        process default (``MONTPIPE_BACKEND``, else ``cpu``).
    mode:
        ``"djn"`` (default) or ``"standard"``: how encryption without ``r_value`` draws its
        randomness (see the module documentation).
    hs:
        The DJN base ``h_s``; drawn on first use when not given.

    Attributes
    ----------
    n, g, nsquare, max_int:
        As in python-paillier: ``g = n + 1``, ``nsquare = n**2``, ``max_int = n // 3 - 1``.
    """

    def __init__(
        self,
        n: int,
        *,
        backend: str | Backend | None = None,
        mode: str = "djn",
        hs: int | None = None,
    ) -> None:
        if not isinstance(n, int) or isinstance(n, bool):
            n = _index(n, "n")
        if n < 15 or n % 2 == 0:
            raise ValueError(f"n must be an odd composite modulus, not {n}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        self.n = n
        self.g = n + 1
        self.nsquare = n * n
        self.max_int = n // 3 - 1
        self.mode = mode
        self._backend_spec = backend
        self._backend: Backend | None = None if not isinstance(backend, Backend) else backend
        if backend is not None and not isinstance(backend, Backend | str):
            raise TypeError(
                f"backend must be a Backend instance, a backend name or None, not {backend!r}"
            )
        self._hs = None if hs is None else check_djn_base(n, _index(hs, "hs"))
        self._djn_table = None
        self._lock = threading.Lock()

    # -- pickling (python-paillier's keys pickle) -------------------------------------------

    def __getstate__(self) -> dict:
        # the lock and the fixed-base table stay behind; a backend instance travels as its
        # registered name (the receiving process has its own device or threads)
        spec = self._backend_spec
        if isinstance(spec, Backend):
            spec = spec.name
        return {"n": self.n, "mode": self.mode, "hs": self._hs, "backend": spec}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["n"], backend=state["backend"], mode=state["mode"],
                      hs=state["hs"])

    # -- identity ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<PaillierPublicKey {self.key_id}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, PaillierPublicKey) and self.n == other.n

    def __hash__(self) -> int:
        return hash(self.n)

    @functools.cached_property
    def key_id(self) -> str:
        """A short fingerprint of ``n`` (first 16 hex digits of SHA-256 of its bytes)."""
        raw = self.n.to_bytes((self.n.bit_length() + 7) // 8, "big")
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def backend(self) -> Backend:
        """The backend this key's batches run on (resolved on first use)."""
        if self._backend is None:
            self._backend = get_backend(self._backend_spec)
        return self._backend

    @property
    def djn_exponent_bits(self) -> int:
        """Length of DJN's random exponent ``alpha``: ``ceil(k/2)`` for a ``k``-bit ``n``."""
        return (self.n.bit_length() + 1) // 2

    @property
    def hs(self) -> int:
        """The DJN base ``h_s = (-x**2) ** n mod n**2`` (drawn on first use)."""
        with self._lock:
            if self._hs is None:
                while True:
                    x = secrets.randbelow(self.n - 2) + 2
                    if math.gcd(x, self.n) == 1:
                        break
                h = (-x * x) % self.n
                self._hs = int(gmpy2.powmod(h, self.n, self.nsquare))
            return self._hs

    # -- randomness -------------------------------------------------------------------------

    def get_random_lt_n(self) -> int:
        """A cryptographically random number in ``[1, n)``."""
        return secrets.randbelow(self.n - 1) + 1

    def _check_mode(self, mode: str | None) -> str:
        mode = self.mode if mode is None else mode
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        return mode

    def random_factors(self, count: int, mode: str | None = None) -> list[int]:
        """``count`` fresh obfuscators (``h_s ** alpha`` or ``r ** n`` mod ``n**2``), one batch."""
        mode = self._check_mode(mode)
        if count == 0:
            return []
        if mode == "standard":
            rs = [self.get_random_lt_n() for _ in range(count)]
            return self.backend.powmod(rs, self.n, self.nsquare)
        bits = self.djn_exponent_bits
        alphas = [secrets.randbits(bits) for _ in range(count)]
        return self._djn().pow(alphas)

    def _djn(self):
        with self._lock:
            table = self._djn_table
        if table is None:
            hs = self.hs
            table = self.backend.fixed_base(hs, self.nsquare, self.djn_exponent_bits)
            with self._lock:
                if self._djn_table is None:
                    self._djn_table = table
                table = self._djn_table
        return table

    # -- encryption -------------------------------------------------------------------------

    def _nude(self, plaintext: int) -> int:
        return self.nudes([plaintext])[0]

    def nudes(self, plaintexts) -> list[int]:
        """``g ** m mod n**2`` for each integer ``m`` (taken modulo ``n``): the unblinded
        ciphertexts, which ``+`` of a plaintext multiplies in.

        ``(1 + n)^m = 1 + m*n (mod n^2)``: the same residue python-paillier reaches by inverting
        for "negative" plaintexts, so ciphertexts agree bit for bit.
        """
        n, nsq = gmpy2.mpz(self.n), self.nsquare
        return [int((1 + int(m) % n * n) % nsq) for m in plaintexts]

    def _check_plaintext(self, plaintext) -> int:
        if not isinstance(plaintext, int):
            raise TypeError(f"Expected int type plaintext but got: {type(plaintext)}")
        if not 0 <= plaintext < self.n:
            # the bound, not the value: a plaintext is what encryption keeps secret
            raise ValueError(
                f"plaintext must be in [0, n) for this {self.n.bit_length()}-bit key; it is "
                f"{'negative' if plaintext < 0 else 'n or more'}"
            )
        return plaintext

    def raw_encrypt(self, plaintext: int, r_value: int | None = None) -> int:
        """Encrypt an integer ``0 <= plaintext < n``; ``r_value`` fixes the obfuscator
        (``r ** n``), giving exactly python-paillier's ciphertext."""
        plaintext = self._check_plaintext(plaintext)
        nude = self._nude(plaintext)
        if r_value:
            r = _index(r_value, "r_value")
            if r == 1:
                return nude
            obfuscator = self.backend.powmod([r], self.n, self.nsquare)[0]
        else:
            obfuscator = self.random_factors(1)[0]
        return int(gmpy2.mpz(nude) * obfuscator % self.nsquare)

    def raw_encrypt_batch(self, plaintexts, r_values=None, *, mode: str | None = None) -> list[int]:
        """Encrypt many integers in ``[0, n)``: every exponentiation in one backend call."""
        plaintexts = [self._check_plaintext(p) for p in plaintexts]
        if r_values is not None:
            r_values = [_index(r, "r_values") for r in r_values]
            if len(r_values) != len(plaintexts):
                raise ValueError(
                    f"got {len(plaintexts)} plaintexts but {len(r_values)} r_values"
                )
            factors = self.backend.powmod(r_values, self.n, self.nsquare)
        else:
            factors = self.random_factors(len(plaintexts), mode)
        return self.backend.mulmod(self.nudes(plaintexts), factors, self.nsquare)

    def encrypt(self, value, precision: float | None = None, r_value: int | None = None):
        """Encode and encrypt an int or float (or an :class:`EncodedNumber`)."""
        encoding = (
            value if isinstance(value, EncodedNumber)
            else EncodedNumber.encode(self, value, precision)
        )
        return self.encrypt_encoded(encoding, r_value)

    def encrypt_encoded(self, encoding: EncodedNumber, r_value: int | None) -> EncryptedNumber:
        """Encrypt an :class:`EncodedNumber`; without ``r_value`` the result is obfuscated."""
        obfuscator = r_value or 1
        ciphertext = self.raw_encrypt(encoding.encoding, r_value=obfuscator)
        encrypted = EncryptedNumber(self, ciphertext, encoding.exponent)
        if r_value is None:
            encrypted.obfuscate()
        return encrypted

    def encrypt_vector(
        self,
        values,
        precision: float | None = None,
        *,
        exponent: int | None = None,
        mode: str | None = None,
    ):
        """Encrypt a numpy array (any shape, flattened) as an :class:`EncryptedVector`.

        All elements share one exponent (see :func:`montpipe.driver.encoding.encode_array`);
        the random factors are computed in one backend call.
        """
        from .vector import EncryptedVector  # the vector module builds on this one

        return EncryptedVector.encrypt(self, values, precision, exponent=exponent, mode=mode)

    # -- serialization ----------------------------------------------------------------------

    def to_json(self, *, with_hs: bool = False) -> str:
        """The documented JSON form (``docs/serialization.md``); ``with_hs`` includes this
        key's DJN base, for parties that trust the writer to have drawn it honestly."""
        return serialization.dumps(self._to_dict(with_hs))

    def _to_dict(self, with_hs: bool) -> dict:
        return serialization.public_key_to_dict(self.n, self.key_id, self.mode,
                                                self.hs if with_hs else None)

    @classmethod
    def from_json(cls, text: str, *, backend: str | Backend | None = None,
                  trust_hs: bool = False) -> PaillierPublicKey:
        """Load a key written by :meth:`to_json`; malformed input is a ``ValueError``.

        ``n`` is checked with :func:`check_modulus` (prime, perfect powers and small factors
        are refused; below 2048 bits is a :class:`SecurityWarning`) and a DJN base ``hs`` with
        :func:`check_djn_base`. The base is used only with ``trust_hs=True``; otherwise this
        key draws its own (a base chosen by someone else could be one whose powers hide less
        than they should).
        """
        return cls._from_dict(serialization.loads(text), backend, trust_hs)

    @classmethod
    def _from_dict(cls, doc: dict, backend, trust_hs: bool) -> PaillierPublicKey:
        where = serialization.PUBLIC_KEY
        n, mode, hs, key_id = serialization.public_key_fields(doc)
        check_modulus(n, f"{where}: n")
        if hs is not None and trust_hs:
            check_djn_base(n, hs, f"{where}: hs")
        # an untrusted base is not used, so it is not checked either: this key draws its own
        pk = cls(n, backend=backend, mode=mode, hs=hs if trust_hs else None)
        if key_id is not None and key_id != pk.key_id:
            raise ValueError(f"{where}: key_id {key_id!r} does not match n")
        return pk


# -- private key --------------------------------------------------------------------------

class PaillierPrivateKey:
    """A Paillier private key with CRT decryption (python-paillier compatible).

    Attributes
    ----------
    public_key, p, q, psquare, qsquare, p_inverse, hp, hq:
        As in python-paillier (``p < q``; ``p_inverse = p**-1 mod q``).
    """

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        if not isinstance(public_key, PaillierPublicKey):
            raise TypeError(f"public_key must be a PaillierPublicKey, not {type(public_key)}")
        p, q = _index(p, "p"), _index(q, "q")
        if p * q != public_key.n:
            raise ValueError("given public key does not match the given p and q.")
        if p == q:
            raise ValueError("p and q have to be different")
        self.public_key = public_key
        self.p, self.q = (q, p) if q < p else (p, q)
        self.psquare = self.p * self.p
        self.qsquare = self.q * self.q
        # Key set-up touches nothing but the secret primes, so it runs on exponentiations with
        # a fixed exponent length and no data-dependent branches (GMP's mpz_powm_sec):
        # inverses by Fermat, and h_p without the exponentiation h_function does, because with
        # g = 1 + n, L_p(g**(p-1) mod p**2) = (p-1)*q = -q (mod p). The values are
        # python-paillier's.
        self.p_inverse = _inverse_mod_prime(self.p % self.q, self.q)
        self.hp = (self.p - _inverse_mod_prime(self.q % self.p, self.p)) % self.p
        self.hq = (self.q - _inverse_mod_prime(self.p % self.q, self.q)) % self.q
        hs = public_key._hs
        if hs is not None:
            # n-th residues are exactly the elements whose order divides lcm(p-1, q-1)
            lam = (self.p - 1) * (self.q - 1) // math.gcd(self.p - 1, self.q - 1)
            if gmpy2.powmod_sec(hs, lam, public_key.nsquare) != 1:
                raise ValueError("the public key's DJN base hs is not an n-th residue, so "
                                 "ciphertexts built with it do not decrypt to their plaintext")

    @staticmethod
    def from_totient(public_key: PaillierPublicKey, totient: int) -> PaillierPrivateKey:
        """Factor ``n`` from ``(p-1)(q-1)``; ``ValueError`` when they do not match."""
        n = public_key.n
        p_plus_q = n - totient + 1
        disc = p_plus_q * p_plus_q - 4 * n
        if disc < 0:
            raise ValueError("given public key and totient do not match.")
        p_minus_q = int(gmpy2.isqrt(disc))
        q = (p_plus_q - p_minus_q) // 2
        p = p_plus_q - q
        if p * q != n:
            raise ValueError("given public key and totient do not match.")
        return PaillierPrivateKey(public_key, p, q)

    def __repr__(self) -> str:
        return f"<PaillierPrivateKey for {self.public_key!r}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, PaillierPrivateKey) and (self.p, self.q) == (other.p, other.q)

    def __hash__(self) -> int:
        return hash((self.p, self.q))

    # -- the maths --------------------------------------------------------------------------

    def h_function(self, x: int, xsquare: int) -> int:
        """Paillier's h-function for CRT decryption: ``L_x(g^(x-1) mod x^2)^-1 mod x``."""
        return int(gmpy2.invert(
            self.l_function(int(gmpy2.powmod(self.public_key.g, x - 1, xsquare)), x), x
        ))

    @staticmethod
    def l_function(x: int, p: int) -> int:
        """``L(x, p) = (x - 1) // p``."""
        return (x - 1) // p

    def crt(self, mp: int, mq: int) -> int:
        """Combine residues modulo ``p`` and ``q`` into the residue modulo ``n``."""
        u = (mq - mp) * self.p_inverse % self.q
        return mp + u * self.p

    def _check_ciphertext(self, ciphertext) -> int:
        if not isinstance(ciphertext, int):
            raise TypeError(f"Expected ciphertext to be an int, not: {type(ciphertext)}")
        if not 0 < ciphertext < self.public_key.nsquare:
            raise ValueError(
                f"ciphertext must be in [1, n**2) for this key, not {ciphertext}"
            )
        return ciphertext

    def raw_decrypt(self, ciphertext: int) -> int:
        """Decrypt an integer ciphertext to the plaintext in ``[0, n)``."""
        return self.raw_decrypt_batch([self._check_ciphertext(ciphertext)])[0]

    def raw_decrypt_batch(self, ciphertexts) -> list[int]:
        """Decrypt many ciphertexts: two backend calls (mod ``p**2``, mod ``q**2``), marked
        secret so a backend with a constant-time path uses it."""
        cs = [self._check_ciphertext(c) for c in ciphertexts]
        if not cs:
            return []
        backend = self.public_key.backend
        # backends reduce bases modulo the modulus themselves (cheaper than Python ints here)
        fp = backend.submit("powmod", cs, self.p - 1, self.psquare, secret=True)
        xq = backend.powmod(cs, self.q - 1, self.qsquare, secret=True)
        xp = fp.result()
        p, q, hp, hq = (gmpy2.mpz(x) for x in (self.p, self.q, self.hp, self.hq))
        p_inverse = gmpy2.mpz(self.p_inverse)
        out = []
        for a, b in zip(xp, xq, strict=True):
            mp = (a - 1) // p * hp % p
            mq = (b - 1) // q * hq % q
            # + q keeps the difference positive: no sign-dependent step on secret residues
            out.append(int(mp + (mq + q - mp) * p_inverse % q * p))
        return out

    def decrypt(self, encrypted_number: EncryptedNumber):
        """Decrypt and decode an :class:`EncryptedNumber` to an int or float."""
        return self.decrypt_encoded(encrypted_number).decode()

    def decrypt_encoded(self, encrypted_number: EncryptedNumber, Encoding=None) -> EncodedNumber:
        """Decrypt to an :class:`EncodedNumber` (or ``Encoding``)."""
        if not isinstance(encrypted_number, EncryptedNumber):
            raise TypeError(
                "Expected encrypted_number to be an EncryptedNumber not: "
                f"{type(encrypted_number)}"
            )
        if self.public_key != encrypted_number.public_key:
            raise ValueError("encrypted_number was encrypted against a different key!")
        Encoding = EncodedNumber if Encoding is None else Encoding
        encoded = self.raw_decrypt(encrypted_number.ciphertext(be_secure=False))
        return Encoding(self.public_key, encoded, encrypted_number.exponent)

    def decrypt_vector(self, encrypted_vector, *, dtype=None):
        """Decrypt an :class:`EncryptedVector` to a numpy array (float64, or ints when the
        exponent is non-negative); ``OverflowError`` names the first overflowed element."""
        from .vector import EncryptedVector  # the vector module builds on this one

        if not isinstance(encrypted_vector, EncryptedVector):
            raise TypeError(
                f"Expected an EncryptedVector, not {type(encrypted_vector).__name__}"
            )
        return encrypted_vector.decrypt(self, dtype=dtype)

    # -- serialization ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The documented JSON form, including the public key (``docs/serialization.md``)."""
        return serialization.dumps(serialization.private_key_to_dict(
            self.public_key._to_dict(with_hs=True), self.p, self.q))

    @classmethod
    def from_json(cls, text: str, *, backend: str | Backend | None = None) -> PaillierPrivateKey:
        """Load a key written by :meth:`to_json`; malformed or inconsistent input is a
        ``ValueError`` (also a DJN base that is not an ``n``-th residue)."""
        where = serialization.PRIVATE_KEY
        public_doc, p, q = serialization.private_key_fields(serialization.loads(text))
        # the key's owner wrote this h_s for itself: keep it (its table is then reusable)
        pk = PaillierPublicKey._from_dict(public_doc, backend, trust_hs=True)
        if p * q != pk.n:
            raise ValueError(f"{where}: p * q does not equal the public key's n")
        if p == q or not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
            raise ValueError(f"{where}: p and q must be two different primes")
        return cls(pk, p, q)


class PaillierPrivateKeyring(Mapping):
    """Private keys by public key; decrypts with whichever matches (python-paillier's)."""

    def __init__(self, private_keys=None) -> None:
        private_keys = [] if private_keys is None else private_keys
        self.__keyring = {k.public_key: k for k in private_keys}

    def __getitem__(self, key):
        return self.__keyring[key]

    def __len__(self) -> int:
        return len(self.__keyring)

    def __iter__(self):
        return iter(self.__keyring)

    def __delitem__(self, public_key) -> None:
        del self.__keyring[public_key]

    def add(self, private_key: PaillierPrivateKey) -> None:
        if not isinstance(private_key, PaillierPrivateKey):
            raise TypeError(
                f"private_key should be of type PaillierPrivateKey, not {type(private_key)}"
            )
        self.__keyring[private_key.public_key] = private_key

    def decrypt(self, encrypted_number: EncryptedNumber):
        """Decrypt with the matching key; ``KeyError`` if the keyring does not hold it."""
        return self.__keyring[encrypted_number.public_key].decrypt(encrypted_number)


# -- encrypted numbers --------------------------------------------------------------------

class EncryptedNumber:
    """The Paillier encryption of an int or float (python-paillier compatible).

    Sums and scalar products are *not* obfuscated (as in python-paillier);
    :meth:`ciphertext` obfuscates before a ciphertext leaves unless ``be_secure=False``.
    """

    def __init__(self, public_key: PaillierPublicKey, ciphertext: int, exponent: int = 0) -> None:
        if not isinstance(public_key, PaillierPublicKey):
            raise TypeError("public_key should be a PaillierPublicKey")
        if isinstance(ciphertext, EncryptedNumber) or not hasattr(ciphertext, "__index__"):
            raise TypeError("ciphertext should be an integer")
        ciphertext = int(ciphertext)  # gmpy2.mpz and numpy integers too
        self.public_key = public_key
        self.__ciphertext = ciphertext
        self.exponent = exponent
        self.__is_obfuscated = False

    def __repr__(self) -> str:
        return f"<EncryptedNumber exponent={self.exponent} key={self.public_key.key_id}>"

    # -- operators --------------------------------------------------------------------------

    def __add__(self, other):
        if isinstance(other, EncryptedNumber):
            return self._add_encrypted(other)
        if isinstance(other, EncodedNumber):
            return self._add_encoded(other)
        if _is_vector(other):
            return NotImplemented
        return self._add_scalar(other)

    def __radd__(self, other):
        return self.__add__(other)

    def __mul__(self, other):
        if isinstance(other, EncryptedNumber):
            raise NotImplementedError(
                "Paillier cannot multiply two ciphertexts; multiply by a plaintext instead"
            )
        if _is_vector(other):
            return NotImplemented
        encoding = other if isinstance(other, EncodedNumber) else EncodedNumber.encode(
            self.public_key, other
        )
        product = self._raw_mul(encoding.encoding)
        return EncryptedNumber(self.public_key, product, self.exponent + encoding.exponent)

    def __rmul__(self, other):
        return self.__mul__(other)

    def __sub__(self, other):
        return self + (other * -1)

    def __rsub__(self, other):
        return other + (self * -1)

    def __neg__(self):
        return self * -1

    def __truediv__(self, scalar):
        return self.__mul__(1 / scalar)

    # -- ciphertext -------------------------------------------------------------------------

    def ciphertext(self, be_secure: bool = True) -> int:
        """The ciphertext; obfuscated first unless ``be_secure=False``."""
        if be_secure and not self.__is_obfuscated:
            self.obfuscate()
        return self.__ciphertext

    def obfuscate(self) -> None:
        """Multiply by a fresh random factor (DJN or ``r ** n``, per the key's mode)."""
        factor = self.public_key.random_factors(1)[0]
        self.__ciphertext = int(gmpy2.mpz(self.__ciphertext) * factor % self.public_key.nsquare)
        self.__is_obfuscated = True

    @property
    def is_obfuscated(self) -> bool:
        return self.__is_obfuscated

    def _set_obfuscated(self) -> None:
        self.__is_obfuscated = True

    def decrease_exponent_to(self, new_exp: int) -> EncryptedNumber:
        """The same plaintext at a lower exponent; raising it is a ``ValueError``."""
        if new_exp > self.exponent:
            raise ValueError(
                f"New exponent {new_exp} should be more negative than old exponent "
                f"{self.exponent}"
            )
        multiplied = self * pow(EncodedNumber.BASE, self.exponent - new_exp)
        multiplied.exponent = new_exp
        return multiplied

    # -- raw pieces -------------------------------------------------------------------------

    def _add_scalar(self, scalar) -> EncryptedNumber:
        encoded = EncodedNumber.encode(self.public_key, scalar, max_exponent=self.exponent)
        return self._add_encoded(encoded)

    def _add_encoded(self, encoded: EncodedNumber) -> EncryptedNumber:
        if self.public_key != encoded.public_key:
            raise ValueError("Attempted to add numbers encoded against different public keys!")
        a, b = self, encoded
        if a.exponent > b.exponent:
            a = self.decrease_exponent_to(b.exponent)
        elif a.exponent < b.exponent:
            b = b.decrease_exponent_to(a.exponent)
        encrypted_scalar = a.public_key.raw_encrypt(b.encoding, 1)
        return EncryptedNumber(
            a.public_key, a._raw_add(a.ciphertext(False), encrypted_scalar), a.exponent
        )

    def _add_encrypted(self, other: EncryptedNumber) -> EncryptedNumber:
        if self.public_key != other.public_key:
            raise ValueError(
                "Attempted to add numbers encrypted against different public keys!"
            )
        a, b = self, other
        if a.exponent > b.exponent:
            a = self.decrease_exponent_to(b.exponent)
        elif a.exponent < b.exponent:
            b = b.decrease_exponent_to(a.exponent)
        return EncryptedNumber(
            a.public_key, a._raw_add(a.ciphertext(False), b.ciphertext(False)), a.exponent
        )

    def _raw_add(self, e_a: int, e_b: int) -> int:
        return int(gmpy2.mpz(e_a) * e_b % self.public_key.nsquare)

    def _raw_mul(self, plaintext: int) -> int:
        if not isinstance(plaintext, int):
            raise TypeError(f"Expected ciphertext to be int, not {type(plaintext)}")
        pk = self.public_key
        if plaintext < 0 or plaintext >= pk.n:
            raise ValueError(f"Scalar out of bounds: {plaintext}")
        # a "negative" encoding becomes a negative exponent: the backend inverts the base
        exponent = plaintext - pk.n if plaintext >= pk.n - pk.max_int else plaintext
        try:
            return pk.backend.powmod([self.ciphertext(False)], [exponent], pk.nsquare)[0]
        except ValueError:
            raise ValueError(
                "ciphertext is not invertible modulo n**2, so it cannot be multiplied by a "
                "negative number; it is not a valid ciphertext for this key"
            ) from None

    # -- serialization ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The documented JSON form; the ciphertext is obfuscated first."""
        pk = self.public_key
        return serialization.dumps(serialization.encrypted_number_to_dict(
            pk.key_id, self.exponent, self.ciphertext(be_secure=True)))

    @classmethod
    def from_json(cls, text: str, public_key: PaillierPublicKey) -> EncryptedNumber:
        """Load under ``public_key``; a wrong key, a ciphertext outside ``[1, n**2)`` or not
        coprime to ``n``, an exponent outside
        :func:`~montpipe.driver.encoding.exponent_range`, or malformed JSON is a
        ``ValueError``."""
        c, exponent = serialization.encrypted_number_fields(
            serialization.loads(text), public_key.n, public_key.key_id)
        x = cls(public_key, c, exponent)
        x._set_obfuscated()
        return x


def _is_vector(x) -> bool:
    """Arrays and encrypted vectors (both have ``ndim``): their reflected operator runs."""
    return hasattr(x, "shape") and getattr(x, "ndim", 0) > 0


def _inverse_mod_prime(a: int, p: int) -> int:
    """``a**-1 mod p`` for a prime ``p`` not dividing ``a``, as ``a**(p-2)`` with the
    constant-time exponentiation (GMP's extended Euclid branches on its operands)."""
    return int(gmpy2.powmod_sec(a, p - 2, p))


def _index(value, name: str) -> int:
    try:
        return int(value.__index__()) if not isinstance(value, int) else value
    except AttributeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


def __getattr__(name: str):
    # `paillier.EncryptedVector` works (python-paillier users find everything here), but the
    # vector module, which builds on this one, is imported only when asked for
    if name == "EncryptedVector":
        from .vector import EncryptedVector

        return EncryptedVector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
