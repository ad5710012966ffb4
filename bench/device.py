"""Projected accelerator throughput against the CPU backend, one 2048-bit Paillier batch.

``python -m montpipe.bench.device`` (part of ``make bench``) runs the same batch of standard
encryptions (``r^n mod n²``), DJN encryptions and CRT decryptions through the ``model`` backend
(whose results are the CPU's and whose device time is the exact cycle model at the assumed
clock) and times the ``cpu`` backend on it, side by side in one run; it prints operations per
second for both and the multiplier-bound ceiling of the same part at the same clock, and writes
``build/bench/device.json`` and ``device.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from ..device.model import pipeline
from ..driver import paillier
from ..driver.backends.cpu import CPUBackend
from ..driver.backends.model import ModelBackend
from ._publish import publish

#: LFE5U-85F: hard multipliers; the ceiling assumes every one busy on useful products
PART_MULTIPLIERS = 156


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=0, help="default: two requests per lane")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)

    # the decryption row projects the device doing it, which only a trusted device does
    model = ModelBackend(trust_device_with_secrets=True)
    device = model.device
    cpu = CPUBackend()
    batch = args.batch or 2 * device.lanes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        pk_std, sk = paillier.generate_paillier_keypair(n_length=args.key_bits, mode="standard")
    plain = list(range(batch))
    rows = []
    for label, mode in (("standard encryption, r^n mod n²", "standard"),
                        ("DJN encryption, h_s^α mod n²", "djn"),
                        ("CRT decryption, two halves mod p² and q²", "decrypt")):
        timings = {}
        for name, backend in (("model", model), ("cpu", cpu)):
            pk = paillier.PaillierPublicKey(pk_std.n, backend=backend)
            key = paillier.PaillierPrivateKey(pk, sk.p, sk.q)
            cts = pk.raw_encrypt_batch(plain, mode="standard") if mode == "decrypt" else None
            before = dict(backend.stats.as_dict())
            samples = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                if mode == "decrypt":
                    assert key.raw_decrypt_batch(cts) == plain
                else:
                    pk.raw_encrypt_batch(plain, mode=mode)
                samples.append(time.perf_counter() - t0)
            timings[name] = statistics.median(samples)
            if name == "model":
                after = backend.stats.as_dict()
                device_s = (after["projected_device_seconds"] -
                            before["projected_device_seconds"]) / args.reps
                link_s = (after["projected_link_seconds"] -
                          before["projected_link_seconds"]) / args.reps
                word_products = (after["device_word_products"] -
                                 before["device_word_products"]) / args.reps
        # every multiplier of the part busy on the word products this batch needs (the same
        # exponentiation algorithm: windows, digit products skipped for zero digits)
        ceiling = PART_MULTIPLIERS * device.clock_mhz * 1e6 * batch / \
            (word_products * pipeline(device.width).blocks)
        rows.append({"operation": label, "batch": batch,
                     "device_ops_per_s": batch / device_s,
                     "link_ops_per_s": batch / link_s,
                     "ceiling_ops_per_s": ceiling,
                     "cpu_ops_per_s": batch / timings["cpu"],
                     "cpu_workers": cpu.workers})
    lines = [
        f"Measured by `python -m montpipe.bench.device` ({args.key_bits}-bit key, batch of "
        f"{batch}; device: {device.lanes} lanes × {2 * pipeline(device.width).blocks} "
        f"MULT18X18D, W = {device.width}, window {device.window}, {device.clock_mhz:g} MHz — "
        f"{model.source}; CPU backend on {cpu.workers} threads, medians of {args.reps}).",
        "",
        "| operation | device, projected | UART link alone | 85F ceiling at that clock "
        "| CPU backend, measured | CPU ÷ device |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['operation']} | {r['device_ops_per_s']:.1f}/s | "
                     f"{r['link_ops_per_s']:.0f}/s | {r['ceiling_ops_per_s']:.1f}/s | "
                     f"{r['cpu_ops_per_s']:.0f}/s | "
                     f"{r['cpu_ops_per_s'] / r['device_ops_per_s']:.0f}× |")
    md = "\n".join(lines) + "\n"
    publish(args.out, "device",
            {"command": "python -m montpipe.bench.device", "key_bits": args.key_bits,
             "device": model.describe()["device"], "rows": rows}, md, args.update_readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
