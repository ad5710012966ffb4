"""The per-operation benchmark's accounting, at a small key: what it records, replays and
tabulates (the figures themselves come from `make bench`)."""

import json

import pytest

from montpipe.bench import ops
from montpipe.fl_demo.data import load_breast_cancer_split

pytest.importorskip("sklearn")


@pytest.mark.filterwarnings("ignore::montpipe.driver.paillier.SecurityWarning")
def test_the_table_of_one_iteration_at_a_small_key(tmp_path):
    pytest.importorskip("phe")
    data = load_breast_cancer_split(seed=0)
    assert ops.main(["--key-bits", "512", "--reps", "1", "--fl-iterations", "1",
                     "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "ops.json").read_text())
    rows = {r["operation"].split(" (")[0]: r for r in record["rows"]}
    assert {"multiexp term", "fixed-base power", "mulmod", "powmod, secret"} <= set(rows)
    # X_gᵀ[[d]], X_hᵀ[[d]] and the loss's dot product: one term per sample and feature
    features = data.guest_train.shape[1] + data.host_train.shape[1]
    assert rows["multiexp term"]["count"] == data.n_train * (features + 1)
    # the recorded calls are the ones the demo's own counters count, party by party
    counted = sum(p["counters_per_iteration"]["multiexp_terms"]
                  for p in record["fl_iteration"]["projected_by_party"].values())
    assert counted == rows["multiexp term"]["count"]
    device = ops.ModelBackend().device
    for name in ("multiexp term", "fixed-base power", "powmod, secret"):
        r = rows[name]
        assert r["model"]["projected_device_seconds"] > 0 and r["model"]["link_bytes"] > 0
        assert r["cpu_seconds"] > 0
        # the ceiling is every multiplier busy: no projection can beat it
        assert ops.ceiling_seconds(r, device) < r["model"]["projected_device_seconds"]
        # device and link together take at least the device's time, at most both in turn
        both = r["model"]["projected_accelerator_seconds"]
        assert r["model"]["projected_device_seconds"] <= both <= \
            r["model"]["projected_device_seconds"] + r["model"]["projected_link_seconds"]
    assert rows["mulmod"]["model"].get("projected_device_seconds", 0.0) == 0
    md = (tmp_path / "ops.md").read_text()
    assert md.startswith("Measured by `python -m montpipe.bench.ops --key-bits 512")
    assert f"| {rows['mulmod']['operation']} | " in md and "host (no device operation)" in md
    assert "**whole iteration**" in md and record["fl_iteration"]["python_paillier_seconds"] > 0


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        ops.main(["--reps", "0"])
    assert "--reps and --phe-reps must be at least 1" in capsys.readouterr().err
