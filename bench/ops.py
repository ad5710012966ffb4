"""One hetero-LR iteration, operation by operation: projected accelerator time against the CPU.

``python -m montpipe.bench.ops`` (part of ``make bench``) runs one iteration of the demo's
protocol (:mod:`montpipe.fl_demo.run`, parties in one process) on a backend that records every
batch call the Paillier layer makes — ``multiexp``, ``fixed_base`` powers, ``mulmod``,
``powmod`` (decryption's CRT halves, marked secret), whatever the iteration uses — and groups
them by operation. Each group is then replayed, side by side in one run, on

* the ``model`` backend, trusted with secrets so that decryption is projected too: its
  counters' differences across the group give device seconds, link bytes, W × W word
  products and the time device and link take together as the ``fpga`` backend drives them
  per operation, so the table shows what the backend projects for each operation, however it
  maps it onto the device;
* the ``cpu`` backend, timed (median of ``--reps``);
* the multiplier ceiling: those word products on all 156 MULT18X18D of an LFE5U-85F at the
  same clock (:mod:`.device`); an operation the model keeps on the host gets the ceiling of one
  Montgomery product an operation (its operands kept in Montgomery form).

The last row is the whole iteration: the projected accelerator seconds a party's backend
(a board of its own) projects for its own steps, summed over the parties (the demo's
``projected_accelerator_seconds_per_iteration``, decryption on the host as the demo runs it),
against python-paillier measured on the same iteration (:func:`.fl.phe_iteration_seconds`).
Writes ``build/bench/ops.json`` and ``ops.md``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import warnings
from collections.abc import Sequence

from ..device.model import montgomery_words, pipeline
from ..driver import paillier
from ..driver.backend import FixedBasePower, register_backend
from ..driver.backends.cpu import CPUBackend
from ..driver.backends.model import ModelBackend
from ..fl_demo import accounting, run
from ..fl_demo.data import load_breast_cancer_split
from ..fl_demo.protocol import Config
from ._publish import publish
from .device import PART_MULTIPLIERS
from .fl import phe_iteration_seconds

#: the batch operations of the backend protocol the table can replay, with how each call's
#: operation count is read from its arguments
UNITS = {
    "powmod": lambda a: len(a[0]),
    "mulmod": lambda a: len(a[0]),
    "prodmod": lambda a: len(a[0]),
    "group_prodmod": lambda a: sum(1 for g in a[1] if g >= 0),
    "multiexp": lambda a: len(a[0]) * len(a[1]),
    "fixed_base": lambda a: len(a[3]),
}
LABELS = {"powmod": "powmod", "mulmod": "mulmod", "prodmod": "prodmod term",
          "group_prodmod": "grouped product term", "multiexp": "multiexp term",
          "fixed_base": "fixed-base power"}


class Recorder(CPUBackend):
    """The CPU backend, writing down each batch call made to it from outside (a call the
    backend makes to itself inside another is part of that one) while ``recording``."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.calls: list[tuple[str, tuple, dict]] = []
        self._inside = threading.local()

    def _record(self, method: str, args: tuple, kwargs: dict, run_it):
        outer = not getattr(self._inside, "busy", False)
        if outer and self.recording:
            self.calls.append((method, tuple(list(a) if isinstance(a, list) else a
                                             for a in args), dict(kwargs)))
        self._inside.busy = True
        try:
            return run_it()
        finally:
            if outer:
                self._inside.busy = False

    def powmod(self, bases, exponents, modulus, *, secret=False):
        return self._record("powmod", (bases, exponents, modulus), {"secret": secret},
                            lambda: super(Recorder, self).powmod(bases, exponents, modulus,
                                                                 secret=secret))

    def mulmod(self, a, b, modulus):
        return self._record("mulmod", (a, b, modulus), {},
                            lambda: super(Recorder, self).mulmod(a, b, modulus))

    def prodmod(self, values, modulus):
        return self._record("prodmod", (values, modulus), {},
                            lambda: super(Recorder, self).prodmod(values, modulus))

    def group_prodmod(self, values, groups, n_groups, modulus):
        return self._record("group_prodmod", (values, list(groups), n_groups, modulus), {},
                            lambda: super(Recorder, self).group_prodmod(values, groups,
                                                                        n_groups, modulus))

    def multiexp(self, bases, exponents, modulus):
        return self._record("multiexp", (bases, [list(r) for r in exponents], modulus), {},
                            lambda: super(Recorder, self).multiexp(bases, exponents, modulus))

    def fixed_base(self, base, modulus, max_bits):
        return _RecordedFixedBase(self, super().fixed_base(base, modulus, max_bits))


class _RecordedFixedBase(FixedBasePower):
    def __init__(self, recorder: Recorder, inner: FixedBasePower) -> None:
        self.recorder, self.inner = recorder, inner
        self.base, self.modulus, self.max_bits = inner.base, inner.modulus, inner.max_bits

    def pow(self, exponents: Sequence[int]) -> list[int]:
        exponents = list(exponents)
        return self.recorder._record(
            "fixed_base", (self.base, self.modulus, self.max_bits, exponents), {},
            lambda: self.inner.pow(exponents))


def record_iteration(data, config: Config) -> list[tuple[str, tuple, dict]]:
    """The backend calls of one training iteration (set-up left out), the parties in this
    process on one recording backend."""
    recorder = Recorder()
    name = f"recorder-{id(recorder)}"
    register_backend(name, lambda: recorder)
    parties, _ = run.start_parties(run.party_specs(data, config, dict.fromkeys(run.ROLES, name)),
                                   False, None, {})
    run.set_up(parties)
    recorder.recording = True
    run.iteration(parties, data, config, 0)
    recorder.recording = False
    recorder.close()
    return recorder.calls


def operation(method: str, args: tuple, kwargs: dict) -> str:
    """The row a call belongs to: its method, secret or not, and its modulus's width."""
    modulus = args[2] if method in ("powmod", "mulmod", "multiexp") else \
        args[1] if method in ("prodmod", "fixed_base") else args[3]
    secret = ", secret" if kwargs.get("secret") else ""
    return f"{LABELS[method]}{secret} (mod {int(modulus).bit_length()} bits)"


def replay(backend, method: str, args: tuple, kwargs: dict, tables: dict) -> None:
    """Make the call again on ``backend`` (a fixed-base table built once per base, outside)."""
    if method == "fixed_base":
        tables[args[:3]].pow(args[3])
    else:
        getattr(backend, method)(*args, **kwargs)


def _tables(backend, calls) -> dict:
    return {a[:3]: backend.fixed_base(*a[:3]) for m, a, _ in calls if m == "fixed_base"}


def measure(calls, reps: int, *, model: ModelBackend, cpu: CPUBackend) -> list[dict]:
    """Per operation (rows of :func:`operation`): its count in the iteration, the model's
    counter differences per operation, the CPU's median seconds per operation."""
    groups: dict[str, list] = {}
    for call in calls:
        groups.setdefault(operation(*call), []).append(call)
    rows = []
    for label, group in groups.items():
        count = sum(UNITS[m](a) for m, a, _ in group)
        tables = _tables(model, group)
        before = accounting.counters(model)
        for call in group:
            replay(model, *call, tables)
        counted = accounting.difference(before, accounting.counters(model))
        tables = _tables(cpu, group)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for call in group:
                replay(cpu, *call, tables)
            samples.append(time.perf_counter() - t0)
        modulus = max(int(a[2] if m in ("powmod", "mulmod", "multiexp") else
                          a[1] if m in ("prodmod", "fixed_base") else a[3]) for m, a, _ in group)
        exps = [abs(int(e)) for m, a, _ in group for e in _exponents(m, a)]
        rows.append({"operation": label, "count": count, "modulus_bits": modulus.bit_length(),
                     "exponent_bits_median": statistics.median(e.bit_length() for e in exps)
                     if exps else None,
                     "model": {k: v / count for k, v in counted.items()},
                     "cpu_seconds": statistics.median(samples) / count})
    return rows


def _exponents(method: str, args: tuple) -> list[int]:
    if method == "powmod":
        e = args[1]
        return [e] * len(args[0]) if isinstance(e, int) else list(e)
    if method == "multiexp":
        return [e for row in args[1] for e in row]
    if method == "fixed_base":
        return list(args[3])
    return []


def ceiling_seconds(row: dict, device) -> float:
    """Seconds an operation takes with every multiplier of the part busy on its word products:
    the model's, or one Montgomery product's for an operation the model keeps on the host."""
    word_products = row["model"].get("device_word_products", 0.0)
    if not word_products:
        s = montgomery_words(row["modulus_bits"], device.width)
        word_products = 2 * s * s + s
    return word_products * pipeline(device.width).blocks / (PART_MULTIPLIERS *
                                                            device.clock_mhz * 1e6)


def projected_iteration_seconds(data, config: Config) -> dict:
    """The demo's projected accelerator time per iteration, each party on a ``model`` backend
    of its own — a board of its own, as on Ray, so no party finds the table another party's
    calls wrote — summed (decryption on the host as the demo's default keeps it)."""
    names = {role: f"model-bench-ops-{role}" for role in run.ROLES}
    for name in names.values():
        register_backend(name, ModelBackend)
    res = run.train(data, config, use_ray=False, progress=False, backends=names)
    return run.projected_accelerator(res["history"], res["backend_reports"])


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 0.1 else f"{seconds:.2f} s"


def table(rows: list[dict], device, fl: dict | None, command: str, note: str) -> str:
    lines = [f"Measured by `{command}`: {note}", "",
             "| operation (one hetero-LR iteration) | count | device, projected | link bytes "
             "(projected time) | device and link as driven | 85F ceiling | CPU backend, "
             "measured | device ÷ CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["model"]
        device_s = m.get(accounting.DEVICE, 0.0)
        on_device = device_s > 0
        ebits = f", {r['exponent_bits_median']:.0f}-bit exponents" \
            if r["exponent_bits_median"] is not None else ""
        cpu = r["cpu_seconds"]
        if on_device:
            dev = _us(device_s)
            link = f"{m.get('link_bytes', 0):,.0f} B ({_us(m.get(accounting.LINK, 0.0))})"
            both = _us(m.get(accounting.ACCELERATOR, 0.0))
            ratio = f"{device_s / cpu:,.0f}×" if cpu else "—"
        else:
            dev, link, both, ratio = "host (no device operation)", "—", "—", "—"
        lines.append(f"| {r['operation']}{ebits} | {r['count']} | {dev} | {link} | {both} | "
                     f"{_us(ceiling_seconds(r, device))} | {_us(cpu)} | {ratio} |")
    if fl is not None:
        acc, phe = fl["projected_accelerator_seconds"], fl["python_paillier_seconds"]
        lines.append(f"| **whole iteration** (all parties, a board each; decryption on the "
                     f"host) | 1 | — | — | {acc:.2f} s (per party, summed) | — | "
                     f"python-paillier {phe:.2f} s | "
                     f"python-paillier ÷ accelerator {phe / acc:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3, help="CPU replays to take a median of")
    ap.add_argument("--fl-iterations", type=int, default=2,
                    help="iterations of the projected demo run (0: no whole-iteration row)")
    ap.add_argument("--phe-reps", type=int, default=1, help="python-paillier iterations")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--update-readme", action="store_true", help="copy the table into README")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.fl_iterations < 0 or args.phe_reps < 1:
        ap.error(f"--reps and --phe-reps must be at least 1 and --fl-iterations at least 0, "
                 f"not {args.reps}, {args.phe_reps} and {args.fl_iterations}")

    data = load_breast_cancer_split(seed=0)
    config = Config(iterations=max(args.fl_iterations, 1), key_bits=args.key_bits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        calls = record_iteration(data, config)
        model, cpu = ModelBackend(trust_device_with_secrets=True), CPUBackend()
        rows = measure(calls, args.reps, model=model, cpu=cpu)
        fl = None
        if args.fl_iterations:
            projected = projected_iteration_seconds(data, config)
            fl = {"projected_accelerator_seconds": projected["seconds_per_iteration"],
                  "projected_by_party": projected["per_party"],
                  "python_paillier_seconds": phe_iteration_seconds(data, args.key_bits,
                                                                   args.phe_reps)}
    model.close()
    cpu.close()
    device = model.device
    command = " ".join(["python -m montpipe.bench.ops", *(argv or [])])
    note = (f"{args.key_bits}-bit key, the breast-cancer split ({data.n_train} training "
            f"samples, full batch); device: {device.lanes} lanes × "
            f"{2 * pipeline(device.width).blocks} MULT18X18D, W = {device.width}, window "
            f"{device.window}, {device.clock_mhz:g} MHz — {model.source}; the model trusted "
            f"with secrets for the rows; CPU backend on {cpu.workers} threads, medians of "
            f"{args.reps}; whole iteration: mean of {args.fl_iterations} projected, "
            f"python-paillier median of {args.phe_reps}. Per operation, except count.")
    md = table(rows, device, fl, command, note)
    publish(args.out, "ops", {"command": command, "key_bits": args.key_bits,
                              "device": model.describe()["device"], "rows": rows,
                              "fl_iteration": fl}, md, args.update_readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
