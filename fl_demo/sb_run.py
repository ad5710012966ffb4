"""Run vertical SecureBoost: guest and host as Ray actors (or in-process), a report at the end.

``python -m montpipe.fl_demo secureboost`` (``make demo DEMO=secureboost``) trains on the
breast-cancer split (``--data synthetic`` for the 20 000 × 30 generated set, or a CSV pair),
compares the trees with the plaintext reference (:func:`.secureboost.train_plaintext`) and the
test AUC with scikit-learn's ``HistGradientBoostingClassifier`` at the same hyper-parameters,
and writes ``build/fl_demo/secureboost/report.json`` and ``report.png``. The launcher options
(``--address``, ``--*-node``, ``--*-backend``, ``--no-ray``, ``--timeout``) are LR's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..driver.backend import available_backends
from .data import (
    DataError,
    VerticalSplit,
    load_breast_cancer_split,
    load_csv_pair,
    load_synthetic_split,
)
from .protocol import ProtocolError
from .run import (
    _call,
    add_party_options,
    backend_rows,
    print_rows,
    stacked_seconds,
    start_parties,
    stop_parties,
)
from .sb_protocol import CATEGORIES, SBGuest, SBHost
from .secureboost import SBConfig, gh_layout, train_plaintext

ROLES = ("guest", "host")


def _c(party, tree, method, *args, timeout=None):
    return _call(party, tree, method, *args, timeout=timeout, unit="tree")


def train(data: VerticalSplit, config: SBConfig, *, use_ray: bool = True,
          address: str | None = None, backends: dict | None = None, nodes: dict | None = None,
          progress: bool = True, timeout: float | None = 600.0, hooks: dict | None = None,
          parties_out: dict | None = None) -> dict:
    """Run the protocol; return the per-tree record, the guest's trees and backend reports.

    ``hooks`` maps a role to ``[(method, *args), ...]`` called after set-up (fault injection
    for tests, e.g. ``{"host": [("inject_failure", 1, "histograms")]}``); ``parties_out``, if
    given, receives the in-process party objects (``use_ray=False``) for inspection.
    """
    config.validate()
    backends, nodes = backends or {}, nodes or {}
    for role in ROLES:
        name = backends.get(role)
        if name is not None and name not in available_backends():
            raise ValueError(f"--{role}-backend: unknown backend {name!r}; this installation "
                             f"has {', '.join(available_backends())}")
    specs = {
        "guest": (SBGuest, (data.guest_train, data.y_train, config, backends.get("guest"),
                            data.guest_test, data.y_test)),
        "host": (SBHost, (data.host_train, config, backends.get("host"), data.host_test)),
    }
    t0 = time.perf_counter()
    parties, started = start_parties(specs, use_ray, address, nodes)
    if parties_out is not None and not use_ray:
        parties_out.update({r: p.obj for r, p in parties.items()})
    try:
        return _loop(config, parties, progress, timeout, hooks or {}, t0)
    finally:
        stop_parties(parties, use_ray, started)


def _backend_stats(parties, timeout) -> dict:
    return {r: _c(p, -1, "backend_report", timeout=timeout) for r, p in parties.items()}


def _loop(config: SBConfig, parties: dict, progress: bool, timeout, hooks, t0) -> dict:
    guest, host = parties["guest"], parties["host"]
    pk_json = _c(guest, -1, "public_key_json", timeout=timeout)
    _c(host, -1, "set_public_key", pk_json, timeout=timeout)
    _c(guest, -1, "set_host_bins", _c(host, -1, "bins_per_feature", timeout=timeout),
       timeout=timeout)
    for role, calls in hooks.items():
        for method, *args in calls:
            _c(parties[role], -1, method, *args, timeout=timeout)
    setup = time.perf_counter() - t0
    for p in parties.values():
        _c(p, -1, "report", timeout=timeout)  # key generation is set-up, not tree time
    before = _backend_stats(parties, timeout)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.trees, unit="tree", desc="SecureBoost", file=sys.stdout)
    history = []
    try:
        for t in range(config.trees):
            w0 = time.perf_counter()
            msg = _c(guest, t, "start_tree", t, timeout=timeout)
            _c(host, t, "receive_gradients", t, msg, timeout=timeout)
            plan = _c(guest, t, "plan", t, timeout=timeout)
            levels = 0
            while plan["nodes"]:
                hist = _c(host, t, "histograms", t, plan, timeout=timeout)
                splits = _c(guest, t, "find_splits", t, hist, timeout=timeout)
                sides = _c(host, t, "split", t, splits, timeout=timeout)
                plan = _c(guest, t, "apply_splits", t, sides, timeout=timeout)
                levels += 1
            _c(guest, t, "finish_tree", t, timeout=timeout)
            _walk(guest, host, t, "train", timeout)  # rows outside a subsample
            wall = time.perf_counter() - w0
            seconds = dict.fromkeys(CATEGORIES, 0.0)
            ops: dict[str, int] = {}
            by_party = {}
            for role, p in parties.items():
                rep = _c(p, t, "report", timeout=timeout)
                by_party[role] = rep["seconds"]
                for k, v in rep["seconds"].items():
                    seconds[k] = seconds.get(k, 0.0) + v
                for k, v in rep["ops"].items():
                    ops[k] = ops.get(k, 0) + v
            # what the parties did not spend computing: transport, waiting, serialisation
            seconds["communication"] += max(0.0, wall - sum(seconds.values()))
            _walk(guest, host, t, "test", timeout)  # evaluation, outside the tree's time
            for p in parties.values():
                _c(p, t, "report", timeout=timeout)
            auc = _c(guest, t, "test_auc", timeout=timeout)
            history.append({"tree": t + 1, "auc": auc, "wall": wall, "levels": levels,
                            "seconds": seconds, "seconds_by_party": by_party, "ops": ops})
            if bar is not None:
                bar.set_postfix(auc=f"{auc:.4f}", s=f"{wall:.2f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    after = _backend_stats(parties, timeout)
    return {"setup_seconds": setup, "history": history,
            "trees": _c(guest, -1, "model", timeout=timeout),
            "backend_reports": after, "backend_reports_before": before}


def _walk(guest, host, tree: int, dataset: str, timeout) -> None:
    queries = _c(guest, tree, "walk_start", tree, dataset, timeout=timeout)
    while queries:
        answers = _c(host, tree, "walk", dataset, queries, timeout=timeout)
        queries = _c(guest, tree, "walk_step", dataset, answers, timeout=timeout)


def _projected(result: dict, trees: int) -> dict:
    """Per party, what a projecting backend projected for the trees (set-up excluded)."""
    out = {}
    reports = result.get("backend_reports", {})
    if len(reports) == 2 and reports["guest"] and reports["guest"] == reports["host"]:
        # one process, one backend instance for both parties: its figures are their sum
        reports = {"guest+host": reports["guest"]}
        result["backend_reports_before"]["guest+host"] = result["backend_reports_before"]["guest"]
    for role, rep in reports.items():
        st = rep.get("stats", {}) if rep else {}
        if "projected_device_seconds" not in st:
            continue
        st0 = result["backend_reports_before"][role]["stats"]
        keys = [k for k in ("projected_device_seconds", "projected_link_seconds",
                            "device_powmods", "grouped_mulmods",
                            "projected_grouped_product_seconds") if k in st]
        out[role] = {f"{k}_per_tree": (st[k] - st0.get(k, 0)) / trees for k in keys}
    return out


def summarise(result: dict, data: VerticalSplit, config: SBConfig, backends: dict) -> dict:
    from sklearn.metrics import roc_auc_score

    trees, _thr, p_aucs = train_plaintext(data.guest_train, data.host_train, data.y_train,
                                          config, data.guest_test, data.host_test, data.y_test)
    X_tr = np.hstack([data.guest_train, data.host_train])
    X_te = np.hstack([data.guest_test, data.host_test])
    same = sklearn_parameters(config)
    sk, sk_default = fit_sklearn(X_tr, data.y_train, same)
    auc = {k: float(roc_auc_score(data.y_test, m.decision_function(X_te)))
           for k, m in (("same", sk), ("default", sk_default))}
    hist = result["history"]
    enc_trees = [_canonical(t) for t in result["trees"]]
    ref_trees = [_canonical(t.nodes) for t in trees]
    ops: dict[str, int] = {}
    for h in hist:
        for k, v in h["ops"].items():
            ops[k] = ops.get(k, 0) + v
    per_tree = {c: float(np.mean([h["seconds"][c] for h in hist])) for c in CATEGORIES}
    layout = gh_layout(config.precision_bits, data.n_train)
    bits = layout.bits if config.pack else max(layout.widths)
    return {
        "config": config.as_dict(),
        "data": {"source": data.source, "train": data.n_train, "test": len(data.y_test),
                 "guest_features": len(data.guest_features),
                 "host_features": len(data.host_features)},
        "backends": {r: backends.get(r) or os.environ.get("MONTPIPE_BACKEND") or "cpu"
                     for r in ROLES},
        "packing": {"packed": config.pack, "h_bits": layout.widths[0],
                    "g_bits": layout.widths[1], "slot_bits": bits,
                    "slots_per_ciphertext": (config.key_bits - 1) // bits,
                    "bound": f"a bin sum of <= {data.n_train} samples: g' <= n*2^(P+1), "
                             f"h' <= n*2^(P-2), P = {config.precision_bits}"},
        "setup_seconds": result["setup_seconds"],
        "seconds_per_tree": float(np.mean([h["wall"] for h in hist])),
        "seconds_per_tree_by_category": per_tree,
        "total_seconds": float(sum(h["wall"] for h in hist)),
        "crypto_operations": ops,
        "auc_encrypted": hist[-1]["auc"],
        "auc_plaintext": p_aucs[-1],
        "auc_sklearn": auc["same"],
        "auc_sklearn_default": auc["default"],
        "sklearn_parameters": same,
        "trees_equal_plaintext": enc_trees == ref_trees,
        "history": hist,
        "plaintext": {"auc": p_aucs},
        "backend_reports": result.get("backend_reports", {}),
        "projected": _projected(result, len(hist)),
    }


def sklearn_parameters(config: SBConfig) -> dict:
    """``HistGradientBoostingClassifier``'s parameters for the same model: trees, learning
    rate, depth (edges from the root), bins, L2, one sample a leaf at least, no early stop."""
    return dict(max_iter=config.trees, learning_rate=config.learning_rate,
                max_depth=config.depth, max_bins=min(255, config.bins),
                l2_regularization=config.l2, min_samples_leaf=1, max_leaf_nodes=None,
                early_stopping=False)


def fit_sklearn(X, y, params: dict):
    """scikit-learn at ``params`` and at its defaults, on one OpenMP thread (its threads spin
    against the parties' on a small machine)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return (HistGradientBoostingClassifier(**params).fit(X, y),
                HistGradientBoostingClassifier(early_stopping=False).fit(X, y))


def _canonical(nodes: dict) -> list:
    return sorted((int(k), sorted(v.items())) for k, v in nodes.items())


def print_summary(s: dict) -> None:
    c, d, pk = s["config"], s["data"], s["packing"]
    print(f"\nSecureBoost on {d['source']}: {d['train']} training / {d['test']} test samples; "
          f"guest {d['guest_features']} features + labels, host {d['host_features']} features")
    print(f"{c['key_bits']}-bit Paillier, {c['trees']} trees of depth {c['depth']}, "
          f"lr {c['learning_rate']}, lambda {c['l2']}, {c['bins']} bins, subsample "
          f"{c['subsample']}, min child weight {c['min_child_weight']}; "
          + (f"g and h packed in {pk['slot_bits']} bits" if pk["packed"] else "g, h unpacked")
          + f", {pk['slots_per_ciphertext']} sums a ciphertext; backends {s['backends']}")
    rows = [
        ("key generation and set-up", f"{s['setup_seconds']:.2f} s"),
        ("time per tree", f"{s['seconds_per_tree']:.3f} s"),
        *((f"  {k}", f"{v:.3f} s") for k, v in s["seconds_per_tree_by_category"].items()),
        ("total training time", f"{s['total_seconds']:.1f} s"),
        ("test AUC, encrypted protocol", f"{s['auc_encrypted']:.4f}"),
        ("test AUC, plaintext SecureBoost", f"{s['auc_plaintext']:.4f}"),
        ("test AUC, scikit-learn HistGradientBoosting (same parameters)",
         f"{s['auc_sklearn']:.4f}"),
        ("test AUC, scikit-learn HistGradientBoosting (its defaults)",
         f"{s['auc_sklearn_default']:.4f}"),
        ("trees equal the plaintext reference's", str(s["trees_equal_plaintext"])),
        *((f"crypto ops: {k}", f"{v}") for k, v in sorted(s["crypto_operations"].items())),
    ]
    for role, p in s.get("projected", {}).items():
        products = p.get("projected_grouped_product_seconds_per_tree", 0.0)
        rows.append((f"projected device time per tree, {role}",
                     f"{p['projected_device_seconds_per_tree']:.3f} s "
                     f"(link {p.get('projected_link_seconds_per_tree', 0.0):.3f} s; grouped "
                     f"products, not on the device, {products:.3f} s if they were)"))
    print_rows(rows + backend_rows(s.get("backend_reports", {})))


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = s["history"]
    ts = [h["tree"] for h in hist]
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    ax[0].plot(ts, [h["auc"] for h in hist], "o-", label="encrypted")
    ax[0].plot(ts, s["plaintext"]["auc"], "--", label="plaintext")
    ax[0].axhline(s["auc_sklearn"], color="grey", lw=0.8, label="scikit-learn, same parameters")
    ax[0].set_title("test AUC after each tree")
    ax[0].set_xlabel("trees")
    ax[0].legend(fontsize=8)
    stacked_seconds(ax[1], ts, hist, CATEGORIES)
    ax[1].set_title("seconds per tree")
    ax[1].set_xlabel("tree")
    ops = ", ".join(f"{k} {v}" for k, v in sorted(s["crypto_operations"].items()))
    fig.suptitle(f"SecureBoost, {s['config']['key_bits']}-bit Paillier, "
                 f"{'packed' if s['config']['pack'] else 'unpacked'} — {ops}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_data(args) -> VerticalSplit:
    if bool(args.guest_csv) != bool(args.host_csv):
        raise DataError("--guest-csv and --host-csv go together")
    if args.guest_csv:
        return load_csv_pair(args.guest_csv, args.host_csv, seed=args.seed)
    if args.data == "synthetic":
        return load_synthetic_split(n_samples=args.rows, seed=args.seed)
    return load_breast_cancer_split(seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    d = SBConfig()
    ap = argparse.ArgumentParser(prog="python -m montpipe.fl_demo secureboost",
                                 description="FATE-style vertical SecureBoost on montpipe")
    ap.add_argument("--trees", type=int, default=d.trees)
    ap.add_argument("--depth", type=int, default=d.depth, help="levels of splits per tree")
    ap.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate")
    ap.add_argument("--bins", type=int, default=d.bins, help="quantile bins per feature")
    ap.add_argument("--min-child-weight", type=float, default=d.min_child_weight,
                    help="least hessian sum a child keeps")
    ap.add_argument("--lambda", dest="l2", type=float, default=d.l2, help="L2 on leaf weights")
    ap.add_argument("--subsample", type=float, default=d.subsample,
                    help="share of the training rows each tree is grown on")
    ap.add_argument("--precision-bits", type=int, default=d.precision_bits,
                    help="fraction bits of the fixed-point g and h")
    ap.add_argument("--no-pack", action="store_true",
                    help="encrypt g and h apart (as without packing), for comparison")
    ap.add_argument("--key-bits", type=int, default=d.key_bits)
    ap.add_argument("--seed", type=int, default=0, help="train/test split and subsamples")
    ap.add_argument("--data", choices=("breast-cancer", "synthetic"), default="breast-cancer",
                    help="breast-cancer split (as LR) or make_classification 20 000 x 30")
    ap.add_argument("--rows", type=int, default=20_000, help="rows of --data synthetic")
    add_party_options(ap, ROLES, "build/fl_demo/secureboost")
    args = ap.parse_args(argv)
    config = SBConfig(trees=args.trees, depth=args.depth, learning_rate=args.lr, bins=args.bins,
                      min_child_weight=args.min_child_weight, l2=args.l2,
                      subsample=args.subsample, key_bits=args.key_bits, pack=not args.no_pack,
                      precision_bits=args.precision_bits, seed=args.seed)
    try:
        config.validate()
        if args.rows < 10:
            raise ValueError(f"--rows must be at least 10, not {args.rows}")
        data = load_data(args)
        bits = gh_layout(config.precision_bits, data.n_train).bits
        if (config.key_bits - 1) // bits < 1:
            raise ValueError(f"--key-bits {config.key_bits} is too small for a {bits}-bit "
                             f"packed gradient of {data.n_train} samples")
        backends = {r: getattr(args, f"{r}_backend") or args.backend for r in ROLES}
        nodes = {r: getattr(args, f"{r}_node") for r in ROLES}
        result = train(data, config, use_ray=not args.no_ray, address=args.address,
                       backends=backends, nodes=nodes, progress=not args.quiet,
                       timeout=args.timeout)
    except (DataError, ValueError, ProtocolError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = summarise(result, data, config, backends)
    summary["command"] = "python -m montpipe.fl_demo secureboost " + " ".join(argv or [])
    print_summary(summary)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    try:
        plot(summary, out / "report.png")
        print(f"\nwrote {out / 'report.json'} and {out / 'report.png'}")
    except ImportError:
        print(f"\nwrote {out / 'report.json'} (matplotlib missing: no chart)")
    return 0


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    raise TypeError(f"{type(x).__name__} is not JSON")


__all__ = ["main", "print_summary", "summarise", "train"]
