"""``python -m montpipe.fl_demo.sim_check`` (part of ``make sim``): the hetero-LR demo end to end
on the simulated board.

Every party's backend is the ``sim`` backend (the gateware under Verilator behind a
pseudo-terminal, the ``fpga`` backend's host code), with every device result re-computed on the
CPU (``MONTPIPE_FPGA_SPOT_CHECK=1``: each exponentiation, fixed-base power and multi-
exponentiation row). It passes when the encrypted protocol's weights equal the plaintext
algorithm's, no result differed from the CPU's, nothing fell back to the CPU or was retried,
and the device ran the comb for both fixed-base powers and multi-exponentiations. It writes
``build/sim/fl/report.json`` with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .._provenance import git_revision
from .data import load_breast_cancer_split
from .protocol import Config
from .run import ROLES, summarise, train


def checks(summary: dict) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) rows for a summary of a run on the sim backend."""
    rows = []
    diff = summary["max_weight_difference_vs_plaintext"]
    rows.append(("weights equal the plaintext algorithm's", diff < 1e-9,
                 f"max |w_encrypted − w_plaintext| = {diff:.2e}"))
    reports = summary["backend_reports"]
    comb_powers = comb_terms = 0
    for role in ROLES:
        stats = reports.get(role, {}).get("stats", {})
        extra = {k: stats.get(k, 0) for k in ("fallbacks", "retries", "spot_checked",
                                                "comb_powers", "comb_multiexp_terms",
                                                "device_powmods")}
        comb_powers = max(comb_powers, extra["comb_powers"])
        comb_terms = max(comb_terms, extra["comb_multiexp_terms"])
        rows.append((f"{role}: no fallback, no retry",
                     extra["fallbacks"] == 0 and extra["retries"] == 0,
                     f"fallbacks {extra['fallbacks']}, retries {extra['retries']}"))
        rows.append((f"{role}: device results checked", extra["spot_checked"] > 0,
                     f"{extra['spot_checked']} re-computed on the CPU, all equal "
                     f"({extra['device_powmods']} exponentiations, {extra['comb_powers']} "
                     f"fixed-base powers, {extra['comb_multiexp_terms']} multiexp terms)"))
    rows.append(("the comb ran both operations", comb_powers > 0 and comb_terms > 0,
                 f"{comb_powers} fixed-base powers, {comb_terms} multiexp terms"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montpipe.fl_demo.sim_check",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--key-bits", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/sim/fl")
    args = ap.parse_args(argv)
    # every device result re-computed on the CPU; a difference raises DeviceResultError
    os.environ["MONTPIPE_FPGA_SPOT_CHECK"] = "1"
    config = Config(iterations=args.iterations, batch_size=args.batch_size,
                    key_bits=args.key_bits, seed=args.seed)
    config.validate()
    data = load_breast_cancer_split(seed=args.seed)
    backends = dict.fromkeys(ROLES, "sim")
    started = time.perf_counter()
    result = train(data, config, use_ray=False, backends=backends, progress=False)
    seconds = time.perf_counter() - started
    summary = summarise(result, data, config, backends)
    rows = checks(summary)
    passed = all(ok for _, ok, _ in rows)
    for name, ok, detail in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m montpipe.fl_demo.sim_check " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:])
    (out / "report.json").write_text(json.dumps({
        "command": command.strip(), "git_revision": git_revision(), "passed": passed,
        "seconds": round(seconds, 1), "checks": [{"name": n, "passed": ok, "detail": d}
                                                  for n, ok, d in rows],
        "summary": summary}, indent=1))
    print(f"{'PASSED' if passed else 'FAILED'} in {seconds:.0f} s; wrote {out / 'report.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
