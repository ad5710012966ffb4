"""Federated-learning benchmark: time per iteration, montpipe against python-paillier.

The same hetero-LR iteration (host encrypts [[u_h/4]] and [[u_h²]], guest forms [[d]] and the
encrypted loss, both compute Xᵀ[[d]], mask, the arbiter decrypts) on the breast-cancer split,
in one process, side by side. python-paillier runs the iteration the way FATE 1.x's code does
with it: one EncryptedNumber at a time, Python sums, per-element scalar products. Writes
``build/bench/fl.json`` and ``build/bench/fl.md``.
"""

from __future__ import annotations

import argparse
import math
import secrets
import statistics
import time
import warnings

import numpy as np

from ..fl_demo import run
from ..fl_demo.data import load_breast_cancer_split
from ..fl_demo.protocol import Config
from ._publish import publish

LOG2 = math.log(2.0)


def montpipe_iteration_seconds(data, bits: int, reps: int) -> tuple[float, dict]:
    cfg = Config(iterations=reps, key_bits=bits)
    res = run.train(data, cfg, use_ray=False, progress=False)
    walls = [h["wall"] for h in res["history"]]
    cats = {c: statistics.median(h["seconds"][c] for h in res["history"])
            for c in run.CATEGORIES}
    return statistics.median(walls), cats


def phe_iteration_seconds(data, bits: int, reps: int) -> float:
    from phe import paillier as phe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk, sk = phe.generate_paillier_keypair(n_length=bits)
    Xg, Xh, y = data.guest_train, data.host_train, data.y_train
    wg = np.full(Xg.shape[1], 0.01)
    wh = np.full(Xh.shape[1], -0.01)
    n = len(y)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        # host
        u_h = Xh @ wh
        quarter = [pk.encrypt(float(v) / 4) for v in u_h]
        square = [pk.encrypt(float(v) * float(v)) for v in u_h]
        reg_h = pk.encrypt(0.5 * 0.01 * float(wh @ wh))
        # guest: fore-gradient and loss
        u_g = Xg @ wg
        d = [q + float(a / 4 - b / 2) for q, a, b in zip(quarter, u_g, y, strict=True)]
        coeff = 4 * (-0.5 * y + 0.25 * u_g)
        loss = sum(q * float(c) for q, c in zip(quarter, coeff, strict=True))
        loss = (loss + sum(square) * 0.125 + float(np.sum(LOG2 - 0.5 * y * u_g
                                                          + 0.125 * u_g * u_g))) * (1.0 / n)
        loss = loss + reg_h
        # both: gradients X^T [[d]] / n, masked
        grads = []
        for X in (Xg, Xh):
            g = [sum(d[i] * float(X[i, j] / n) for i in range(n)) for j in range(X.shape[1])]
            grads.append([x + secrets.randbelow(2**64) for x in g])
        # arbiter
        for g in grads:
            [sk.decrypt(x) for x in g]
        sk.decrypt(loss)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--reps", type=int, default=5, help="montpipe iterations to take a median of")
    ap.add_argument("--phe-reps", type=int, default=1, help="python-paillier iterations")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)
    data = load_breast_cancer_split(seed=0)
    rows = {}
    for bits in (int(s) for s in args.sizes.split(",")):
        mp, cats = montpipe_iteration_seconds(data, bits, args.reps)
        ph = phe_iteration_seconds(data, bits, args.phe_reps)
        rows[str(bits)] = {"montpipe": mp, "montpipe_by_category": cats, "python-paillier": ph,
                           "speedup": ph / mp}
        print(f"n={bits}: montpipe {mp:.3f} s/iteration, python-paillier {ph:.2f} s/iteration, "
              f"{ph / mp:.1f}x", flush=True)
    cmd = "python -m montpipe.bench.fl " + " ".join(argv or [])
    lines = [f"Measured by `{cmd.strip()}`: seconds per hetero-LR iteration on the "
             f"breast-cancer split ({data.n_train} training samples, full batch, parties "
             "in one process), montpipe's median of "
             f"{args.reps} iterations, python-paillier's of {args.phe_reps}.", "",
             "| n | montpipe (s/iteration) | python-paillier (s/iteration) | speed-up |",
             "|---|---|---|---|"]
    for bits, r in rows.items():
        lines.append(f"| {bits} | {r['montpipe']:.3f} | {r['python-paillier']:.2f} | "
                     f"{r['speedup']:.1f}× |")
    md = "\n".join(lines) + "\n"
    publish(args.out, "fl", {"command": cmd, "results": rows}, md, args.update_readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
