"""The python-paillier-compatible scalar API: keys, encoding, encryption, operators, errors."""

import math
import warnings

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from montpipe.driver import paillier
from montpipe.driver.paillier import EncodedNumber, EncryptedNumber

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- keys -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [256, 512, 1024, 2048])
def test_keygen_shape(keypair_factory, bits):
    pk, sk = keypair_factory(bits)
    assert pk.n.bit_length() == bits
    assert sk.p != sk.q and sk.p < sk.q
    assert sk.p.bit_length() == sk.q.bit_length() == bits // 2
    assert gmpy2.is_prime(sk.p) and gmpy2.is_prime(sk.q)
    assert sk.p * sk.q == pk.n
    assert pk.g == pk.n + 1 and pk.nsquare == pk.n**2 and pk.max_int == pk.n // 3 - 1
    assert math.gcd(pk.n, (sk.p - 1) * (sk.q - 1)) == 1


def test_default_key_is_2048_bits_and_small_keys_warn():
    assert paillier.DEFAULT_KEYSIZE == 2048
    with pytest.warns(paillier.SecurityWarning, match="512-bit"):
        paillier.generate_paillier_keypair(n_length=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error", paillier.SecurityWarning)
        pk, _ = paillier.generate_paillier_keypair()
    assert pk.n.bit_length() == 2048


def test_keygen_uses_os_csprng(monkeypatch):
    import random

    def boom(*a, **k):
        raise AssertionError("the random module must not be used for keys")

    monkeypatch.setattr(random, "getrandbits", boom)
    monkeypatch.setattr(random, "randrange", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        paillier.generate_paillier_keypair(n_length=256)


@pytest.mark.parametrize("bad, exc", [(1000.0, TypeError), ("2048", TypeError),
                                      (31, ValueError), (0, ValueError), (513, ValueError)])
def test_keygen_rejects_bad_lengths(bad, exc):
    with pytest.raises(exc, match="n_length"):
        paillier.generate_paillier_keypair(n_length=bad)


def test_keyring(keypair_factory):
    pk1, sk1 = keypair_factory(256)
    ring = paillier.PaillierPrivateKeyring([sk1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        pk2, sk2 = paillier.generate_paillier_keypair(ring, n_length=256)
    assert len(ring) == 2 and ring[pk2] is sk2
    assert ring.decrypt(pk1.encrypt(5)) == 5 and ring.decrypt(pk2.encrypt(-7)) == -7
    del ring[pk2]
    with pytest.raises(KeyError):
        ring.decrypt(pk2.encrypt(1))
    with pytest.raises(TypeError, match="PaillierPrivateKey"):
        ring.add("not a key")


def test_private_key_validation_and_from_totient(keypair_factory):
    pk, sk = keypair_factory(512)
    assert paillier.PaillierPrivateKey.from_totient(pk, (sk.p - 1) * (sk.q - 1)) == sk
    with pytest.raises(ValueError, match="totient"):
        paillier.PaillierPrivateKey.from_totient(pk, (sk.p - 1) * (sk.q - 1) + 2)
    with pytest.raises(ValueError, match="does not match"):
        paillier.PaillierPrivateKey(pk, sk.p, sk.q + 2)
    assert paillier.PaillierPrivateKey(pk, sk.q, sk.p) == sk  # p < q is restored


def test_public_key_validation():
    with pytest.raises(ValueError, match="odd composite"):
        paillier.PaillierPublicKey(1024)
    with pytest.raises(ValueError, match="mode"):
        paillier.PaillierPublicKey(3 * 5 * 7 * 11, mode="fast")
    with pytest.raises(TypeError, match="backend"):
        paillier.PaillierPublicKey(3 * 5 * 7 * 11, backend=3.5)


# -- encryption round trips -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["djn", "standard"])
def test_round_trip_values(keypair, mode):
    pk, sk = keypair
    pk = paillier.PaillierPublicKey(pk.n, mode=mode)
    sk = paillier.PaillierPrivateKey(pk, sk.p, sk.q)
    for v in [0, 1, -1, 2**40 + 3, -(2**40), 0.5, -1.25, 3.141592653589793, 1e-9, -2.5e7,
              pk.max_int, -pk.max_int]:
        assert sk.decrypt(pk.encrypt(v)) == v
    assert isinstance(sk.decrypt(pk.encrypt(7)), int)


def test_encryption_is_randomised_and_obfuscated(keypair_factory):
    pk, sk = keypair_factory(512)
    a, b = pk.encrypt(42), pk.encrypt(42)
    assert a.ciphertext() != b.ciphertext()
    assert a.is_obfuscated
    s = a + b
    assert not s.is_obfuscated
    raw = s.ciphertext(be_secure=False)
    assert s.ciphertext() != raw and s.is_obfuscated
    assert sk.decrypt(s) == 84


def test_djn_ciphertext_is_a_standard_paillier_ciphertext(keypair_factory):
    """A DJN ciphertext is g^m * h_s^a, and h_s = (-x^2)^n is an n-th residue: raising it to
    lambda gives 1 mod n^2, which is what lets any Paillier implementation decrypt it."""
    pk, sk = keypair_factory(512)
    lam = (sk.p - 1) * (sk.q - 1) // math.gcd(sk.p - 1, sk.q - 1)
    assert pow(pk.hs, lam, pk.nsquare) == 1
    assert pk.djn_exponent_bits == 256
    c = pk.raw_encrypt(12345)
    assert sk.raw_decrypt(c) == 12345


def test_raw_encrypt_matches_definition(keypair_factory):
    pk, sk = keypair_factory(256)
    r = 123456789
    for m in [0, 1, 5, pk.n - 1, pk.n - pk.max_int, pk.max_int + 1]:
        expected = pow(pk.g, m, pk.nsquare) * pow(r, pk.n, pk.nsquare) % pk.nsquare
        assert pk.raw_encrypt(m, r_value=r) == expected
        assert sk.raw_decrypt(expected) == m


def test_raw_api_errors(keypair_factory):
    pk, sk = keypair_factory(256)
    with pytest.raises(TypeError, match="plaintext"):
        pk.raw_encrypt(1.0)
    with pytest.raises(ValueError, match=r"plaintext must be in \[0, n\)"):
        pk.raw_encrypt(pk.n)
    with pytest.raises(ValueError, match=r"plaintext must be in \[0, n\)"):
        pk.raw_encrypt(-1)
    with pytest.raises(TypeError, match="ciphertext"):
        sk.raw_decrypt(1.0)
    with pytest.raises(ValueError, match=r"ciphertext must be in \[1, n\*\*2\)"):
        sk.raw_decrypt(0)
    with pytest.raises(ValueError, match=r"ciphertext must be in \[1, n\*\*2\)"):
        sk.raw_decrypt(pk.nsquare)
    with pytest.raises(TypeError, match="EncryptedNumber"):
        sk.decrypt(5)


# -- encoding ---------------------------------------------------------------------------------

def test_encoding_boundaries(keypair_factory):
    pk, _ = keypair_factory(256)
    enc = EncodedNumber.encode(pk, pk.max_int)
    assert enc.encoding == pk.max_int and enc.decode() == pk.max_int
    assert EncodedNumber.encode(pk, -pk.max_int).decode() == -pk.max_int
    with pytest.raises(ValueError, match="Integer needs to be within"):
        EncodedNumber.encode(pk, pk.max_int + 1)
    with pytest.raises(ValueError, match="Integer needs to be within"):
        EncodedNumber.encode(pk, -pk.max_int - 1)
    with pytest.raises(OverflowError, match="Overflow detected"):
        EncodedNumber(pk, pk.max_int + 1, 0).decode()
    with pytest.raises(OverflowError, match="Overflow detected"):
        EncodedNumber(pk, pk.n - pk.max_int - 1, 0).decode()
    with pytest.raises(ValueError, match="corrupted"):
        EncodedNumber(pk, pk.n, 0).decode()
    with pytest.raises(TypeError, match="precision of type"):
        EncodedNumber.encode(pk, "1.5")
    with pytest.raises(TypeError, match="precision of type"):
        EncodedNumber.encode(pk, 1 + 2j)


def test_encoding_precision_and_exponents(keypair_factory):
    pk, _ = keypair_factory(256)
    e = EncodedNumber.encode(pk, 0.1, precision=1e-3)
    assert e.exponent == math.floor(math.log(1e-3, 16))
    assert abs(e.decode() - 0.1) < 1e-3
    e2 = e.decrease_exponent_to(e.exponent - 3)
    assert e2.exponent == e.exponent - 3 and e2.decode() == e.decode()
    with pytest.raises(ValueError, match="more negative"):
        e.decrease_exponent_to(e.exponent + 1)
    assert EncodedNumber.encode(pk, 1.5, max_exponent=-20).exponent == -20
    assert EncodedNumber.BASE == 16


def test_numpy_scalars_encode(keypair_factory):
    np = pytest.importorskip("numpy")
    pk, sk = keypair_factory(256)
    assert sk.decrypt(pk.encrypt(np.int64(-9))) == -9
    assert sk.decrypt(pk.encrypt(np.float32(0.5))) == 0.5


# -- operators --------------------------------------------------------------------------------

def test_operators(keypair):
    pk, sk = keypair
    a, b = pk.encrypt(3.5), pk.encrypt(-2)
    assert sk.decrypt(a + b) == 1.5
    assert sk.decrypt(a + 10) == 13.5
    assert sk.decrypt(10 + a) == 13.5
    assert sk.decrypt(a - b) == 5.5
    assert sk.decrypt(1 - a) == -2.5
    assert sk.decrypt(a * 4) == 14.0
    assert sk.decrypt(-3 * b) == 6
    assert sk.decrypt(a * -0.5) == -1.75
    assert sk.decrypt(a / 2) == 1.75
    assert sk.decrypt(-a) == -3.5
    assert sk.decrypt(a + EncodedNumber.encode(pk, 0.25)) == 3.75
    assert sk.decrypt(a * EncodedNumber.encode(pk, 2)) == 7.0
    assert sk.decrypt(sum([a, b, pk.encrypt(1)])) == 2.5
    assert sk.decrypt(a.decrease_exponent_to(a.exponent - 2)) == 3.5


def test_operator_errors(keypair_factory):
    pk, sk = keypair_factory(256)
    pk2, sk2 = keypair_factory(512)
    a = pk.encrypt(1)
    with pytest.raises(NotImplementedError, match="two ciphertexts"):
        a * pk.encrypt(2)
    with pytest.raises(ValueError, match="different public keys"):
        a + pk2.encrypt(1)
    with pytest.raises(ValueError, match="different public keys"):
        a + EncodedNumber.encode(pk2, 1)
    with pytest.raises(ValueError, match="different key"):
        sk2.decrypt(a)
    with pytest.raises(ValueError, match="more negative"):
        a.decrease_exponent_to(a.exponent + 1)
    with pytest.raises(TypeError, match="ciphertext should be an integer"):
        EncryptedNumber(pk, a)
    with pytest.raises(TypeError, match="PaillierPublicKey"):
        EncryptedNumber("pk", 5)
    with pytest.raises(TypeError, match="ciphertext should be an integer"):
        EncryptedNumber(pk, 1.5)
    # an mpz ciphertext (from gmpy2 arithmetic) is taken as the int it is
    c = EncryptedNumber(pk, gmpy2.mpz(a.ciphertext()), a.exponent)
    assert type(c.ciphertext()) is int and sk.decrypt(c) == 1
    with pytest.raises(ValueError, match="Scalar out of bounds"):
        a._raw_mul(pk.n)


def test_overflow_is_detected_not_silent(keypair_factory):
    pk, sk = keypair_factory(256)
    big = pk.encrypt(pk.max_int)
    with pytest.raises(OverflowError):
        sk.decrypt(big + big)


# -- properties -------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(), st.integers())
def test_property_int_homomorphisms(keypair_factory, x, y):
    pk, sk = keypair_factory(512)
    bound = pk.max_int // 1024
    x, y = x % bound - bound // 2, y % 1000 - 500
    ex = pk.encrypt(x)
    assert sk.decrypt(ex) == x
    assert sk.decrypt(ex + pk.encrypt(y)) == x + y
    assert sk.decrypt(ex * y) == x * y


@SETTINGS
@given(st.one_of(st.just(0.0), st.floats(1e-30, 1e12), st.floats(-1e12, -1e-30)),
       st.one_of(st.just(0.0), st.floats(1e-30, 1e3), st.floats(-1e3, -1e-30)))
def test_property_float_homomorphisms(keypair_factory, x, y):
    # magnitudes far apart (1e-161 + 1.0) need more than a 512-bit key's max_int, as in
    # python-paillier: that is a ValueError, tested in test_encoding_boundaries
    pk, sk = keypair_factory(512)
    ex = pk.encrypt(x)
    assert sk.decrypt(ex) == x
    assert sk.decrypt(ex + y) == pytest.approx(x + y, rel=1e-12, abs=1e-12)
    assert sk.decrypt(ex * y) == pytest.approx(x * y, rel=1e-12, abs=1e-300)


# -- python-paillier parity and hardening -----------------------------------------------------

def test_keys_numbers_and_vectors_pickle(keypair_factory):
    import pickle

    pk, sk = keypair_factory(512)
    x = pk.encrypt(-2.75)
    v = pk.encrypt_vector([1.5, -3.0])
    ring = paillier.PaillierPrivateKeyring([sk])
    pk2, sk2, x2, v2, ring2 = pickle.loads(pickle.dumps((pk, sk, x, v, ring)))
    assert pk2 == pk and pk2.hs == pk.hs and pk2.mode == pk.mode  # the DJN base travels
    assert sk2 == sk and sk2.hp == sk.hp and sk2.public_key is pk2
    assert sk2.decrypt(x2) == -2.75 and x2.exponent == x.exponent
    assert list(sk2.decrypt_vector(v2)) == [1.5, -3.0]
    assert ring2.decrypt(pk2.encrypt(7)) == 7
    assert sk.decrypt(pk2.encrypt(5) + x) == 2.25  # the copy encrypts for the original


def test_error_messages_do_not_carry_the_plaintext(keypair_factory):
    pk, _ = keypair_factory(256)
    secret = pk.n + 987654321987654321
    for fn in (lambda: pk.raw_encrypt(secret), lambda: pk.raw_encrypt(-secret),
               lambda: pk.raw_encrypt_batch([1, secret]), lambda: pk.encrypt(secret),
               lambda: pk.encrypt(-secret), lambda: pk.encrypt_vector([1, secret]),
               lambda: pk.encrypt_vector(np.array([secret], dtype=object))):
        with pytest.raises(ValueError) as info:
            fn()
        text = str(info.value)
        assert "987654321" not in text and ("max_int" in text or "[0, n)" in text), text


def test_private_key_set_up_runs_on_constant_time_exponentiations(keypair_factory,
                                                                    monkeypatch):
    """Key set-up computes the same values as python-paillier, but only through
    mpz_powm_sec: no extended Euclid (gmpy2.invert) and no variable-time powmod on p, q."""
    from phe import paillier as phe

    pk, sk = keypair_factory(512)
    expected = phe.PaillierPrivateKey(phe.PaillierPublicKey(pk.n), sk.p, sk.q)
    hs = pk.hs  # made lazily by a variable-time powmod on public values, so before the patch
    calls = []

    def forbidden(name):
        def fn(*args):
            raise AssertionError(f"key set-up called gmpy2.{name}")
        return fn

    real_sec = gmpy2.powmod_sec
    monkeypatch.setattr(gmpy2, "invert", forbidden("invert"))
    monkeypatch.setattr(gmpy2, "powmod", forbidden("powmod"))
    monkeypatch.setattr(gmpy2, "powmod_sec",
                        lambda b, e, m: calls.append(int(e).bit_length()) or real_sec(b, e, m))
    key = paillier.PaillierPrivateKey(paillier.PaillierPublicKey(pk.n, hs=hs), sk.p, sk.q)
    assert (key.hp, key.hq, key.p_inverse) == (expected.hp, expected.hq, expected.p_inverse)
    # three inverses by Fermat (exponents p-2, q-2, q-2) and the n-th residue check of hs
    assert len(calls) == 4
