"""JSON forms of keys and ciphertexts: round trips and every way loading must refuse."""

import json

import numpy as np
import pytest

from montpipe.driver import EncryptedVector, paillier
from montpipe.driver.paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey


@pytest.fixture(scope="module")
def keys(keypair_factory):
    return keypair_factory(512)


def test_key_round_trips(keys):
    pk, sk = keys
    pk2 = PaillierPublicKey.from_json(pk.to_json())
    sk2 = PaillierPrivateKey.from_json(sk.to_json())
    assert pk2 == pk and sk2 == sk and sk2.public_key == pk
    assert "hs" not in json.loads(pk.to_json())
    # a received DJN base is not trusted unless asked: hs = 1 would hide nothing
    hostile = json.dumps({**json.loads(pk.to_json()), "hs": hex(pk.n + 1)})
    assert PaillierPublicKey.from_json(hostile).hs != pk.n + 1
    assert PaillierPublicKey.from_json(pk.to_json(with_hs=True), trust_hs=True).hs == pk.hs
    assert sk2.public_key.hs == pk.hs  # the owner's own base travels with the private key
    doc = json.loads(pk.to_json())
    assert doc["type"] == "montpipe/paillier-public-key" and doc["version"] == 1
    assert doc["n"] == hex(pk.n) and doc["key_id"] == pk.key_id
    # a ciphertext made with the loaded key decrypts with the original and back
    assert sk.decrypt(pk2.encrypt(-3.25)) == -3.25
    assert sk2.decrypt(pk.encrypt(11)) == 11


def test_ciphertext_round_trips(keys):
    pk, sk = keys
    x = pk.encrypt(2.5) * 3
    assert not x.is_obfuscated
    text = x.to_json()
    assert x.is_obfuscated  # serialising obfuscates first
    y = EncryptedNumber.from_json(text, pk)
    assert sk.decrypt(y) == 7.5 and y.exponent == x.exponent
    v = pk.encrypt_vector(np.array([1.5, -2.0, 1e-3]))
    w = EncryptedVector.from_json(v.to_json(), pk)
    np.testing.assert_array_equal(sk.decrypt_vector(w), [1.5, -2.0, 1e-3])


def _doc(text):
    return json.loads(text)


def test_bad_documents_are_clear_value_errors(keys, keypair_factory):
    pk, sk = keys
    other, _ = keypair_factory(256)
    x = pk.encrypt(1)
    good_number = _doc(x.to_json())
    good_vector = _doc(pk.encrypt_vector([1.0, 2.0]).to_json())
    cases = [
        (lambda: PaillierPublicKey.from_json("{not json"), "malformed JSON"),
        (lambda: PaillierPublicKey.from_json("[1, 2]"), "expected a JSON object"),
        (lambda: PaillierPublicKey.from_json(x.to_json()), "expected a 'montpipe/paillier-public"),
        (lambda: PaillierPublicKey.from_json(json.dumps({**_doc(pk.to_json()), "version": 2})),
         "unsupported version 2"),
        (lambda: PaillierPublicKey.from_json(json.dumps({**_doc(pk.to_json()), "n": 12345})),
         "hexadecimal string"),
        (lambda: PaillierPublicKey.from_json(json.dumps({**_doc(pk.to_json()), "n": "0xzz"})),
         "not hexadecimal"),
        (lambda: PaillierPublicKey.from_json(json.dumps({**_doc(pk.to_json()), "n": "0x10"})),
         "odd composite"),
        (lambda: PaillierPublicKey.from_json(
            json.dumps({**_doc(pk.to_json()), "key_id": "0000"})), "does not match n"),
        (lambda: PaillierPublicKey.from_json(
            json.dumps({**_doc(pk.to_json()), "hs": "0x1"}), trust_hs=True), "hs must be"),
        (lambda: PaillierPrivateKey.from_json(json.dumps({**_doc(sk.to_json()), "p": "0x3"})),
         "p \\* q does not equal"),
        (lambda: PaillierPrivateKey.from_json(json.dumps(
            {k: v for k, v in _doc(sk.to_json()).items() if k != "q"})), "missing field 'q'"),
        (lambda: EncryptedNumber.from_json(x.to_json(), other), "encrypted under key"),
        (lambda: EncryptedNumber.from_json(json.dumps({**good_number, "ciphertext": "0x0"}), pk),
         r"outside \[1, n\*\*2\)"),
        (lambda: EncryptedNumber.from_json(
            json.dumps({**good_number, "ciphertext": hex(pk.nsquare)}), pk),
         r"outside \[1, n\*\*2\)"),
        (lambda: EncryptedNumber.from_json(
            json.dumps({**good_number, "ciphertext": hex(sk.p)}), pk), "not coprime to n"),
        (lambda: EncryptedNumber.from_json(json.dumps({**good_number, "exponent": "x"}), pk),
         "'exponent' must be an integer"),
        (lambda: EncryptedVector.from_json(
            json.dumps({**good_vector, "ciphertexts": [good_vector["ciphertexts"][0], "0x0"]}),
            pk), r"ciphertexts\[1\]: ciphertext is outside"),
        (lambda: EncryptedVector.from_json(json.dumps({**good_vector, "ciphertexts": 5}), pk),
         "must be a list"),
    ]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()


def test_loading_requires_text():
    with pytest.raises(TypeError, match="expected a JSON string"):
        paillier.PaillierPublicKey.from_json(42)
