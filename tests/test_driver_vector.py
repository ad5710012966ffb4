"""The batch API: EncryptedVector against numpy and against element-wise python-paillier."""

import threading

import numpy as np
import pytest

from montpipe.driver import EncryptedVector, paillier
from montpipe.driver.backend import Backend
from montpipe.driver.backends.cpu import CPUBackend

phe = pytest.importorskip("phe.paillier")


class CountingBackend(CPUBackend):
    """Records every backend call so tests can check batches go out in one call."""

    def __init__(self):
        super().__init__(workers=2)
        self.log = []
        # calls the backend makes to itself (the gmpy2 fallback) are not logged; per thread,
        # since decryption runs its two halves on two threads
        self.local = threading.local()

    def _logged(self, entry, fn):
        depth = getattr(self.local, "depth", 0)
        if depth == 0:
            self.log.append(entry)
        self.local.depth = depth + 1
        try:
            return fn()
        finally:
            self.local.depth = depth

    def powmod(self, bases, exponents, modulus, *, secret=False):
        return self._logged(("powmod", len(bases)), lambda: super(CountingBackend, self).powmod(
            bases, exponents, modulus, secret=secret))

    def multiexp(self, bases, exponents, modulus):
        return self._logged(("multiexp", len(bases), len(exponents)),
                            lambda: super(CountingBackend, self).multiexp(bases, exponents,
                                                                          modulus))

    def fixed_base(self, base, modulus, max_bits):
        inner = super().fixed_base(base, modulus, max_bits)
        outer = self

        class Wrapped:
            def pow(self, exps):
                return outer._logged(("fixed_base", len(exps)), lambda: inner.pow(exps))

        return Wrapped()


@pytest.fixture(scope="module")
def keys(keypair_factory):
    return keypair_factory(1024)


@pytest.fixture(scope="module")
def counted(keys):
    pk, sk = keys
    backend = CountingBackend()
    cpk = paillier.PaillierPublicKey(pk.n, backend=backend)
    csk = paillier.PaillierPrivateKey(cpk, sk.p, sk.q)
    return cpk, csk, backend


RNG = np.random.default_rng(20261127)


def test_round_trip_float_int_and_shapes(keys):
    pk, sk = keys
    x = RNG.normal(size=37) * 100
    v = pk.encrypt_vector(x)
    assert len(v) == 37 and v.shape == (37,) and v.is_obfuscated
    np.testing.assert_array_equal(sk.decrypt_vector(v), x)  # 53 bits of the largest survive
    ints = np.array([0, 1, -1, 2**40, -(2**50)], dtype=np.int64)
    out = sk.decrypt_vector(pk.encrypt_vector(ints))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ints)
    m = pk.encrypt_vector(np.arange(6.0).reshape(2, 3))  # flattened
    np.testing.assert_array_equal(sk.decrypt_vector(m), np.arange(6.0))
    assert len(pk.encrypt_vector([])) == 0
    big = np.array([2**100, -(2**90)], dtype=object)
    assert list(sk.decrypt_vector(pk.encrypt_vector(big))) == [2**100, -(2**90)]


def test_precision_and_exponent(keys):
    pk, sk = keys
    v = pk.encrypt_vector([0.1, 0.2], precision=1e-6)
    assert v.exponent == -5
    np.testing.assert_allclose(sk.decrypt_vector(v), [0.1, 0.2], atol=1e-6)
    w = pk.encrypt_vector([1.0, 2.0], exponent=-30)
    assert w.exponent == -30
    np.testing.assert_array_equal(sk.decrypt_vector(w), [1.0, 2.0])


def test_elementwise_ops_match_numpy(keys):
    pk, sk = keys
    a, b = RNG.normal(size=20), RNG.normal(size=20) * 1e3
    ea, eb = pk.encrypt_vector(a), pk.encrypt_vector(b)
    s = RNG.normal(size=20)
    cases = {
        "ea+eb": (ea + eb, a + b),
        "ea-eb": (ea - eb, a - b),
        "ea+b": (ea + b, a + b),
        "b+ea": (b + ea, b + a),
        "ea-b": (ea - b, a - b),
        "b-ea": (b - ea, b - a),
        "ea+3": (ea + 3, a + 3),
        "ea*2.5": (ea * 2.5, a * 2.5),
        "-2*ea": (-2 * ea, -2 * a),
        "ea*s": (ea * s, a * s),
        "s*ea": (s * ea, s * a),
        "ea/4": (ea / 4, a / 4),
        "ea/s": (ea / s, a / s),
        "-ea": (-ea, -a),
        "ea+enc": (ea + pk.encrypt(1.25), a + 1.25),
        "ea-enc": (ea - pk.encrypt(1.25), a - 1.25),
    }
    for name, (enc, expected) in cases.items():
        np.testing.assert_allclose(sk.decrypt_vector(enc), expected, rtol=1e-12, atol=1e-9,
                                   err_msg=name)
    assert sk.decrypt(ea.sum()) == pytest.approx(a.sum(), rel=1e-12)
    assert sk.decrypt(ea.dot(s)) == pytest.approx(a @ s, rel=1e-12)
    assert sk.decrypt(s @ ea) == pytest.approx(s @ a, rel=1e-12)


def test_matrix_vector_product_matches_numpy_and_phe(keys):
    pk, sk = keys
    ppk = phe.PaillierPublicKey(pk.n)
    psk = phe.PaillierPrivateKey(ppk, sk.p, sk.q)
    m, k = 40, 5
    X = RNG.normal(size=(m, k))
    X[3, 2] = 0.0
    X[5, :] = -X[5, :]
    r = RNG.normal(size=m)
    er = pk.encrypt_vector(r)
    g = X.T @ er
    assert isinstance(g, EncryptedVector) and len(g) == k
    got = sk.decrypt_vector(g)
    np.testing.assert_allclose(got, X.T @ r, rtol=1e-10, atol=1e-10)
    # python-paillier element by element on the same ciphertexts
    pr = [phe.EncryptedNumber(ppk, c, er.exponent) for c in er.ciphertexts(be_secure=False)]
    for j in range(k):
        ref = sum(pr[i] * float(X[i, j]) for i in range(m))
        assert psk.decrypt(ref) == pytest.approx(got[j], rel=1e-10, abs=1e-10)
    # the result decrypts in python-paillier too
    for j in range(k):
        assert psk.decrypt(phe.EncryptedNumber(ppk, g.ciphertexts()[j], g.exponent)) == \
            pytest.approx(got[j], rel=1e-12)
    # er @ X is the same thing
    np.testing.assert_allclose(sk.decrypt_vector(er @ X), got, rtol=1e-12)


def test_integer_matrix_exact(keys):
    pk, sk = keys
    X = RNG.integers(-1000, 1000, size=(30, 4))
    y = RNG.integers(-(2**40), 2**40, size=30)
    out = sk.decrypt_vector(X.T @ pk.encrypt_vector(y))
    assert [int(v) for v in out] == [int(v) for v in X.T.astype(object) @ y.astype(object)]


def test_batch_goes_to_the_backend_in_one_call(counted):
    pk, sk, backend = counted
    backend.log.clear()
    v = pk.encrypt_vector(RNG.normal(size=64))
    assert backend.log == [("fixed_base", 64)]
    backend.log.clear()
    X = RNG.normal(size=(64, 7))
    X.T @ v
    assert backend.log == [("multiexp", 64, 7)]
    backend.log.clear()
    v * RNG.normal(size=64)
    assert backend.log == [("powmod", 64)]
    backend.log.clear()
    sk.decrypt_vector(v)
    assert backend.log == [("powmod", 64), ("powmod", 64)]  # mod p^2 and mod q^2


def test_exponent_alignment_and_obfuscation(keys):
    pk, sk = keys
    a = pk.encrypt_vector([1.0, 2.0], exponent=-4)
    b = pk.encrypt_vector([0.5, 0.25], exponent=-10)
    c = a + b
    assert c.exponent == -10 and not c.is_obfuscated
    raw = c.ciphertexts(be_secure=False)
    sec = c.ciphertexts()
    assert c.is_obfuscated and raw != sec
    np.testing.assert_array_equal(sk.decrypt_vector(c), [1.5, 2.25])
    d = a.decrease_exponent_to(-8)
    assert d.exponent == -8
    np.testing.assert_array_equal(sk.decrypt_vector(d), [1.0, 2.0])
    with pytest.raises(ValueError, match="more negative"):
        a.decrease_exponent_to(0)


def test_indexing_and_conversion(keys):
    pk, sk = keys
    x = np.arange(10.0) - 4.5
    v = pk.encrypt_vector(x)
    assert sk.decrypt(v[3]) == x[3]
    np.testing.assert_array_equal(sk.decrypt_vector(v[2:5]), x[2:5])
    np.testing.assert_array_equal(sk.decrypt_vector(v[[0, 9, 9]]), x[[0, 9, 9]])
    np.testing.assert_array_equal(sk.decrypt_vector(v[x > 0]), x[x > 0])
    nums = list(v)
    assert [sk.decrypt(n) for n in nums] == list(x)
    back = EncryptedVector.from_encrypted_numbers([pk.encrypt(1.5), pk.encrypt(7), nums[0]])
    np.testing.assert_array_equal(sk.decrypt_vector(back), [1.5, 7, x[0]])
    joined = EncryptedVector.concatenate([v[:2], pk.encrypt_vector([100])])
    np.testing.assert_array_equal(sk.decrypt_vector(joined), [x[0], x[1], 100])


def test_errors_are_clear(keys, keypair_factory):
    pk, sk = keys
    pk2, sk2 = keypair_factory(512)
    v = pk.encrypt_vector([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"values\[1\] is nan"):
        pk.encrypt_vector([1.0, np.nan])
    with pytest.raises(ValueError, match=r"values\[0\] is inf"):
        pk.encrypt_vector([np.inf])
    with pytest.raises(TypeError, match="dtype"):
        pk.encrypt_vector(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"values\[1\] encodes .* outside"):
        pk.encrypt_vector(np.array([1, pk.max_int + 1], dtype=object))
    with pytest.raises(ValueError, match="lengths 3 and 2"):
        v + pk.encrypt_vector([1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(3,\)"):
        v + np.array([1.0, 2.0])
    with pytest.raises(ValueError, match=r"matrix of shape \(4, 2\)"):
        np.ones((4, 2)) @ v
    with pytest.raises(ValueError, match="different public keys"):
        v + pk2.encrypt_vector([1.0, 2.0, 3.0])
    with pytest.raises(NotImplementedError, match="two ciphertexts"):
        v * v
    with pytest.raises(NotImplementedError, match="two ciphertexts"):
        v * pk.encrypt(2)
    with pytest.raises(ValueError, match="encrypted under key"):
        sk2.decrypt_vector(v)
    with pytest.raises(TypeError, match="EncryptedVector"):
        sk.decrypt_vector([1, 2])
    with pytest.raises(ValueError, match="different public key"):
        EncryptedVector.from_encrypted_numbers([pk.encrypt(1), pk2.encrypt(1)])
    big = pk.encrypt_vector(np.array([pk.max_int, 1], dtype=object))
    with pytest.raises(OverflowError, match="element 0"):
        sk.decrypt_vector(big + big)


def test_invalid_ciphertext_in_matvec_is_an_error_not_a_wrong_value(keys):
    pk, sk = keys
    p = sk.p
    bad = EncryptedVector(pk, [p, pk.encrypt(1).ciphertext()], 0)  # p has no inverse mod n^2
    with pytest.raises(ValueError, match="not a valid ciphertext"):
        np.array([[-1, 1]]) @ bad
    with pytest.raises(ValueError, match="no inverse"):
        -bad


def test_custom_backend_subclass_is_enough(keys):
    """A backend implementing only powmod gets correct defaults for everything else."""
    import gmpy2

    class Minimal(Backend):
        name = "minimal"

        def powmod(self, bases, exponents, modulus, *, secret=False):
            es = exponents if hasattr(exponents, "__len__") else [exponents] * len(bases)
            return [int(gmpy2.powmod(b, e, modulus)) for b, e in zip(bases, es, strict=True)]

    pk0, sk0 = keys
    pk = paillier.PaillierPublicKey(pk0.n, backend=Minimal())
    sk = paillier.PaillierPrivateKey(pk, sk0.p, sk0.q)
    x = RNG.normal(size=6)
    v = pk.encrypt_vector(x)
    X = RNG.normal(size=(6, 3))
    np.testing.assert_allclose(sk.decrypt_vector(X.T @ v), X.T @ x, rtol=1e-10)
    assert sk.decrypt(v.sum()) == pytest.approx(x.sum())
    assert pk.backend.stats.fixed_base_powmods == 6
