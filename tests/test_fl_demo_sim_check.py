"""The end-to-end check on the simulated board judges a run by its summary: equal weights, no
fallback or retry, device results checked, the comb used for both operations."""

from montpipe.fl_demo.sim_check import checks


def summary(diff=1e-18, **stats):
    base = {"fallbacks": 0, "retries": 0, "spot_checked": 10, "comb_powers": 4,
            "comb_multiexp_terms": 40, "device_powmods": 2}
    role = {"stats": {**base, **stats}}
    return {"max_weight_difference_vs_plaintext": diff,
            "backend_reports": {"guest": role, "host": role, "arbiter": role}}


def test_a_clean_run_passes():
    assert all(ok for _, ok, _ in checks(summary()))


def test_each_failure_is_named():
    for bad, name in [(summary(diff=1e-3), "weights"), (summary(fallbacks=1), "fallback"),
                      (summary(retries=2), "retry"), (summary(spot_checked=0), "checked"),
                      (summary(comb_multiexp_terms=0), "comb")]:
        failed = [n for n, ok, _ in checks(bad) if not ok]
        assert failed and all(name in n for n in failed), (name, failed)
