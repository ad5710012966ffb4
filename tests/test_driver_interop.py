"""Bit-for-bit interoperability with python-paillier (phe 1.5), in both directions."""

import random

import pytest

from montpipe.driver import paillier

phe = pytest.importorskip("phe.paillier", reason="phe is a test dependency (pip install .[test])")


@pytest.fixture(scope="module", params=[512, 1024])
def pair(request, keypair_factory):
    pk, sk = keypair_factory(request.param)
    ppk = phe.PaillierPublicKey(pk.n)
    psk = phe.PaillierPrivateKey(ppk, sk.p, sk.q)
    return pk, sk, ppk, psk


def test_constants_match(pair):
    pk, sk, ppk, psk = pair
    assert (pk.g, pk.nsquare, pk.max_int) == (ppk.g, ppk.nsquare, ppk.max_int)
    assert (sk.p, sk.q, sk.psquare, sk.qsquare, sk.p_inverse, sk.hp, sk.hq) == (
        psk.p, psk.q, psk.psquare, psk.qsquare, psk.p_inverse, psk.hp, psk.hq)


def test_same_r_value_gives_the_same_ciphertext(pair):
    pk, sk, ppk, psk = pair
    rng = random.Random(1)
    for value in [0, 1, -1, 17, -123456789, 0.5, -3.75, 1e-6, 2.0**70, pk.max_int, -pk.max_int]:
        r = rng.randrange(1, pk.n)
        ours = pk.encrypt(value, r_value=r)
        theirs = ppk.encrypt(value, r_value=r)
        assert ours.ciphertext(be_secure=False) == theirs.ciphertext(be_secure=False)
        assert ours.exponent == theirs.exponent
    for m in [0, 5, pk.n - 1, pk.n - pk.max_int]:
        r = rng.randrange(1, pk.n)
        assert pk.raw_encrypt(m, r_value=r) == ppk.raw_encrypt(m, r_value=r)


def test_encodings_match(pair):
    pk, _, ppk, _ = pair
    from phe import EncodedNumber as PheEncoded

    for v in [0, 3, -3, 0.1, -0.1, 123.456, 1e-20, -7e15]:
        for precision in [None, 1e-4]:
            a = paillier.EncodedNumber.encode(pk, v, precision)
            b = PheEncoded.encode(ppk, v, precision)
            assert (a.encoding, a.exponent) == (b.encoding, b.exponent)


@pytest.mark.parametrize("mode", ["djn", "standard"])
def test_ours_decrypts_in_phe(pair, mode):
    pk, sk, ppk, psk = pair
    pk = paillier.PaillierPublicKey(pk.n, mode=mode)
    for v in [0, 42, -42, 2.5, -1e-3]:
        c = pk.encrypt(v)
        assert psk.decrypt(phe.EncryptedNumber(ppk, c.ciphertext(), c.exponent)) == v
    a, b = pk.encrypt(1.5), pk.encrypt(-4)
    for ours, expected in [(a + b, -2.5), (a * 3, 4.5), (b * -0.25, 1.0), (a - 2, -0.5)]:
        theirs = phe.EncryptedNumber(ppk, ours.ciphertext(), ours.exponent)
        assert psk.decrypt(theirs) == expected


def test_phe_decrypts_in_ours(pair):
    pk, sk, ppk, psk = pair
    for v in [0, 42, -42, 2.5, -1e-3, 10**30]:
        c = ppk.encrypt(v)
        assert sk.decrypt(paillier.EncryptedNumber(pk, c.ciphertext(), c.exponent)) == v
    a, b = ppk.encrypt(1.5), ppk.encrypt(-4)
    for theirs, expected in [(a + b, -2.5), (a * 3, 4.5), (b * -0.25, 1.0)]:
        ours = paillier.EncryptedNumber(pk, theirs.ciphertext(), theirs.exponent)
        assert sk.decrypt(ours) == expected
        # and homomorphic operations on our side continue from phe's ciphertexts
        assert sk.decrypt(ours * 2 + 1) == expected * 2 + 1


def test_scalar_products_are_bit_identical(pair):
    pk, sk, ppk, psk = pair
    r = 987654321
    ours, theirs = pk.encrypt(7, r_value=r), ppk.encrypt(7, r_value=r)
    for k in [3, -3, 0.5, -2.25]:
        assert (ours * k).ciphertext(False) == (theirs * k).ciphertext(False)
    assert (ours + ours).ciphertext(False) == (theirs + theirs).ciphertext(False)


def test_drop_in_names_exist():
    import phe.paillier as ref

    for name in ["generate_paillier_keypair", "PaillierPublicKey", "PaillierPrivateKey",
                 "PaillierPrivateKeyring", "EncryptedNumber", "EncodedNumber"]:
        assert hasattr(ref, name) and hasattr(paillier, name)
    for name in ["raw_encrypt", "encrypt", "encrypt_encoded", "get_random_lt_n"]:
        assert callable(getattr(paillier.PaillierPublicKey, name))
    for name in ["raw_decrypt", "decrypt", "decrypt_encoded", "from_totient", "h_function",
                 "l_function", "crt"]:
        assert callable(getattr(paillier.PaillierPrivateKey, name))
    for name in ["ciphertext", "obfuscate", "decrease_exponent_to", "_raw_mul", "_raw_add"]:
        assert callable(getattr(paillier.EncryptedNumber, name))
