"""JSON forms of keys and ciphertexts (the format is documented in docs/serialization.md).

Every document is an object with ``"type"`` and ``"version"``; big integers are strings of
lower-case hexadecimal with a ``0x`` prefix (JSON numbers lose precision in most readers).
Loading validates everything and raises ``ValueError`` with the field at fault.
"""

from __future__ import annotations

import json
import math

import gmpy2

from .paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey

VERSION = 1
PUBLIC_KEY = "montpipe/paillier-public-key"
PRIVATE_KEY = "montpipe/paillier-private-key"
ENCRYPTED_NUMBER = "montpipe/paillier-encrypted-number"
ENCRYPTED_VECTOR = "montpipe/paillier-encrypted-vector"


def dumps(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def loads(text) -> dict:
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"expected a JSON string, not {type(text).__name__}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, not {type(doc).__name__}")
    return doc


def _hex(x: int) -> str:
    return hex(int(x))


def _int(doc: dict, key: str, where: str) -> int:
    if key not in doc:
        raise ValueError(f"{where}: missing field {key!r}")
    v = doc[key]
    if not isinstance(v, str) or not v.startswith("0x"):
        raise ValueError(f"{where}: field {key!r} must be a '0x…' hexadecimal string, not {v!r}")
    try:
        return int(v, 16)
    except ValueError:
        raise ValueError(f"{where}: field {key!r} is not hexadecimal: {v[:40]!r}") from None


def _small_int(doc: dict, key: str, where: str) -> int:
    if key not in doc:
        raise ValueError(f"{where}: missing field {key!r}")
    v = doc[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{where}: field {key!r} must be an integer, not {v!r}")
    return v


def _check_header(doc: dict, kind: str) -> None:
    got = doc.get("type")
    if got != kind:
        raise ValueError(f"expected a {kind!r} document, not type {got!r}")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{kind}: unsupported version {doc.get('version')!r}; this library reads {VERSION}"
        )


def _check_key_id(doc: dict, public_key: PaillierPublicKey, where: str) -> None:
    key_id = doc.get("key_id")
    if key_id != public_key.key_id:
        raise ValueError(
            f"{where}: encrypted under key {key_id!r}, but loading with key {public_key.key_id!r}"
        )


def _check_ciphertext(c: int, public_key: PaillierPublicKey, where: str) -> int:
    if not 0 < c < public_key.nsquare:
        raise ValueError(f"{where}: ciphertext is outside [1, n**2) for this key")
    if math.gcd(c, public_key.n) != 1:
        raise ValueError(f"{where}: ciphertext is not coprime to n, so it is not a ciphertext")
    return c


# -- keys ---------------------------------------------------------------------------------

def public_key_to_dict(pk: PaillierPublicKey, *, with_hs: bool = False) -> dict:
    doc = {"type": PUBLIC_KEY, "version": VERSION, "key_id": pk.key_id, "n": _hex(pk.n),
           "mode": pk.mode}
    if with_hs:
        doc["hs"] = _hex(pk.hs)
    return doc


def public_key_from_dict(doc: dict, backend=None, *, trust_hs: bool = False) -> PaillierPublicKey:
    _check_header(doc, PUBLIC_KEY)
    n = _int(doc, "n", PUBLIC_KEY)
    if n < 15 or n % 2 == 0:
        raise ValueError(f"{PUBLIC_KEY}: n must be an odd composite modulus, not {n}")
    hs = _int(doc, "hs", PUBLIC_KEY) if "hs" in doc else None
    if hs is not None and not (1 < hs < n * n and math.gcd(hs, n) == 1):
        raise ValueError(f"{PUBLIC_KEY}: hs must be in (1, n**2) and coprime to n")
    if not trust_hs:
        # A DJN base chosen by someone else could be one whose powers do not hide anything
        # (hs = 1 makes ciphertexts readable by all); by default draw our own.
        hs = None
    mode = doc.get("mode", "djn")
    if mode not in ("djn", "standard"):
        raise ValueError(f"{PUBLIC_KEY}: mode must be 'djn' or 'standard', not {mode!r}")
    pk = PaillierPublicKey(n, backend=backend, mode=mode, hs=hs)
    if "key_id" in doc and doc["key_id"] != pk.key_id:
        raise ValueError(f"{PUBLIC_KEY}: key_id {doc['key_id']!r} does not match n")
    return pk


def private_key_to_dict(sk: PaillierPrivateKey) -> dict:
    return {"type": PRIVATE_KEY, "version": VERSION,
            "public_key": public_key_to_dict(sk.public_key, with_hs=True),
            "p": _hex(sk.p), "q": _hex(sk.q)}


def private_key_from_dict(doc: dict, backend=None) -> PaillierPrivateKey:
    _check_header(doc, PRIVATE_KEY)
    if not isinstance(doc.get("public_key"), dict):
        raise ValueError(f"{PRIVATE_KEY}: missing or malformed field 'public_key'")
    # the key's owner wrote this h_s for itself: keep it (its table is then reusable)
    pk = public_key_from_dict(doc["public_key"], backend=backend, trust_hs=True)
    p, q = _int(doc, "p", PRIVATE_KEY), _int(doc, "q", PRIVATE_KEY)
    if p * q != pk.n:
        raise ValueError(f"{PRIVATE_KEY}: p * q does not equal the public key's n")
    if p == q or not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
        raise ValueError(f"{PRIVATE_KEY}: p and q must be two different primes")
    return PaillierPrivateKey(pk, p, q)


# -- ciphertexts --------------------------------------------------------------------------

def encrypted_number_to_dict(x: EncryptedNumber) -> dict:
    return {"type": ENCRYPTED_NUMBER, "version": VERSION, "key_id": x.public_key.key_id,
            "exponent": x.exponent, "ciphertext": _hex(x.ciphertext(be_secure=True))}


def encrypted_number_from_dict(doc: dict, public_key: PaillierPublicKey) -> EncryptedNumber:
    _check_header(doc, ENCRYPTED_NUMBER)
    _check_key_id(doc, public_key, ENCRYPTED_NUMBER)
    c = _check_ciphertext(_int(doc, "ciphertext", ENCRYPTED_NUMBER), public_key,
                          ENCRYPTED_NUMBER)
    x = EncryptedNumber(public_key, c, _small_int(doc, "exponent", ENCRYPTED_NUMBER))
    x._set_obfuscated()
    return x


def encrypted_vector_to_dict(v) -> dict:
    return {"type": ENCRYPTED_VECTOR, "version": VERSION, "key_id": v.public_key.key_id,
            "exponent": v.exponent, "ciphertexts": [_hex(c) for c in v.ciphertexts(True)]}


def encrypted_vector_from_dict(doc: dict, public_key: PaillierPublicKey):
    from .vector import EncryptedVector

    _check_header(doc, ENCRYPTED_VECTOR)
    _check_key_id(doc, public_key, ENCRYPTED_VECTOR)
    items = doc.get("ciphertexts")
    if not isinstance(items, list):
        raise ValueError(f"{ENCRYPTED_VECTOR}: field 'ciphertexts' must be a list")
    cts = []
    for i, item in enumerate(items):
        where = f"{ENCRYPTED_VECTOR}: ciphertexts[{i}]"
        cts.append(_check_ciphertext(_int({"c": item}, "c", where), public_key, where))
    exponent = _small_int(doc, "exponent", ENCRYPTED_VECTOR)
    return EncryptedVector(public_key, cts, exponent, obfuscated=True)
