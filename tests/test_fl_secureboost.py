"""SecureBoost: the encrypted protocol builds the plaintext reference's trees exactly; the
packing bound holds at its worst case; AUC against scikit-learn; bad input and failures."""

import json

import numpy as np
import pytest

from montpipe.driver import packing
from montpipe.driver.vector import EncryptedVector
from montpipe.fl_demo import sb_run
from montpipe.fl_demo.data import load_breast_cancer_split, load_synthetic_split
from montpipe.fl_demo.protocol import ProtocolError
from montpipe.fl_demo.secureboost import SBConfig, gh_layout, quantize, train_plaintext

# the modules that start Ray share one make-test worker: one Ray cluster at a time
pytestmark = pytest.mark.xdist_group("ray")

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def data():
    return load_breast_cancer_split(seed=0)


@pytest.fixture(scope="module")
def synthetic():
    return load_synthetic_split(seed=0)


def _train(split, cfg, **kw):
    parties = {}
    res = sb_run.train(split, cfg, use_ray=False, progress=False, parties_out=parties, **kw)
    return res, parties


def _same_trees(res, parties, split, cfg):
    trees, thresholds, aucs = train_plaintext(split.guest_train, split.host_train,
                                              split.y_train, cfg, split.guest_test,
                                              split.host_test, split.y_test)
    assert res["trees"] == [t.nodes for t in trees]          # splits, bins, leaf weights
    assert parties["host"].thresholds == thresholds          # the host's private thresholds
    assert [h["auc"] for h in res["history"]] == aucs
    assert all("threshold" not in n for t in res["trees"] for n in t.values()
               if n.get("party") == "host")                   # the guest never holds them
    return trees


def test_encrypted_trees_equal_the_plaintext_reference(data):
    cfg = SBConfig(trees=2, key_bits=512)
    res, parties = _train(data, cfg)
    trees = _same_trees(res, parties, data, cfg)
    assert {n.get("party") for t in trees for n in t.nodes.values()} >= {"guest", "host"}
    ops = res["history"][0]["ops"]
    assert ops["encrypt"] == data.n_train                     # g and h packed: one a row
    assert ops["ct-ct"] > 0                                   # siblings by subtraction
    per = packing.slots_per_plaintext(parties["guest"].pk,
                                      gh_layout(cfg.precision_bits, data.n_train).bits)
    sums = ops["shift"] + ops["decrypt"]                      # every sum sent, compressed
    assert ops["decrypt"] < sums / (per - 1)


def test_unpacked_and_subsampled_give_the_same_trees_too(data):
    cfg = SBConfig(trees=2, depth=2, key_bits=512, pack=False, subsample=0.6, l2=1.0,
                   min_child_weight=2.0, learning_rate=0.5, bins=8)
    res, parties = _train(data, cfg)
    _same_trees(res, parties, data, cfg)
    rows = round(0.6 * data.n_train)
    assert res["history"][0]["ops"]["encrypt"] == 2 * rows    # g and h apart


def test_trees_on_the_larger_set_at_a_small_key(synthetic):
    small = load_synthetic_split(n_samples=1500, seed=1)
    cfg = SBConfig(trees=1, key_bits=512)
    res, parties = _train(small, cfg)
    _same_trees(res, parties, small, cfg)
    assert small.guest_train.shape[1] == small.host_train.shape[1] == 15
    assert synthetic.n_train + len(synthetic.y_test) == 20_000


@pytest.mark.parametrize("name", ["breast-cancer", "synthetic"])
def test_auc_within_001_of_scikit_learn(name, data, synthetic):
    """The algorithm's AUC (the encrypted protocol's too: its trees are the same, above)
    against HistGradientBoostingClassifier at the same hyper-parameters."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    split = data if name == "breast-cancer" else synthetic
    cfg = SBConfig()
    _, _, aucs = train_plaintext(split.guest_train, split.host_train, split.y_train, cfg,
                                 split.guest_test, split.host_test, split.y_test)
    params = sb_run.sklearn_parameters(cfg)
    assert params["max_iter"] == cfg.trees and params["max_depth"] == cfg.depth
    with threadpool_limits(limits=1):
        sk = HistGradientBoostingClassifier(**params).fit(
            np.hstack([split.guest_train, split.host_train]), split.y_train)
    ref = roc_auc_score(split.y_test, sk.decision_function(
        np.hstack([split.guest_test, split.host_test])))
    assert abs(aucs[-1] - ref) <= 0.01, (aucs[-1], ref)
    assert aucs[-1] > 0.9


def test_packing_bound_holds_at_its_worst_case(keypair_factory):
    """Every sample at the extremes (g = +1, h = 1/4) in one bin: the packed sum still unpacks
    exactly, and one bit less for g would not hold it."""
    pk, sk = keypair_factory(512)
    P, N = 32, 1000
    gq, hq = quantize(np.ones(N), np.full(N, 0.25), P)
    assert gq.max() == 2 ** (P + 1) and hq.max() == 2 ** (P - 2)
    layout = gh_layout(P, N)
    assert layout.bits == 2 * P + 2 * N.bit_length() - 1
    layout.check_fits(pk)
    v = EncryptedVector(pk, pk.raw_encrypt_batch(layout.pack([hq.tolist(), gq.tolist()])), 0)
    total = packing.group_sum(v, np.zeros(N, dtype=int), 1)
    h_sum, g_sum = layout.unpack(sk.raw_decrypt_batch(total.ciphertexts()))
    assert (g_sum[0], h_sum[0]) == (N * 2 ** (P + 1), N * 2 ** (P - 2))
    assert 1 << (layout.widths[1] - 1) <= N * 2 ** (P + 1)  # the g field is not oversized
    with pytest.raises(ValueError, match="gradients must lie"):
        quantize(np.array([1.5]), np.array([0.1]), P)


def test_a_crashing_party_is_a_clear_error(data):
    cfg = SBConfig(trees=3, key_bits=512)
    with pytest.raises(ProtocolError, match=r"party 'host' failed during tree 1 \(histograms\)"):
        sb_run.train(data, cfg, use_ray=False, progress=False,
                     hooks={"host": [("inject_failure", 1, "histograms")]})


@pytest.mark.filterwarnings("ignore::montpipe.driver.paillier.SecurityWarning")
def test_bad_messages_are_refused(data):
    cfg = SBConfig(trees=1, key_bits=512)
    with pytest.raises(ProtocolError, match=r"host refused tree 0's gradients from guest: "
                                            r".*encrypted under key"):
        sb_run.train(data, cfg, use_ray=False, progress=False,
                     hooks={"guest": [("use_foreign_key", 512)]})
    _, parties = _train(data, cfg)
    host, guest = parties["host"], parties["guest"]
    with pytest.raises(ProtocolError, match=r"split at feature 99, bin 0; it has 20 features"):
        host.split(0, [(host._nodes[0] if host._nodes else 0, 99, 0)])
    with pytest.raises(ProtocolError, match=r"split of node 12345"):
        host.split(0, [(12345, 0, 0)])
    with pytest.raises(ProtocolError, match=r"rows as"):
        host.receive_gradients(1, {"rows": [3, 2], "widths": [40, 40], "packed": True,
                                   "gh": []})
    with pytest.raises(ProtocolError, match="host has no split"):
        host.walk("test", {(7, 0): [0]})
    guest.start_tree(1)
    guest.plan(1)
    with pytest.raises(ProtocolError, match="bin counts of shape"):
        guest.find_splits(1, {"nodes": [0], "counts": [1, 2], "hist": None})


def test_bad_configuration_is_rejected():
    for bad, msg in [(dict(trees=0), "trees"), (dict(depth=0), "depth"),
                     (dict(bins=1), "bins"), (dict(learning_rate=0), "learning rate"),
                     (dict(subsample=1.5), "subsample"), (dict(l2=-1), "lambda"),
                     (dict(min_child_weight=-1), "min child weight"),
                     (dict(key_bits=1001), "key size"), (dict(precision_bits=4), "precision")]:
        with pytest.raises(ValueError, match=msg):
            SBConfig(**bad).validate()


def test_the_launcher_runs_secureboost_beside_lr():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "montpipe.fl_demo", "secureboost", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--min-child-weight" in r.stdout
    r = subprocess.run([sys.executable, "-m", "montpipe.fl_demo", "lr", "--iterations", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "iterations must be a positive integer" in r.stderr


def test_cli_writes_the_report_with_a_projecting_backend(tmp_path, capsys):
    assert sb_run.main(["--no-ray", "--trees", "0"]) == 2
    assert "trees must be an integer >= 1, not 0" in capsys.readouterr().err
    assert sb_run.main(["--no-ray", "--backend", "gpu", "--key-bits", "512"]) == 2
    assert "unknown backend 'gpu'" in capsys.readouterr().err
    assert sb_run.main(["--no-ray", "--guest-csv", "g.csv"]) == 2
    assert "go together" in capsys.readouterr().err
    assert sb_run.main(["--no-ray", "--data", "synthetic", "--rows", "5"]) == 2
    assert "--rows must be at least 10, not 5" in capsys.readouterr().err
    out = tmp_path / "sb"
    assert sb_run.main(["--no-ray", "--quiet", "--key-bits", "512", "--trees", "2",
                     "--depth", "1", "--backend", "model", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("auc_encrypted", "auc_plaintext", "auc_sklearn", "trees_equal_plaintext",
                "crypto_operations", "seconds_per_tree_by_category", "projected"):
        assert key in report
    assert report["trees_equal_plaintext"] is True
    assert report["auc_encrypted"] == report["auc_plaintext"]
    assert len(report["history"]) == 2 and "auc" in report["history"][0]
    assert set(report["history"][0]["seconds"]) == set(sb_run.CATEGORIES)
    projected = report["projected"]["guest+host"]
    assert projected["projected_device_seconds_per_tree"] > 0
    assert projected["grouped_mulmods_per_tree"] > 0
    assert (out / "report.png").stat().st_size > 1000


@pytest.mark.slow
def test_on_ray_end_to_end(data):
    pytest.importorskip("ray")
    cfg = SBConfig(trees=1, depth=2, key_bits=512)
    res = sb_run.train(data, cfg, use_ray=True, progress=False, timeout=120)
    trees, _, _ = train_plaintext(data.guest_train, data.host_train, data.y_train, cfg)
    assert res["trees"] == [t.nodes for t in trees]


def test_a_csv_pair_trains(tmp_path):
    from montpipe.fl_demo.data import load_csv_pair

    rng = np.random.default_rng(4)
    n = 60
    y = np.array([0, 1] * (n // 2))
    g = rng.normal(size=(n, 2)) + y[:, None]
    h = rng.normal(size=(n, 3)) - y[:, None]
    (tmp_path / "g.csv").write_text("\n".join(
        ["id,y,a,b"] + [f"s{i},{y[i]},{g[i, 0]},{g[i, 1]}" for i in range(n)]))
    (tmp_path / "h.csv").write_text("\n".join(
        ["id,c,d,e"] + [f"s{i},{h[i, 0]},{h[i, 1]},{h[i, 2]}" for i in reversed(range(n))]))
    split = load_csv_pair(tmp_path / "g.csv", tmp_path / "h.csv", seed=1)
    cfg = SBConfig(trees=2, depth=2, bins=8, key_bits=512)
    res, parties = _train(split, cfg)
    _same_trees(res, parties, split, cfg)
