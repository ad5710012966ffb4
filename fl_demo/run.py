"""Run the vertical logistic regression: parties as Ray actors (or in-process), a report at the end.

``python -m montpipe.fl_demo`` (what ``make demo`` runs; ``python -m montpipe.fl_demo
secureboost`` runs :mod:`.sb_run` instead, see :mod:`.__main__`) starts Ray embedded on this
machine;
``--address`` joins an existing cluster and ``--guest-node``/``--host-node``/``--arbiter-node``
pin each party to a node. Each party may use its own backend (``--backend`` for all,
``--guest-backend`` and so on for one).
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
from . import accounting
from .data import DataError, VerticalSplit, load_breast_cancer_split, load_csv_pair
from .protocol import Arbiter, Config, Guest, Host, ProtocolError, batches, train_plaintext

ROLES = ("guest", "host", "arbiter")
CATEGORIES = ("encryption", "homomorphic", "decryption", "communication")


class _Local:
    """A party in this process."""

    def __init__(self, role: str, obj) -> None:
        self.role, self.obj = role, obj

    def call(self, method: str, *args, timeout: float | None = None):
        return getattr(self.obj, method)(*args)


class _RayParty:
    """A party as a Ray actor; a crash or a timeout surfaces as ProtocolError."""

    def __init__(self, role: str, cls, args: tuple, node: str | None) -> None:
        import ray

        options = {"num_cpus": 0.01, "max_restarts": 0}
        if node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        self.role = role
        self.handle = ray.remote(cls).options(**options).remote(*args)

    def call(self, method: str, *args, timeout: float | None = None):
        import ray

        return ray.get(getattr(self.handle, method).remote(*args), timeout=timeout)


def _call(party, iteration: int, method: str, *args, timeout: float | None = None,
          unit: str = "iteration"):
    try:
        return party.call(method, *args, timeout=timeout)
    except ProtocolError:
        raise
    except Exception as e:
        cause = getattr(e, "cause", None) or e
        if isinstance(cause, ProtocolError):
            raise cause from None
        kind = type(e).__name__
        where = f"{unit} {iteration}" if iteration >= 0 else "set-up"
        raise ProtocolError(
            f"party '{party.role}' failed during {where} ({method}): {kind}: {cause}"
        ) from None


def train(data: VerticalSplit, config: Config, *, use_ray: bool = True,
          address: str | None = None, backends: dict | None = None, nodes: dict | None = None,
          progress: bool = True, timeout: float | None = 600.0, hooks: dict | None = None) -> dict:
    """Run the protocol; return the per-iteration record and the final weights.

    ``hooks`` (fault injection for tests) maps a role to ``[(method, *args), ...]`` called on
    that party after set-up, e.g. ``{"host": [("inject_failure", 2, "gradient")]}``.
    """
    config.validate()
    backends = backends or {}
    nodes = nodes or {}
    for role in ROLES:
        name = backends.get(role)
        if name is not None and name not in available_backends():
            raise ValueError(f"--{role}-backend: unknown backend {name!r}; this installation "
                             f"has {', '.join(available_backends())}")
    t_setup = time.perf_counter()
    parties, started_ray = start_parties(party_specs(data, config, backends), use_ray, address,
                                         nodes)
    try:
        return _loop(data, config, parties, progress, timeout, hooks or {}, t_setup)
    finally:
        stop_parties(parties, use_ray, started_ray)


def start_parties(specs: dict, use_ray: bool, address: str | None,
                  nodes: dict) -> tuple[dict, bool]:
    """Start each party (``role: (class, args)``) as a Ray actor, pinned to its node if one is
    given, or in this process; ``(parties, whether Ray was started here)``."""
    if not use_ray:
        return {r: _Local(r, c(*a)) for r, (c, a) in specs.items()}, False
    import ray

    started_ray = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, num_cpus=None)
        started_ray = True
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    for role in specs:
        node = nodes.get(role)
        if node and node not in alive:
            if started_ray:
                ray.shutdown()
            raise ValueError(f"--{role}-node: no live Ray node {node!r}; this cluster has "
                             f"{', '.join(sorted(alive))}")
    return {r: _RayParty(r, c, a, nodes.get(r)) for r, (c, a) in specs.items()}, started_ray


def stop_parties(parties: dict, use_ray: bool, started_ray: bool) -> None:
    if use_ray:
        import ray

        for p in parties.values():  # a stuck party must not outlive the run on a cluster
            ray.kill(p.handle)
        if started_ray:
            ray.shutdown()


def party_specs(data: VerticalSplit, config: Config, backends: dict) -> dict:
    """Each role's class and arguments, for :func:`start_parties`."""
    return {
        "guest": (Guest, (data.guest_train, data.y_train, config, backends.get("guest"),
                          data.guest_test, data.y_test)),
        "host": (Host, (data.host_train, config, backends.get("host"), data.host_test)),
        "arbiter": (Arbiter, (config, backends.get("arbiter"))),
    }


def set_up(parties: dict, timeout: float | None = None, hooks: dict | None = None) -> None:
    """The arbiter's public key to the guest and host; then the test hooks, if any."""
    pk_json = _call(parties["arbiter"], -1, "public_key_json", timeout=timeout)
    for role in ("guest", "host"):
        _call(parties[role], -1, "set_public_key", pk_json, timeout=timeout)
    for role, calls in (hooks or {}).items():
        for method, *args in calls:
            _call(parties[role], -1, method, *args, timeout=timeout)


def iteration(parties: dict, data: VerticalSplit, config: Config, it: int,
              timeout: float | None = None) -> float:
    """One training iteration (iteration ``it``, from 0) on the parties; the loss."""
    guest, host, arbiter = parties["guest"], parties["host"], parties["arbiter"]
    idx = batches(data.n_train, config, it)
    host_msg = _call(host, it, "forward", it, idx, timeout=timeout)
    d_json, loss_json = _call(guest, it, "residual", it, idx, host_msg, timeout=timeout)
    gh = _call(host, it, "gradient", it, d_json, timeout=timeout)
    gg = _call(guest, it, "gradient", it, timeout=timeout)
    raw_h = _call(arbiter, it, "decrypt_gradient", it, "host", gh, timeout=timeout)
    raw_g = _call(arbiter, it, "decrypt_gradient", it, "guest", gg, timeout=timeout)
    loss = _call(arbiter, it, "decrypt_loss", it, loss_json, timeout=timeout)
    _call(host, it, "update", it, raw_h, timeout=timeout)
    _call(guest, it, "update", it, raw_g, timeout=timeout)
    return loss


def _loop(data, config, parties, progress, timeout, hooks, t0) -> dict:
    guest, host = parties["guest"], parties["host"]
    set_up(parties, timeout, hooks)
    setup = time.perf_counter() - t0
    for p in parties.values():
        _call(p, -1, "report", timeout=timeout)  # key generation is set-up, not iteration time

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, unit="it", desc="hetero-LR", file=sys.stdout)
    history = []
    try:
        for it in range(config.iterations):
            w0 = time.perf_counter()
            loss = iteration(parties, data, config, it, timeout)
            wall = time.perf_counter() - w0
            auc = _call(guest, it, "test_auc", _call(host, it, "test_scores", timeout=timeout),
                        timeout=timeout)
            seconds = dict.fromkeys(CATEGORIES, 0.0)
            ops: dict[str, int] = {}
            counted, projected = {}, {}
            for role, p in parties.items():
                rep = _call(p, it, "report", timeout=timeout)
                for k, v in rep["seconds"].items():
                    seconds[k] = seconds.get(k, 0.0) + v
                for k, v in rep["ops"].items():
                    ops[k] = ops.get(k, 0) + v
                counted[role], projected[role] = _party_backend(rep.get("backend", {}))
            # what the parties did not spend computing: transport, waiting, serialisation
            seconds["communication"] += max(0.0, wall - sum(seconds.values()))
            history.append({"iteration": it + 1, "loss": loss, "auc": auc, "wall": wall,
                            "seconds": seconds, "ops": ops, "backend_counters": counted,
                            "projected": projected})
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", auc=f"{auc:.4f}", s=f"{wall:.2f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    weights = {r: _call(parties[r], -1, "weights", timeout=timeout) for r in ("guest", "host")}
    backend_reports = {r: _call(p, -1, "backend_report", timeout=timeout)
                       for r, p in parties.items()}
    return {"setup_seconds": setup, "history": history, "final_weights": weights,
            "backend_reports": backend_reports}


def _party_backend(by_category: dict) -> tuple[dict, dict | None]:
    """A party's backend counters for one iteration (summed over its steps) and what they
    project, in all and per category; ``None`` for a backend that projects nothing."""
    total: dict[str, float] = {}
    for counts in by_category.values():
        accounting.add(total, counts)
    projected = accounting.projection(total)
    if projected is not None:
        projected["by_category"] = {c: accounting.projection(counts)
                                    for c, counts in by_category.items()}
    return total, projected


def shared_backends(reports: dict) -> list[list[str]]:
    """Groups of parties whose backend is one object (in one process): their backend reports
    are one set of counters, not one each."""
    groups: dict[str, list[str]] = {}
    for role, rep in reports.items():
        if rep and "instance" in rep:
            groups.setdefault(rep["instance"], []).append(role)
    return [roles for roles in groups.values() if len(roles) > 1]


def projected_accelerator(history: list[dict], reports: dict) -> dict:
    """Per party, the accelerator time its backend projected for the party's own steps, as a
    mean per iteration (set-up excluded), and the sum over parties of each party's
    accelerator time (:func:`.accounting.projection`) — ``None`` with the reason when no
    party's backend projects."""
    per_party: dict[str, dict] = {}
    not_projected: dict[str, str] = {}
    for role in reports:
        its = [h["projected"].get(role) for h in history]
        if not its or any(p is None for p in its):
            not_projected[role] = accounting.why_not_projected(role, reports[role])
            continue
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        links = [p["link_seconds"] for p in its]
        categories = sorted({c for p in its for c in p["by_category"]})
        per_party[role] = {
            "device_seconds_per_iteration": mean([p["device_seconds"] for p in its]),
            "link_seconds_per_iteration": None if None in links else mean(links),
            "accelerator_seconds_per_iteration": mean([p["accelerator_seconds"] for p in its]),
            "device_seconds_per_iteration_by_category": {
                c: mean([(p["by_category"].get(c) or {}).get("device_seconds", 0.0)
                         for p in its]) for c in categories},
            "counters_per_iteration": {
                k: mean([h["backend_counters"][role].get(k, 0) for h in history])
                for k in sorted(history[-1]["backend_counters"][role])},
        }
    total = sum(p["accelerator_seconds_per_iteration"] for p in per_party.values()) \
        if per_party else None
    out = {"seconds_per_iteration": total, "per_party": per_party,
           "not_projected": not_projected, "shared_backend": shared_backends(reports)}
    if total is None:
        out["reason"] = "; ".join(not_projected.values()) or "no party has a backend"
    return out


def summarise(result: dict, data: VerticalSplit, config: Config, backends: dict) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    wg, wh, p_losses, p_aucs = train_plaintext(
        data.guest_train, data.host_train, data.y_train, config,
        data.guest_test, data.host_test, data.y_test)
    X_tr = np.hstack([data.guest_train, data.host_train])
    X_te = np.hstack([data.guest_test, data.host_test])
    sk = LogisticRegression(max_iter=5000).fit(X_tr, data.y_train)
    sk_auc = float(roc_auc_score(data.y_test, sk.decision_function(X_te)))
    hist = result["history"]
    enc_w = np.concatenate([result["final_weights"]["guest"], result["final_weights"]["host"]])
    ops: dict[str, int] = {}
    for h in hist:
        for k, v in h["ops"].items():
            ops[k] = ops.get(k, 0) + v
    per_iter = {c: float(np.mean([h["seconds"][c] for h in hist])) for c in CATEGORIES}
    projected = projected_accelerator(hist, result.get("backend_reports", {}))
    return {
        "config": config.as_dict(),
        "data": {"source": data.source, "train": data.n_train, "test": len(data.y_test),
                 "guest_features": len(data.guest_features),
                 "host_features": len(data.host_features)},
        "backends": {r: backends.get(r) or os.environ.get("MONTPIPE_BACKEND") or "cpu"
                     for r in ROLES},
        "setup_seconds": result["setup_seconds"],
        "seconds_per_iteration": float(np.mean([h["wall"] for h in hist])),
        "seconds_per_iteration_by_category": per_iter,
        "total_seconds": float(sum(h["wall"] for h in hist)),
        "crypto_operations": ops,
        "final_auc_encrypted": hist[-1]["auc"],
        "final_auc_plaintext": p_aucs[-1],
        "auc_sklearn": sk_auc,
        "final_loss_encrypted": hist[-1]["loss"],
        "final_loss_plaintext": p_losses[-1],
        "max_weight_difference_vs_plaintext": float(np.max(np.abs(enc_w - np.concatenate([wg,
                                                                                         wh])))),
        "history": hist,
        "plaintext": {"loss": p_losses, "auc": p_aucs},
        "backend_reports": result.get("backend_reports", {}),
        # a projecting backend's accelerator time for the iterations' work, each party's own
        # (its steps' counter differences), summed over parties: see projected_accelerator
        "projected_accelerator_seconds_per_iteration": projected["seconds_per_iteration"],
        "projected_accelerator": projected,
    }


def print_summary(s: dict) -> None:
    c = s["config"]
    print(f"\nhetero-LR on {s['data']['source']}: {s['data']['train']} training / "
          f"{s['data']['test']} test samples; guest {s['data']['guest_features']} features + "
          f"labels, host {s['data']['host_features']} features")
    print(f"{c['key_bits']}-bit Paillier, {c['iterations']} iterations, lr {c['learning_rate']}, "
          f"L2 {c['l2']}, batch {c['batch_size'] or 'full'}, masking "
          f"{'on' if c['mask'] else 'off'}; backends {s['backends']}")
    rows = [
        ("key generation and set-up", f"{s['setup_seconds']:.2f} s"),
        ("time per iteration", f"{s['seconds_per_iteration']:.3f} s"),
        *((f"  {k}", f"{v:.3f} s") for k, v in s["seconds_per_iteration_by_category"].items()),
        ("total training time", f"{s['total_seconds']:.1f} s"),
        ("test AUC, encrypted protocol", f"{s['final_auc_encrypted']:.4f}"),
        ("test AUC, plaintext Taylor GD", f"{s['final_auc_plaintext']:.4f}"),
        ("test AUC, scikit-learn LogisticRegression", f"{s['auc_sklearn']:.4f}"),
        ("final loss encrypted / plaintext",
         f"{s['final_loss_encrypted']:.6f} / {s['final_loss_plaintext']:.6f}"),
        ("max |w_encrypted - w_plaintext|", f"{s['max_weight_difference_vs_plaintext']:.2e}"),
        *((f"crypto ops: {k}", f"{v}") for k, v in sorted(s["crypto_operations"].items())),
    ]
    print_rows(rows + projected_rows(s.get("projected_accelerator", {}))
               + backend_rows(s.get("backend_reports", {})))


def projected_rows(projected: dict) -> list[tuple[str, str]]:
    """Summary rows: each party's projected accelerator time per iteration and their sum
    (nothing when no party's backend projects)."""
    per_party = projected.get("per_party", {})
    if not per_party:
        return []
    rows = []
    for role, p in per_party.items():
        link = p["link_seconds_per_iteration"]
        rows.append((f"projected accelerator time per iteration, {role}",
                     f"{p['accelerator_seconds_per_iteration']:.3f} s (device "
                     f"{p['device_seconds_per_iteration']:.3f} s, link "
                     f"{'not projected' if link is None else f'{link:.3f} s'})"))
    rows.append(("projected accelerator time per iteration, all parties",
                 f"{projected['seconds_per_iteration']:.3f} s"))
    for group in projected.get("shared_backend", []):
        rows.append((f"  ({', '.join(group)} share one backend",
                     "each party's share is what its own steps added to its counters)"))
    for reason in projected.get("not_projected", {}).values():
        rows.append(("  not in the sum", reason))
    return rows


def backend_rows(reports: dict) -> list[tuple[str, str]]:
    """Summary rows: each backend, its calls and busy time — once for parties sharing one
    backend object, whose counters are the sum of all of theirs."""
    rows = []
    shared = {r: group for group in shared_backends(reports) for r in group}
    for role, rep in reports.items():
        if rep and shared.get(role, [role])[0] == role:
            st = rep["stats"]
            group = shared.get(role)
            who = f"backend of the {role}" if group is None else \
                f"backend shared by {', '.join(group)}"
            rows.append((who, f"{rep['describe'].get('name')}: {st.get('calls', 0)} calls, "
                              f"{st.get('busy_seconds', 0.0):.2f} s busy"))
    return rows


def print_rows(rows: list[tuple[str, str]]) -> None:
    """The summary table: names left-aligned in one column, values beside them."""
    width = max(len(r[0]) for r in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def stacked_seconds(ax, xs: list, history: list[dict], categories) -> None:
    """Seconds by category as stacked bars, one bar per iteration or tree."""
    bottom = np.zeros(len(history))
    for cat in categories:
        vals = np.array([h["seconds"][cat] for h in history])
        ax.bar(xs, vals, bottom=bottom, label=cat)
        bottom += vals
    ax.legend(fontsize=8)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = s["history"]
    its = [h["iteration"] for h in hist]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot(its, [h["loss"] for h in hist], "o-", label="encrypted")
    ax[0].plot(its, s["plaintext"]["loss"], "--", label="plaintext")
    ax[0].set_title("Taylor loss")
    ax[0].legend()
    ax[1].plot(its, [h["auc"] for h in hist], "o-", label="encrypted")
    ax[1].plot(its, s["plaintext"]["auc"], "--", label="plaintext")
    ax[1].axhline(s["auc_sklearn"], color="grey", lw=0.8, label="scikit-learn")
    ax[1].set_title("test AUC")
    ax[1].legend()
    stacked_seconds(ax[2], its, hist, CATEGORIES)
    ax[2].set_title("seconds per iteration")
    ops = ", ".join(f"{k} {v}" for k, v in sorted(s["crypto_operations"].items()))
    fig.suptitle(f"hetero-LR, {s['config']['key_bits']}-bit Paillier — {ops}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_party_options(ap: argparse.ArgumentParser, roles: tuple[str, ...], out: str) -> None:
    """The options every demo's launcher shares: the data as a CSV pair, each party's backend
    and Ray node, Ray or not, the wait on a party, the report's folder, the progress bar."""
    ap.add_argument("--guest-csv", help="guest CSV: id,y,features... (with --host-csv)")
    ap.add_argument("--host-csv", help="host CSV: id,features...")
    ap.add_argument("--backend", default=None, help=f"backend of every party "
                    f"({', '.join(available_backends())}; default cpu)")
    for r in roles:
        ap.add_argument(f"--{r}-backend", default=None, help=f"backend of the {r}")
        ap.add_argument(f"--{r}-node", default=None, help=f"Ray node id to pin the {r} to")
    ap.add_argument("--address", default=None, help="join this Ray cluster instead of starting one")
    ap.add_argument("--no-ray", action="store_true", help="run the parties in this process")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds to wait on a party before giving up (Ray mode)")
    ap.add_argument("--out", default=out, help="folder for report.json and report.png")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montpipe.fl_demo",
                                 epilog="python -m montpipe.fl_demo secureboost --help: "
                                 "vertical SecureBoost instead",
                                 description="FATE-style vertical logistic regression on montpipe")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.15, help="learning rate")
    ap.add_argument("--l2", type=float, default=0.01, help="L2 penalty")
    ap.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: all)")
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--no-mask", action="store_true",
                    help="send gradients to the arbiter unmasked, as FATE does")
    ap.add_argument("--seed", type=int, default=0, help="train/test split and batch order")
    add_party_options(ap, ROLES, "build/fl_demo")
    args = ap.parse_args(argv)

    config = Config(iterations=args.iterations, learning_rate=args.lr, l2=args.l2,
                    batch_size=args.batch_size, key_bits=args.key_bits, mask=not args.no_mask,
                    seed=args.seed)
    try:
        config.validate()
        if bool(args.guest_csv) != bool(args.host_csv):
            raise DataError("--guest-csv and --host-csv go together")
        data = (load_csv_pair(args.guest_csv, args.host_csv, seed=args.seed) if args.guest_csv
                else load_breast_cancer_split(seed=args.seed))
        backends = {r: getattr(args, f"{r}_backend") or args.backend for r in ROLES}
        nodes = {r: getattr(args, f"{r}_node") for r in ROLES}
        result = train(data, config, use_ray=not args.no_ray, address=args.address,
                       backends=backends, nodes=nodes, progress=not args.quiet,
                       timeout=args.timeout)
    except (DataError, ValueError, ProtocolError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = summarise(result, data, config, backends)
    print_summary(summary)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    try:
        plot(summary, out / "report.png")
        print(f"\nwrote {out / 'report.json'} and {out / 'report.png'}")
    except ImportError:
        print(f"\nwrote {out / 'report.json'} (matplotlib missing: no chart)")
    return 0
