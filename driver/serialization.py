"""JSON forms of keys and ciphertexts (the format is documented in docs/serialization.md).

Every document is an object with ``"type"`` and ``"version"``; big integers are strings of
lower-case hexadecimal with a ``0x`` prefix (JSON numbers lose precision in most readers).
Loading validates everything and raises ``ValueError`` with the field at fault.

This module reads and writes documents as plain fields (integers, exponents, key ids); the
classes in :mod:`montpipe.driver.paillier` and :mod:`montpipe.driver.vector` build themselves
from those fields and add the checks that need cryptography (primality, the DJN base). It
imports neither, so the layers point one way: encoding ← serialization ← paillier ← vector.
"""

from __future__ import annotations

import json
import math

from .encoding import exponent_range

VERSION = 1
PUBLIC_KEY = "montpipe/paillier-public-key"
PRIVATE_KEY = "montpipe/paillier-private-key"
ENCRYPTED_NUMBER = "montpipe/paillier-encrypted-number"
ENCRYPTED_VECTOR = "montpipe/paillier-encrypted-vector"

#: how deeply a document may nest (a private key holds a public key: 2); JSON nested deeper is
#: refused before it is parsed, so hostile nesting costs neither recursion nor memory
MAX_DEPTH = 8


def dumps(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (a scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text) -> dict:
    """Parse a document: a JSON object, at most :data:`MAX_DEPTH` deep; else ``ValueError``
    (``TypeError`` for an argument that is not text)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"expected a JSON string, not {type(text).__name__}")
    if _depth(text) > MAX_DEPTH:
        raise ValueError(f"malformed JSON: nested more than {MAX_DEPTH} deep; montpipe's "
                         f"documents nest at most 2 deep")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
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
        shown = repr(v) if not isinstance(v, str) else repr(v[:40])
        raise ValueError(f"{where}: field {key!r} must be a '0x…' hexadecimal string, "
                         f"not {shown}")
    try:
        return int(v, 16)
    except ValueError:
        raise ValueError(f"{where}: field {key!r} is not hexadecimal: {v[:40]!r}") from None


def _exponent(doc: dict, n: int, where: str) -> int:
    if "exponent" not in doc:
        raise ValueError(f"{where}: missing field 'exponent'")
    v = doc["exponent"]
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{where}: field 'exponent' must be an integer, not {v!r}")
    lo, hi = exponent_range(n)
    if not lo <= v <= hi:
        raise ValueError(
            f"{where}: field 'exponent' is {v}, outside [{lo}, {hi}]: below, every value "
            f"under this {n.bit_length()}-bit key decodes to zero; above, every nonzero value "
            f"exceeds the largest float64 times the largest integer the key holds"
        )
    return v


def _check_header(doc: dict, kind: str) -> None:
    got = doc.get("type")
    if got != kind:
        raise ValueError(f"expected a {kind!r} document, not type {got!r}")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{kind}: unsupported version {doc.get('version')!r}; this library reads {VERSION}"
        )


def _check_key_id(doc: dict, key_id: str, where: str) -> None:
    got = doc.get("key_id")
    if got != key_id:
        raise ValueError(
            f"{where}: encrypted under key {got!r}, but loading with key {key_id!r}"
        )


def _check_ciphertext(c: int, n: int, where: str) -> int:
    if not 0 < c < n * n:
        raise ValueError(f"{where}: ciphertext is outside [1, n**2) for this key")
    if math.gcd(c, n) != 1:
        raise ValueError(f"{where}: ciphertext is not coprime to n, so it is not a ciphertext")
    return c


# -- keys ---------------------------------------------------------------------------------

def public_key_to_dict(n: int, key_id: str, mode: str, hs: int | None = None) -> dict:
    doc = {"type": PUBLIC_KEY, "version": VERSION, "key_id": key_id, "n": _hex(n),
           "mode": mode}
    if hs is not None:
        doc["hs"] = _hex(hs)
    return doc


def public_key_fields(doc: dict) -> tuple[int, str, int | None, str | None]:
    """``(n, mode, hs or None, key_id or None)`` of a public-key document, in form only (the
    key checks what they mean)."""
    _check_header(doc, PUBLIC_KEY)
    n = _int(doc, "n", PUBLIC_KEY)
    hs = _int(doc, "hs", PUBLIC_KEY) if "hs" in doc else None
    mode = doc.get("mode", "djn")
    if mode not in ("djn", "standard"):
        raise ValueError(f"{PUBLIC_KEY}: mode must be 'djn' or 'standard', not {mode!r}")
    key_id = doc.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        raise ValueError(f"{PUBLIC_KEY}: key_id must be a string, not {key_id!r}")
    return n, mode, hs, key_id


def private_key_to_dict(public_doc: dict, p: int, q: int) -> dict:
    return {"type": PRIVATE_KEY, "version": VERSION, "public_key": public_doc,
            "p": _hex(p), "q": _hex(q)}


def private_key_fields(doc: dict) -> tuple[dict, int, int]:
    """``(public-key document, p, q)`` of a private-key document."""
    _check_header(doc, PRIVATE_KEY)
    if not isinstance(doc.get("public_key"), dict):
        raise ValueError(f"{PRIVATE_KEY}: missing or malformed field 'public_key'")
    return doc["public_key"], _int(doc, "p", PRIVATE_KEY), _int(doc, "q", PRIVATE_KEY)


# -- ciphertexts --------------------------------------------------------------------------

def encrypted_number_to_dict(key_id: str, exponent: int, ciphertext: int) -> dict:
    return {"type": ENCRYPTED_NUMBER, "version": VERSION, "key_id": key_id,
            "exponent": exponent, "ciphertext": _hex(ciphertext)}


def encrypted_number_fields(doc: dict, n: int, key_id: str) -> tuple[int, int]:
    """``(ciphertext, exponent)`` of an encrypted-number document for the key ``(n, key_id)``."""
    _check_header(doc, ENCRYPTED_NUMBER)
    _check_key_id(doc, key_id, ENCRYPTED_NUMBER)
    c = _check_ciphertext(_int(doc, "ciphertext", ENCRYPTED_NUMBER), n, ENCRYPTED_NUMBER)
    return c, _exponent(doc, n, ENCRYPTED_NUMBER)


def encrypted_vector_to_dict(key_id: str, exponent: int, ciphertexts: list[int]) -> dict:
    return {"type": ENCRYPTED_VECTOR, "version": VERSION, "key_id": key_id,
            "exponent": exponent, "ciphertexts": [_hex(c) for c in ciphertexts]}


def encrypted_vector_fields(doc: dict, n: int, key_id: str) -> tuple[list[int], int]:
    """``(ciphertexts, exponent)`` of an encrypted-vector document for the key
    ``(n, key_id)``."""
    _check_header(doc, ENCRYPTED_VECTOR)
    _check_key_id(doc, key_id, ENCRYPTED_VECTOR)
    items = doc.get("ciphertexts")
    if not isinstance(items, list):
        raise ValueError(f"{ENCRYPTED_VECTOR}: field 'ciphertexts' must be a list")
    exponent = _exponent(doc, n, ENCRYPTED_VECTOR)
    cts = []
    for i, item in enumerate(items):
        where = f"{ENCRYPTED_VECTOR}: ciphertexts[{i}]"
        cts.append(_check_ciphertext(_int({"c": item}, "c", where), n, where))
    return cts, exponent
