"""JSON forms of keys and ciphertexts: round trips and every way loading must refuse."""

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- hostile documents ----------------------------------------------------------------------

@pytest.mark.parametrize("exponent", [1_000_000, -10_000_000, 10_000, -10_000])
def test_exponents_no_value_can_need_are_refused(keys, exponent):
    pk, _ = keys
    doc = {**_doc(pk.encrypt_vector([1.0, 2.0, 3.0]).to_json()), "exponent": exponent}
    with pytest.raises(ValueError, match=r"field 'exponent' is -?\d+, outside \[-396, 384\]"):
        EncryptedVector.from_json(json.dumps(doc), pk)
    number = {**_doc(pk.encrypt(1.5).to_json()), "exponent": exponent}
    with pytest.raises(ValueError, match="field 'exponent'"):
        EncryptedNumber.from_json(json.dumps(number), pk)


def test_exponent_range_holds_every_float_and_products(keys):
    from montpipe.driver.encoding import exponent_range

    pk, sk = keys
    lo, hi = exponent_range(pk.n)
    for values in ([5e-324], [1.7e308], [-2.2250738585072014e-308]):
        v = EncryptedVector.from_json(pk.encrypt_vector(values).to_json(), pk)
        np.testing.assert_array_equal(sk.decrypt_vector(v), values)
    for product in (pk.encrypt(1e-150) * 1e-150, pk.encrypt(1e150) * 1e150):
        loaded = EncryptedNumber.from_json(product.to_json(), pk)
        assert sk.decrypt(loaded) == pytest.approx(sk.decrypt(product), rel=1e-12)
    # the bounds are where they say: below lo the largest mantissa decodes to 0.0
    assert pk.max_int / 16 ** -(lo - 1) == 0.0
    assert 16 ** (hi - 1) < pk.max_int * 2 ** 1024 <= 16 ** hi


def _order_two(sk):
    """The square root of 1 modulo n**2 that is 1 modulo p**2 and -1 modulo q**2."""
    import gmpy2

    p2, q2 = sk.psquare, sk.qsquare
    return int((1 + p2 * ((-2 * gmpy2.invert(p2, q2)) % q2)) % (p2 * q2))


def test_useless_djn_bases_are_refused(keys):
    pk, sk = keys
    doc = _doc(sk.to_json())
    nth_nonresidue = pk.hs * (pk.n + 1) % pk.nsquare   # an encryption of 1, not of 0
    for hs, message in [(pk.n + 1, "±1 modulo n"), (pk.nsquare - 1, "±1 modulo n"),
                        (_order_two(sk), "order 2"), (nth_nonresidue, "not an n-th residue")]:
        hostile = {**doc, "public_key": {**doc["public_key"], "hs": hex(hs)}}
        with pytest.raises(ValueError, match=message):
            PaillierPrivateKey.from_json(json.dumps(hostile))
        if message != "not an n-th residue":  # the public key alone cannot tell that one
            with pytest.raises(ValueError, match=message):
                PaillierPublicKey.from_json(json.dumps(hostile["public_key"]), trust_hs=True)
            with pytest.raises(ValueError, match=message):
                PaillierPublicKey(pk.n, hs=hs)


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, "{\"a\":" * 5000 + "1" + "}" * 5000,
                                  "[" * 200_000])
def test_deep_json_is_a_value_error(text):
    with pytest.raises(ValueError, match="nested more than 8 deep"):
        PaillierPublicKey.from_json(text)


def test_moduli_that_are_no_paillier_moduli_are_refused(keys):
    import gmpy2

    pk, sk = keys
    prime = int(gmpy2.next_prime(pk.n))
    for n, message in [(prime, "is prime"), (sk.p * sk.p, "perfect power"),
                       (sk.p ** 3, "perfect power"), (101 * sk.q, "prime factor below"),
                       (15, "at least 32 bits"), (3 * 5 * 7 * 11 * 13 * 17 * 19 * 23 * 29 * 31,
                                                       "prime factor below")]:
        doc = {**_doc(pk.to_json()), "n": hex(n)}
        doc.pop("key_id")
        with pytest.raises(ValueError, match=message):
            PaillierPublicKey.from_json(json.dumps(doc))
    with pytest.warns(paillier.SecurityWarning, match="512-bit Paillier modulus"):
        PaillierPublicKey.from_json(pk.to_json())


# -- property: every mutated document loads as what it says, or is a ValueError ---------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
    | st.sampled_from(["0x", "0x0", "0x1", "-0x5", "0xzz", "0x" + "f" * 300]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def documents(keys):
    pk, sk = keys
    return {
        "public": json.loads(pk.to_json(with_hs=True)),
        "private": json.loads(sk.to_json()),
        "number": json.loads((pk.encrypt(-7.25) * 3).to_json()),
        "vector": json.loads(pk.encrypt_vector([0.5, -2.0, 1e-9]).to_json()),
    }


def _mutate(doc, draw):
    """One structural mutation somewhere in the (nested) document."""
    doc = json.loads(json.dumps(doc))
    target = doc
    if "public_key" in doc and draw(st.booleans()):
        target = doc["public_key"]
    if "ciphertexts" in doc and draw(st.booleans()):
        items = doc["ciphertexts"]
        i = draw(st.integers(0, len(items) - 1))
        items[i] = draw(json_values | st.integers(0, 2**1100).map(hex))
        return doc
    key = draw(st.sampled_from(sorted(target)) | st.text(max_size=5))
    action = draw(st.sampled_from(["replace", "delete", "hex", "exponent"]))
    if action == "delete":
        target.pop(key, None)
    elif action == "hex":
        target[key] = hex(draw(st.integers(-2**1100, 2**1100)))
    elif action == "exponent":
        target["exponent"] = draw(st.integers(-2000, 2000))
    else:
        target[key] = draw(json_values)
    return doc


def _text_mutation(text, draw):
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 8)))
    return text[:i] + draw(st.text(max_size=4)) + text[j:]


@pytest.mark.filterwarnings("ignore::montpipe.driver.paillier.SecurityWarning")
@given(data=st.data())
def test_property_mutated_documents_load_as_written_or_are_value_errors(keys, documents,
                                                                        data):
    pk, sk = keys
    kind = data.draw(st.sampled_from(sorted(documents)))
    original = documents[kind]
    if data.draw(st.booleans()):
        doc = _mutate(original, data.draw)
        text = json.dumps(doc)
    else:
        text = _text_mutation(json.dumps(original), data.draw)
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
    load = {"public": lambda t: PaillierPublicKey.from_json(t, trust_hs=True),
            "private": PaillierPrivateKey.from_json,
            "number": lambda t: EncryptedNumber.from_json(t, pk),
            "vector": lambda t: EncryptedVector.from_json(t, pk)}[kind]
    try:
        loaded = load(text)
    except ValueError:
        return
    # it loaded: then it is exactly what the document says, and a valid object of its kind
    assert isinstance(doc, dict)
    if kind == "public":
        assert loaded.n == int(doc["n"], 16)
        assert "hs" not in doc or loaded.hs == int(doc["hs"], 16)   # without one, it draws
    elif kind == "private":
        assert loaded.p * loaded.q == loaded.public_key.n == int(doc["public_key"]["n"], 16)
        hs = doc["public_key"].get("hs")
        assert hs is None or loaded.public_key.hs == int(hs, 16)
    elif kind == "number":
        assert loaded.ciphertext(False) == int(doc["ciphertext"], 16)
        assert loaded.exponent == doc["exponent"]
        # a forged ciphertext may decrypt into the overflow band, and aligning a high exponent
        # may need a factor beyond max_int (as in python-paillier)
        with contextlib.suppress(OverflowError, ValueError):
            sk.decrypt(loaded + 1.0)
    else:
        assert loaded.ciphertexts(False) == [int(c, 16) for c in doc["ciphertexts"]]
        assert loaded.exponent == doc["exponent"]
        with contextlib.suppress(OverflowError, ValueError):
            sk.decrypt_vector(loaded + 1.0)
    if doc == original:
        assert json.loads(load(json.dumps(original)).to_json())["type"] == original["type"]


@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=6),
       st.integers(-10**6, 10**6))
def test_property_documents_round_trip(keys, values, integer):
    pk, sk = keys
    original = pk.encrypt_vector(values)
    v = EncryptedVector.from_json(original.to_json(), pk)
    assert v.ciphertexts(False) == original.ciphertexts(False)
    assert v.exponent == original.exponent
    assert list(sk.decrypt_vector(v)) == list(sk.decrypt_vector(original))
    x = EncryptedNumber.from_json(pk.encrypt(integer).to_json(), pk)
    assert sk.decrypt(x) == integer
