"""The federated-learning demo: encrypted = plaintext, masking, failures, data, CLI, Ray."""

import json

import numpy as np
import pytest

from montpipe.fl_demo import run
from montpipe.fl_demo.data import DataError, load_breast_cancer_split, load_csv_pair
from montpipe.fl_demo.protocol import Arbiter, Config, ProtocolError, train_plaintext

# the modules that start Ray share one make-test worker: one Ray cluster at a time
pytestmark = pytest.mark.xdist_group("ray")

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def data():
    return load_breast_cancer_split(seed=0)


def test_split_matches_fates_demo(data):
    assert data.guest_train.shape[1] == 10 and data.host_train.shape[1] == 20
    assert data.n_train + len(data.y_test) == 569
    assert set(np.unique(data.y_train)) == {0.0, 1.0}
    np.testing.assert_allclose(data.guest_train.mean(axis=0), 0, atol=1e-12)


def test_encrypted_protocol_equals_plaintext(data):
    cfg = Config(iterations=4, key_bits=512)
    res = run.train(data, cfg, use_ray=False, progress=False)
    wg, wh, losses, aucs = train_plaintext(data.guest_train, data.host_train, data.y_train, cfg,
                                           data.guest_test, data.host_test, data.y_test)
    np.testing.assert_allclose(res["final_weights"]["guest"], wg, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["final_weights"]["host"], wh, rtol=0, atol=1e-12)
    np.testing.assert_allclose([h["loss"] for h in res["history"]], losses, atol=1e-12)
    np.testing.assert_allclose([h["auc"] for h in res["history"]], aucs, atol=1e-12)
    ops = res["history"][-1]["ops"]
    assert ops["encrypt"] == 2 * data.n_train + 1 and ops["decrypt"] == 31


def test_masking_leaves_results_unchanged_and_hides_gradients(data):
    cfg = dict(iterations=2, key_bits=512)
    masked = run.train(data, Config(**cfg), use_ray=False, progress=False)
    plain = run.train(data, Config(mask=False, **cfg), use_ray=False, progress=False)
    assert masked["final_weights"] == plain["final_weights"]
    # what the arbiter decrypts: with masks, residues spread over Z_n; without, small mantissas
    arb = Arbiter(Config(key_bits=512))
    from montpipe.driver import paillier

    pk = paillier.PaillierPublicKey.from_json(arb.public_key_json())
    g = pk.encrypt_vector(np.array([0.5, -0.25, 1e-3]))
    import secrets

    mask = [secrets.randbelow(pk.n) for _ in range(3)]
    seen = arb.decrypt_gradient(0, "host", g.add_raw(mask).to_json())
    assert all(x == (v + r) % pk.n for x, v, r in zip(
        seen, arb.decrypt_gradient(0, "host", g.to_json()), mask))
    assert min(min(x, pk.n - x) for x in seen) > pk.n >> 64  # not the small signed mantissas


def test_sane_accuracy_with_the_default_hyperparameters(data):
    cfg = Config(key_bits=512)  # 30 iterations, lr 0.15, L2 0.01, full batch
    res = run.train(data, cfg, use_ray=False, progress=False)
    summary = run.summarise(res, data, cfg, {})
    assert abs(summary["final_auc_encrypted"] - summary["final_auc_plaintext"]) <= 0.005
    assert abs(summary["final_auc_encrypted"] - summary["auc_sklearn"]) <= 0.01
    assert summary["max_weight_difference_vs_plaintext"] < 1e-9


def test_mini_batches(data):
    cfg = Config(iterations=3, key_bits=512, batch_size=100)
    res = run.train(data, cfg, use_ray=False, progress=False)
    wg, wh, _, _ = train_plaintext(data.guest_train, data.host_train, data.y_train, cfg)
    np.testing.assert_allclose(res["final_weights"]["host"], wh, atol=1e-12)
    assert res["history"][0]["ops"]["encrypt"] == 2 * 100 + 1


def test_a_crashing_party_is_a_clear_error(data):
    cfg = Config(iterations=3, key_bits=512)
    with pytest.raises(ProtocolError, match=r"party 'host' failed during iteration 1 \(gradient\)"):
        run.train(data, cfg, use_ray=False, progress=False,
                  hooks={"host": [("inject_failure", 1, "gradient")]})


@pytest.mark.filterwarnings("ignore::montpipe.driver.paillier.SecurityWarning")
def test_a_ciphertext_under_the_wrong_key_is_refused(data):
    cfg = Config(iterations=2, key_bits=512)
    with pytest.raises(ProtocolError, match=r"guest refused \[\[u_h/4\]\] from host: .*"
                                            r"encrypted under key"):
        run.train(data, cfg, use_ray=False, progress=False,
                  hooks={"host": [("use_foreign_key", 512)]})
    arb = Arbiter(cfg)
    from montpipe.driver import paillier

    other, _ = paillier.generate_paillier_keypair(n_length=512)
    with pytest.raises(ProtocolError, match=r"arbiter refused a masked gradient from host: "
                                            r".*encrypted under key"):
        arb.decrypt_gradient(0, "host", other.encrypt_vector([1.0]).to_json())
    with pytest.raises(ProtocolError, match=r"arbiter refused the loss from guest"):
        arb.decrypt_loss(0, other.encrypt(1.0).to_json())


def test_bad_configuration_is_rejected():
    for bad, msg in [(dict(iterations=0), "iterations"), (dict(learning_rate=-1), "learning"),
                     (dict(l2=-0.1), "L2"), (dict(batch_size=0), "batch"),
                     (dict(key_bits=1000 + 1), "key size")]:
        with pytest.raises(ValueError, match=msg):
            Config(**bad).validate()


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_pair(tmp_path, data):
    rng = np.random.default_rng(3)
    n = 40
    y = np.array([0, 1] * (n // 2))
    g = rng.normal(size=(n, 2)) + y[:, None]
    h = rng.normal(size=(n, 3))
    gl = ["id,y,a,b"] + [f"s{i},{y[i]},{g[i,0]},{g[i,1]}" for i in range(n)]
    hl = ["id,c,d,e"] + [f"s{i},{h[i,0]},{h[i,1]},{h[i,2]}" for i in reversed(range(n))]
    gp, hp = _write(tmp_path, "g.csv", "\n".join(gl)), _write(tmp_path, "h.csv", "\n".join(hl))
    split = load_csv_pair(gp, hp, seed=1)
    assert split.guest_train.shape[1] == 2 and split.host_train.shape[1] == 3
    assert split.n_train + len(split.y_test) == n
    res = run.train(split, Config(iterations=2, key_bits=512), use_ray=False, progress=False)
    assert len(res["history"]) == 2


@pytest.mark.parametrize("guest, host, message", [
    ("x,y,a\n1,0,1\n2,1,2\n", "id,c\n1,1\n2,2\n", "first column must be 'id'"),
    ("id,label,a\n1,0,1\n2,1,2\n", "id,c\n1,1\n2,2\n", "id, y, then at least one feature"),
    ("id,y,a\n1,0,abc\n2,1,2\n", "id,c\n1,1\n2,2\n", "line 2, column 'a': 'abc' is not a number"),
    ("id,y,a\n1,0,nan\n2,1,2\n", "id,c\n1,1\n2,2\n", "is not finite"),
    ("id,y,a\n1,2,1\n2,1,2\n", "id,c\n1,1\n2,2\n", "label y must be 0 or 1"),
    ("id,y,a\n1,0,1\n1,1,2\n", "id,c\n1,1\n2,2\n", "duplicate id"),
    ("id,y,a\n1,0,1\n2,1,2\n", "id,c\n1,1\n3,2\n", "do not hold the same ids"),
    ("id,y,a\n1,0,1\n2,1\n", "id,c\n1,1\n2,2\n", "line 3 has 2 fields"),
    ("", "id,c\n1,1\n", "empty file"),
])
def test_bad_csvs(tmp_path, guest, host, message):
    gp, hp = _write(tmp_path, "g.csv", guest), _write(tmp_path, "h.csv", host)
    with pytest.raises(DataError, match=message):
        load_csv_pair(gp, hp)


def test_missing_csv(tmp_path):
    with pytest.raises(DataError, match="cannot read it"):
        load_csv_pair(tmp_path / "nope.csv", tmp_path / "nope2.csv")


def test_cli_reports_errors_and_writes_reports(tmp_path, capsys):
    assert run.main(["--iterations", "0", "--no-ray"]) == 2
    assert "iterations must be a positive integer" in capsys.readouterr().err
    assert run.main(["--backend", "gpu", "--no-ray", "--key-bits", "512"]) == 2
    assert "unknown backend 'gpu'" in capsys.readouterr().err
    assert run.main(["--guest-csv", "x.csv", "--no-ray"]) == 2
    assert "go together" in capsys.readouterr().err
    out = tmp_path / "out"
    assert run.main(["--no-ray", "--quiet", "--key-bits", "512", "--iterations", "2",
                     "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["history"]) == 2 and (out / "report.png").stat().st_size > 1000
    assert set(report["seconds_per_iteration_by_category"]) == set(run.CATEGORIES)
    # the CPU backend projects nothing: no figure, and the reason in its place
    assert report["projected_accelerator_seconds_per_iteration"] is None
    assert "backend 'cpu' projects no accelerator time" in \
        report["projected_accelerator"]["reason"]


@pytest.mark.slow
def test_on_ray_end_to_end_and_a_crash(data):
    pytest.importorskip("ray")
    cfg = Config(iterations=1, key_bits=512)
    backends = dict.fromkeys(run.ROLES, "model")  # the CPU's results, projected time
    res = run.train(data, cfg, use_ray=True, progress=False, timeout=120, backends=backends)
    wg, wh, _, _ = train_plaintext(data.guest_train, data.host_train, data.y_train, cfg)
    np.testing.assert_allclose(res["final_weights"]["guest"], wg, atol=1e-12)
    # each actor has its own backend, and each party's projection is its own
    acc = run.summarise(res, data, cfg, backends)["projected_accelerator"]
    assert acc["shared_backend"] == [] and set(acc["per_party"]) == set(run.ROLES)
    assert acc["per_party"]["host"]["device_seconds_per_iteration"] > 0
    keys = ("device_powmods", "device_comb_powers", "device_comb_multiexp_terms",
            "device_products")
    lifetime = {r: tuple(res["backend_reports"][r]["stats"][k] for k in keys) for r in run.ROLES}
    assert len(set(lifetime.values())) == 3      # three backends, three sets of counters
    for r in run.ROLES:   # a party's share is within its own backend's (set-up aside)
        share = acc["per_party"][r]["counters_per_iteration"]
        assert all(share.get(k, 0) <= v for k, v in zip(keys, lifetime[r], strict=True))
    with pytest.raises(ProtocolError, match=r"party 'guest' failed during iteration 0 "
                                            r"\(residual\)"):
        run.train(data, cfg, use_ray=True, progress=False, timeout=120,
                  hooks={"guest": [("inject_failure", 0, "residual")]})


def test_a_backend_projection_is_reported(data):
    """A backend that projects device time but not the link: the party's figure is its device
    time; parties whose backend projects nothing are named, with why, and left out of the sum."""
    from montpipe.driver.backend import register_backend
    from montpipe.driver.backends.cpu import CPUBackend

    class Projecting(CPUBackend):
        name = "projecting-test"

        def powmod(self, bases, exponents, modulus, *, secret=False):
            self.stats.extra["projected_device_seconds"] = (
                self.stats.extra.get("projected_device_seconds", 0.0) + 1e-3 * len(bases))
            return super().powmod(bases, exponents, modulus, secret=secret)

    register_backend("projecting-test", Projecting)
    cfg = Config(iterations=1, key_bits=512)
    backends = {"arbiter": "projecting-test"}
    res = run.train(data, cfg, use_ray=False, progress=False, backends=backends)
    summary = run.summarise(res, data, cfg, backends)
    arbiter = summary["projected_accelerator"]["per_party"]["arbiter"]
    # the arbiter decrypts 31 values: two secret powmods (mod p², mod q²) each
    assert arbiter["device_seconds_per_iteration"] == pytest.approx(2 * 31e-3)
    assert arbiter["link_seconds_per_iteration"] is None
    assert summary["projected_accelerator_seconds_per_iteration"] == pytest.approx(2 * 31e-3)
    assert set(summary["projected_accelerator"]["not_projected"]) == {"guest", "host"}
    assert "backend 'cpu' projects no accelerator time" in \
        summary["projected_accelerator"]["not_projected"]["host"]
    assert summary["backends"]["arbiter"] == "projecting-test"
    run.print_summary(summary)


def _fresh_model(name: str) -> str:
    """A model backend of its own under a new name (get_backend keeps one instance a name)."""
    from montpipe.driver.backend import register_backend
    from montpipe.driver.backends.model import ModelBackend

    register_backend(name, ModelBackend)
    return name


COUNTS = ("device_powmods", "multiexp_terms", "fixed_base_powmods", "host_secret_powmods",
          "mulmods", "calls")


def test_parties_sharing_one_backend_each_report_their_own_share(data, capsys):
    """--no-ray: the three parties share one model backend; each party's projection is what
    its own steps added, the shares differ, and they add up to the backend's counters less the
    set-up (the same whether one iteration is run or two)."""
    setup = []
    for iterations in (1, 2):
        name = _fresh_model(f"model-share-test-{iterations}")
        cfg = Config(iterations=iterations, key_bits=512)
        res = run.train(data, cfg, use_ray=False, progress=False,
                        backends=dict.fromkeys(run.ROLES, name))
        summary = run.summarise(res, data, cfg, {})
        acc = summary["projected_accelerator"]
        assert acc["shared_backend"] == [list(run.ROLES)]
        parties = acc["per_party"]
        assert set(parties) == set(run.ROLES)
        host, guest = parties["host"], parties["guest"]
        assert host["device_seconds_per_iteration"] != guest["device_seconds_per_iteration"]
        # the host encrypts [[u_h/4]], [[u_h²]] and its L2 term: fixed-base powers, its own
        assert host["counters_per_iteration"]["fixed_base_powmods"] >= 2 * data.n_train + 1
        assert host["device_seconds_per_iteration_by_category"]["encryption"] > 0
        assert "encryption" not in guest["device_seconds_per_iteration_by_category"]
        # decryption stays on the host (an untrusted device): the arbiter's, and only its
        decrypts = res["history"][-1]["ops"]["decrypt"]
        assert parties["arbiter"]["counters_per_iteration"]["host_secret_powmods"] == \
            2 * decrypts
        assert host["counters_per_iteration"]["host_secret_powmods"] == 0
        assert parties["arbiter"]["accelerator_seconds_per_iteration"] == 0.0
        total = res["backend_reports"]["guest"]["stats"]
        shares = {k: sum(h["backend_counters"][r][k] for h in res["history"] for r in run.ROLES)
                  for k in COUNTS}
        setup.append({k: total[k] - shares[k] for k in COUNTS})
        run.print_summary(summary)
        out = capsys.readouterr().out
        assert "backend shared by guest, host, arbiter" in out
        assert out.count("projected accelerator time per iteration, ") == 4
    assert setup[0] == setup[1]
    assert setup[0]["host_secret_powmods"] == 0


def test_the_report_sums_each_partys_accelerator_time(tmp_path, data):
    """Per party and iteration, the time device and link take as the backend drives them
    (the model's own counter), summed: at least the device's time, at most device and link
    one after the other."""
    out = tmp_path / "model"
    name = _fresh_model("model-report-test")
    assert run.main(["--no-ray", "--quiet", "--key-bits", "512", "--iterations", "2",
                     "--backend", name, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    counters = [[h["backend_counters"][r] for r in run.ROLES] for h in report["history"]]
    per_iteration = [sum(c["projected_accelerator_seconds"] for c in cs) for cs in counters]
    assert report["projected_accelerator_seconds_per_iteration"] == \
        pytest.approx(sum(per_iteration) / 2)
    for cs in counters:
        for c in cs:
            device, link = c["projected_device_seconds"], c["projected_link_seconds"]
            assert device <= c["projected_accelerator_seconds"] <= device + link + 1e-12
    assert report["projected_accelerator_seconds_per_iteration"] > 0


@pytest.mark.slow
def test_a_stuck_party_times_out_with_a_clear_error(data):
    pytest.importorskip("ray")
    cfg = Config(iterations=2, key_bits=512)
    with pytest.raises(ProtocolError, match=r"party 'arbiter' failed during iteration 1 "
                                            r"\(decrypt_gradient\): GetTimeoutError"):
        # the timeout bounds every call, set-up and a party's first evaluation (its imports)
        # included, so it leaves room for a loaded machine; the stall is far longer
        run.train(data, cfg, use_ray=True, progress=False, timeout=45,
                  hooks={"arbiter": [("inject_failure", 1, "decrypt", 120.0)]})


@pytest.mark.slow
def test_parties_pinned_to_a_node(data):
    ray = pytest.importorskip("ray")
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        node = ray.get_runtime_context().get_node_id()
        cfg = Config(iterations=1, key_bits=512)
        res = run.train(data, cfg, use_ray=True, progress=False, timeout=120,
                        nodes={r: node for r in run.ROLES})
        assert len(res["history"]) == 1
        with pytest.raises(ValueError, match="--guest-node: no live Ray node 'ab12'"):
            run.train(data, cfg, use_ray=True, progress=False, timeout=5,
                      nodes={"guest": "ab12"})
    finally:
        ray.shutdown()


@pytest.mark.filterwarnings("ignore::montpipe.driver.paillier.SecurityWarning")
def test_hostile_messages_are_protocol_errors(data):
    """Whatever another party sends (None, a missing field, JSON nested deep, an exponent
    no value needs), the receiving party answers with a ProtocolError naming it."""
    import json

    from montpipe.fl_demo.protocol import Guest, Host

    cfg = Config(iterations=1, key_bits=512)
    arb = Arbiter(cfg)
    host = Host(data.host_train, cfg)
    guest = Guest(data.guest_train, data.y_train, cfg)
    for party in (host, guest):
        party.set_public_key(arb.public_key_json())
    idx = np.arange(4)
    msg = host.forward(0, idx)
    big = json.dumps({**json.loads(msg["u_quarter"]), "exponent": 10_000})
    deep = "[" * 100_000
    bad_messages = [None, {}, {**msg, "u_square": None}, {k: msg[k] for k in ("u_quarter",)},
                    {**msg, "u_quarter": deep}, {**msg, "u_quarter": big},
                    {**msg, "reg": json.dumps({**json.loads(msg["reg"]), "exponent": -10**7})},
                    [msg]]
    for bad in bad_messages:
        with pytest.raises(ProtocolError, match="guest"):
            guest.residual(0, idx, bad)
    for bad in (None, deep, big, 42):
        with pytest.raises(ProtocolError, match="host refused"):
            host.gradient(0, bad)
        with pytest.raises(ProtocolError, match="arbiter refused"):
            arb.decrypt_gradient(0, "host", bad)
        with pytest.raises(ProtocolError, match="arbiter refused"):
            arb.decrypt_loss(0, bad)
        with pytest.raises(ProtocolError, match="refused the public key"):
            Host(data.host_train, cfg).set_public_key(bad)
    host.gradient(0, guest.residual(0, idx, msg)[0])
    for bad in (None, [None] * 30, "x", [1.5] * 30):
        with pytest.raises(ProtocolError, match="list of integers"):
            host.update(0, bad)
