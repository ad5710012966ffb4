"""SecureBoost benchmark: seconds per tree, montpipe (packed and unpacked) against the same
protocol on python-paillier, on the breast-cancer split and the 20 000-row generated set.

python-paillier runs the protocol as its users write it: g and h encrypted apart, one
``EncryptedNumber`` at a time, histograms as Python sums of ``EncryptedNumber`` s (siblings by
subtraction, as montpipe's), every cumulative bin sum decrypted on its own (no packing, no
compression); the guest's split finding is the same code as montpipe's, so it grows the same
tree. On the large set it runs on a row subsample, and each of its categories is scaled by the
ratio of the full protocol's operation count to the subsample's (encryptions, additions and
subtractions, decryptions: the full-size counts are montpipe's unpacked run's, which is the
same protocol) — a linear scaling the report states with the measured figures. Writes
``build/bench/secureboost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

from .._provenance import git_revision
from ..fl_demo import sb_run
from ..fl_demo.data import load_breast_cancer_split, load_synthetic_split
from ..fl_demo.sb_protocol import CATEGORIES
from ..fl_demo.secureboost import (
    Binning,
    SBConfig,
    TreeGrower,
    base_score,
    gradients,
    quantize,
    tree_rows,
)
from ._publish import publish
from .cpu import _cpu_name


def montpipe_run(data, cfg: SBConfig, backend: str | None = None) -> dict:
    """The protocol in one process; medians per tree and the summary's checks."""
    backends = {"guest": backend, "host": backend}
    res = sb_run.train(data, cfg, use_ray=False, progress=False, backends=backends)
    s = sb_run.summarise(res, data, cfg, backends)
    hist = res["history"]
    ops: dict[str, int] = {}
    for h in hist:
        for k, v in h["ops"].items():
            ops[k] = ops.get(k, 0) + v
    return {"seconds_per_tree": statistics.median(h["wall"] for h in hist),
            "by_category": {c: statistics.median(h["seconds"][c] for h in hist)
                            for c in CATEGORIES},
            "trees": len(hist), "ops_per_tree": {k: v / len(hist) for k, v in ops.items()},
            "auc_encrypted": s["auc_encrypted"], "auc_plaintext": s["auc_plaintext"],
            "auc_sklearn": s["auc_sklearn"], "trees_equal_plaintext": s["trees_equal_plaintext"],
            "projected": s["projected"], "tree0": res["trees"][0]}


def phe_tree(data, cfg: SBConfig, rows: np.ndarray | None = None) -> dict:
    """The first tree with python-paillier, on ``rows`` of the training set (default: all)."""
    from phe import paillier as phe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk, sk = phe.generate_paillier_keypair(n_length=cfg.key_bits)
    sel = np.arange(data.n_train) if rows is None else np.asarray(rows)
    Xg, Xh, y = data.guest_train[sel], data.host_train[sel], data.y_train[sel]
    gbin, hbin = Binning(Xg, cfg.bins), Binning(Xh, cfg.bins)
    Bg, Bh = gbin.transform(Xg), hbin.transform(Xh)
    secs = dict.fromkeys(("encryption", "histogram", "decryption", "split finding"), 0.0)
    ops = {"encrypt": 0, "ct+ct": 0, "ct-ct": 0, "decrypt": 0}
    t0 = time.perf_counter()
    rws = tree_rows(len(y), cfg, 0)
    g, h = gradients(y[rws], np.full(len(rws), base_score(y)))
    gq, hq = quantize(g, h, cfg.precision_bits)
    # guest: encrypt g' and h' one number at a time
    t = time.perf_counter()
    enc = [[pk.encrypt(int(v)) for v in gq], [pk.encrypt(int(v)) for v in hq]]
    secs["encryption"] += time.perf_counter() - t
    ops["encrypt"] += 2 * len(rws)
    grower = TreeGrower(gq, hq, rws, Bg, gbin, hbin.n_bins, cfg)
    HB = Bh[rws]
    o, F = hbin.offsets, Bh.shape[1]
    kept: dict[int, list] = {}
    while True:
        t = time.perf_counter()
        plan = grower.plan()
        secs["split finding"] += time.perf_counter() - t
        if not plan["nodes"]:
            break
        nodes, assign = plan["nodes"], plan["assign"]
        # host: per node, feature and bin, Python sums of EncryptedNumbers; siblings by
        # subtraction from the parent (all but the smaller of a pair)
        t = time.perf_counter()
        counts = {nd: int(np.sum(assign == nd)) for nd in nodes}
        hist: dict[int, list] = {}
        derived = {}
        for nd in nodes:
            p = plan["parents"][nd]
            sib = [s for s in nodes if s != nd and plan["parents"][s] == p]
            if p in kept and sib and nd not in derived and sib[0] not in derived:
                small, big = sorted((nd, sib[0]), key=lambda x: (counts[x], x))
                derived[big] = (p, small)
        for nd in nodes:
            if nd in derived:
                continue
            acc = [[0] * hbin.total_bins for _ in range(2)]
            for r in np.flatnonzero(assign == nd):
                for f in range(F):
                    b = o[f] + HB[r, f]
                    for c in range(2):
                        acc[c][b] = acc[c][b] + enc[c][r]
                        ops["ct+ct"] += 1
            hist[nd] = acc
        for big, (p, small) in derived.items():
            hist[big] = [[a - b for a, b in zip(kept[p][c], hist[small][c], strict=True)]
                         for c in range(2)]
            ops["ct-ct"] += 2 * hbin.total_bins
        kept = hist
        cum = {}
        for nd in nodes:
            parts = []
            for c in range(2):
                run = []
                for f in range(F):
                    s = 0
                    for b in range(o[f], o[f + 1] - 1):
                        s = s + hist[nd][c][b]
                        run.append(s)
                        ops["ct+ct"] += 1
                parts.append(run)
            cum[nd] = parts
        C = {nd: np.concatenate([np.cumsum(np.bincount(HB[assign == nd, f],
                                                       minlength=hbin.n_bins[f]))[:-1]
                                 for f in range(F)]) for nd in nodes}
        secs["histogram"] += time.perf_counter() - t
        # guest: decrypt every cumulative sum of g and of h
        t = time.perf_counter()
        host_cum = {}
        for nd in nodes:
            G, H = ([int(sk.decrypt(x)) if not isinstance(x, int) else x for x in cum[nd][c]]
                    for c in range(2))
            ops["decrypt"] += 2 * len(G)
            host_cum[nd] = (np.array(G, dtype=object), np.array(H, dtype=object), C[nd])
        secs["decryption"] += time.perf_counter() - t
        t = time.perf_counter()
        splits = grower.choose(host_cum)
        sides = {nd: HB[np.flatnonzero(grower.node_of == nd), f] <= b for nd, f, b in splits}
        grower.apply(sides)
        secs["split finding"] += time.perf_counter() - t
    tree, _ = grower.finish()
    return {"seconds": time.perf_counter() - t0, "by_category": secs, "ops": ops,
            "rows": len(rws), "tree": tree.nodes}


def scale_phe(measured: dict, full_ops: dict, full_rows: int) -> dict:
    """python-paillier's per-tree time at full size: each category scaled by the ratio of
    the full-size protocol's operation count to the measured run's."""
    m, mo = measured["by_category"], measured["ops"]
    factors = {
        "encryption": 2 * full_rows / mo["encrypt"],
        "histogram": (full_ops.get("ct+ct", 0) + full_ops.get("ct-ct", 0))
        / max(1, mo["ct+ct"] + mo["ct-ct"]),
        # every cumulative sum of g and of h: montpipe's unpacked run compresses them, so its
        # shifts and decryptions together count them
        "decryption": (full_ops.get("shift", 0) + full_ops.get("decrypt", 0))
        / max(1, mo["decrypt"]),
        "split finding": full_rows / measured["rows"],
    }
    by_cat = {k: m[k] * factors[k] for k in m}
    return {"seconds": sum(by_cat.values()), "by_category": by_cat, "factors": factors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--trees", type=int, default=10,
                    help="montpipe trees on breast cancer (the AUC comparison's)")
    ap.add_argument("--large-trees", type=int, default=3,
                    help="montpipe trees on the large set (timing; its AUC comes from the "
                         "plaintext reference, which builds the same trees)")
    ap.add_argument("--unpacked-trees", type=int, default=2, help="montpipe --no-pack trees")
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the large set")
    ap.add_argument("--phe-rows", type=int, default=1000,
                    help="training rows python-paillier runs on for the large set")
    ap.add_argument("--no-model", action="store_true", help="skip the model backend's projection")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)
    sets = {"breast-cancer": (load_breast_cancer_split(seed=0), args.trees),
            f"make_classification {args.rows}x30": (load_synthetic_split(n_samples=args.rows,
                                                                          seed=0),
                                                     args.large_trees)}
    results = {}
    for name, (data, trees) in sets.items():
        cfg = SBConfig(trees=trees, key_bits=args.key_bits)
        packed = montpipe_run(data, cfg)
        unpacked = montpipe_run(data, SBConfig(trees=min(trees, args.unpacked_trees),
                                               key_bits=args.key_bits, pack=False))
        full = data.n_train <= args.phe_rows
        rows = None if full else np.sort(np.random.default_rng(0).choice(
            data.n_train, size=args.phe_rows, replace=False))
        phe = phe_tree(data, cfg, rows)
        phe_scaled = phe if full else scale_phe(phe, unpacked["ops_per_tree"], data.n_train)
        r = {"train_rows": data.n_train, "montpipe": packed, "montpipe_unpacked": unpacked,
             "python-paillier": phe, "python-paillier_per_tree": phe_scaled["seconds"],
             "python-paillier_by_category": phe_scaled["by_category"],
             "python-paillier_scaled_from_rows": None if full else args.phe_rows,
             "python-paillier_same_tree": phe["tree"] == packed["tree0"] if full else None,
             "speedup": phe_scaled["seconds"] / packed["seconds_per_tree"],
             "packing_gain": unpacked["seconds_per_tree"] / packed["seconds_per_tree"]}
        if "factors" in phe_scaled:
            r["python-paillier_scale_factors"] = phe_scaled["factors"]
        if not args.no_model:
            model = montpipe_run(data, SBConfig(trees=1, key_bits=args.key_bits), "model")
            r["projected"] = model["projected"]
        for k in ("montpipe", "montpipe_unpacked"):
            r[k].pop("tree0")
        r["python-paillier"].pop("tree")
        results[name] = r
        print(f"{name}: montpipe {packed['seconds_per_tree']:.2f} s/tree "
              f"(unpacked {unpacked['seconds_per_tree']:.2f}), python-paillier "
              f"{phe_scaled['seconds']:.1f} s/tree{'' if full else ' (scaled)'}, "
              f"{r['speedup']:.1f}x; AUC {packed['auc_encrypted']:.4f} vs scikit-learn "
              f"{packed['auc_sklearn']:.4f}", flush=True)
    cmd = ("python -m montpipe.bench.secureboost " + " ".join(argv or [])).strip()
    machine = {"cpu": _cpu_name(), "cores": len(os.sched_getaffinity(0)),
               "git": git_revision(), "date": time.strftime("%Y-%m-%d")}
    md = _markdown(cmd, args, results, machine)
    publish(args.out, "secureboost", {"command": cmd, "machine": machine, "results": results},
            md, args.update_readme)
    return 0


def _markdown(cmd: str, args, results: dict, machine: dict) -> str:
    lines = [f"Measured by `{cmd}` on {machine['cpu']} ({machine['cores']} cores), "
             f"{machine['date']}, git {machine['git']}: seconds per tree (depth 3, 32 bins, "
             f"{args.key_bits}-bit keys; both parties in one process; montpipe's median over "
             "its trees on the CPU backend, all cores; python-paillier's first tree, one core), "
             "montpipe with g and h packed and with `--no-pack`, python-paillier on the same "
             "protocol, unpacked and uncompressed.", "",
             "| data (training rows) | montpipe packed (s/tree) | montpipe unpacked (s/tree) | "
             "packing's gain | python-paillier (s/tree) | speed-up | test AUC encrypted / "
             "plaintext / scikit-learn | trees equal plaintext |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        m = r["montpipe"]
        scaled = r["python-paillier_scaled_from_rows"]
        phe = f"{r['python-paillier_per_tree']:.1f}" + (f" (from {scaled} rows)" if scaled else "")
        lines.append(f"| {name} ({r['train_rows']}) | {m['seconds_per_tree']:.2f} | "
                     f"{r['montpipe_unpacked']['seconds_per_tree']:.2f} | "
                     f"{r['packing_gain']:.2f}× | {phe} | {r['speedup']:.0f}× | "
                     f"{m['auc_encrypted']:.4f} / {m['auc_plaintext']:.4f} / "
                     f"{m['auc_sklearn']:.4f} ({m['trees']} trees) | "
                     f"{m['trees_equal_plaintext']} |")
    for name, r in results.items():
        if r["python-paillier_same_tree"] is not None:
            lines.append(f"\npython-paillier's first tree on {name} is montpipe's: "
                         f"{r['python-paillier_same_tree']}.")
        scaled = r["python-paillier_scaled_from_rows"]
        if scaled:
            f = r["python-paillier_scale_factors"]
            lines.append(f"\npython-paillier on {name} ran on {scaled} random training rows; "
                         "its categories are scaled by the full protocol's operation counts: "
                         + ", ".join(f"{k} ×{v:.1f}" for k, v in f.items()) + ".")
    lines += ["", "Where a tree's time goes (seconds; montpipe packed / python-paillier):", ""]
    for name, r in results.items():
        m, p = r["montpipe"]["by_category"], r["python-paillier_by_category"]
        parts = [f"{c} {m[c]:.2f} / {p[c]:.1f}" if c in p else f"{c} {m[c]:.2f}"
                 for c in CATEGORIES]
        lines.append(f"- {name}: " + ", ".join(parts))
        proj = r.get("projected", {})
        for role, pj in proj.items():
            lines.append(f"  - projected on the device (model backend, {role}): "
                         f"{pj['projected_device_seconds_per_tree']:.2f} s of exponentiations "
                         f"a tree (link {pj['projected_link_seconds_per_tree']:.1f} s); "
                         f"{pj['grouped_mulmods_per_tree']:.0f} grouped products a tree stay "
                         "on the host (no device product operation)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
