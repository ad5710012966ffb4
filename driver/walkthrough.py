"""A short walkthrough of the Paillier API on the default backend (``make demo``).

Run it with ``python -m montpipe.driver.walkthrough [--key-bits N]``. Every number it prints is
computed as it runs; nothing is canned.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import default_backend, paillier


def _timed(label: str, fn, *, per: int | None = None):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    extra = f"  ({dt / per * 1e3:.3f} ms each)" if per else ""
    print(f"  {label:<52} {dt * 1e3:9.1f} ms{extra}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key-bits", type=int, default=2048, help="Paillier modulus size")
    ap.add_argument("--samples", type=int, default=569, help="rows of the feature matrix")
    ap.add_argument("--features", type=int, default=30, help="columns of the feature matrix")
    args = ap.parse_args(argv)

    backend = default_backend()
    print(f"montpipe Paillier walkthrough — backend: {backend.describe()}")
    print(f"\n1. Key generation ({args.key_bits}-bit n, primes from the OS CSPRNG)")
    pk, sk = _timed("generate_paillier_keypair", lambda: paillier.generate_paillier_keypair(
        n_length=args.key_bits))
    print(f"  public key {pk.key_id}: n has {pk.n.bit_length()} bits")

    print("\n2. The python-paillier API, one number at a time")
    _timed("DJN fixed-base table for this key (once per key)", lambda: pk.encrypt(0))
    a = _timed("encrypt(3.25)", lambda: pk.encrypt(3.25))
    b = _timed("encrypt(-1.5)", lambda: pk.encrypt(-1.5))
    s = _timed("a + b, a * 4, a - 0.25 (homomorphic)", lambda: (a + b, a * 4, a - 0.25))
    got = [sk.decrypt(x) for x in s]
    print(f"  decrypt -> {got}  (expected [1.75, 13.0, 3.0])")
    if got != [1.75, 13.0, 3.0]:
        raise SystemExit("walkthrough: homomorphic results are wrong")

    print(f"\n3. The batch API: a {args.samples}x{args.features} plaintext matrix times an "
          "encrypted vector (the gradient step of vertical logistic regression)")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, args.features))
    residual = rng.standard_normal(args.samples) * 0.25
    enc = _timed(f"encrypt_vector({args.samples} floats)", lambda: pk.encrypt_vector(residual),
                 per=args.samples)
    grad = _timed("X.T @ enc (one multi-exponentiation)", lambda: X.T @ enc)
    plain = _timed(f"decrypt_vector({args.features} values)", lambda: sk.decrypt_vector(grad),
                   per=args.features)
    err = float(np.max(np.abs(plain - X.T @ residual)))
    print(f"  max |decrypted - plaintext X.T @ r| = {err:.3e}")
    if err > 1e-9:
        raise SystemExit("walkthrough: encrypted gradient disagrees with the plaintext one")

    print("\n4. Serialisation (documented JSON, validated on load)")
    text = grad.to_json()
    back = paillier.EncryptedVector.from_json(text, pk)
    print(f"  {len(text)} bytes of JSON; reloaded vector decrypts equal: "
          f"{bool(np.array_equal(sk.decrypt_vector(back), plain))}")
    print(f"\nbackend statistics: {backend.stats.as_dict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
