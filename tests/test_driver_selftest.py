"""``python -m montpipe.driver.selftest``: on the simulated board it passes every check; a
wrong build, a wrong result or a dead port fails it with the exit status saying so. No board is
attached to any machine here: the selftest is tested against the simulated board."""

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("amaranth", reason="the simulated board needs pip install .[hdl]")

from montpipe.device.wire import PROTOCOL_VERSION
from montpipe.driver import selftest


def test_selftest_passes_on_the_simulated_board(tmp_path, capsys):
    out = tmp_path / "selftest.json"
    try:
        status = selftest.main(["--sim", "--json", str(out), "--seed", "7"])
    except RuntimeError as exc:            # no Verilator or no C++ compiler
        pytest.skip(f"{exc} — the simulated board could not be built")
    printed = capsys.readouterr().out
    assert status == 0, printed
    report = json.loads(out.read_text())
    names = [c["name"] for c in report["checks"]]
    assert names == ["caps", "known-answers", "paillier-1024", "comb", "throughput", "link"]
    assert report["passed"] and all(c["passed"] is not False for c in report["checks"])
    known = report["checks"][1]
    assert known["checked"] >= 70 and known["wrong"] == 0
    comb = report["checks"][3]
    assert comb["passed"] and comb["checked"] >= 4 and comb["wrong"] == 0
    assert "selftest PASSED on the simulated board" in printed


def _backend(**caps):
    base = dict(version=PROTOCOL_VERSION, width=36, n_max_bits=4102, lanes=15, window=2,
                max_windows=1024, contexts=2, clock_khz=75_000, table_entries=256)
    return SimpleNamespace(caps=SimpleNamespace(**{**base, **caps}))


def test_caps_are_checked_against_the_synthesis_report():
    report = {"configuration": {"width": 36, "lanes": 15, "window": 2, "max_windows": 1024,
                                "contexts": 2, "n_max_bits": 4102},
              "pll": {"f_out_mhz": 75.0}}
    assert selftest.check_caps(_backend(), report).passed
    wrong = selftest.check_caps(_backend(lanes=8, clock_khz=50_000), report)
    assert not wrong.passed
    assert "lanes 8 where the report built 15" in wrong.detail
    assert "clock 50000 kHz where the report's PLL gives 75000" in wrong.detail
    old = selftest.check_caps(_backend(version=PROTOCOL_VERSION + 1), None)
    assert not old.passed and "driver speaks" in old.detail


class _WrongDevice:
    """A backend whose device gets one exponentiation wrong."""

    def __init__(self):
        self.caps = _backend(n_max_bits=106, max_windows=16).caps
        self.stats = SimpleNamespace(extra={})
        self.calls = 0

    def powmod(self, bases, exps, m):
        self.calls += 1
        out = [pow(b, e, m) for b, e in zip(bases, exps, strict=True)]
        if self.calls == 2:
            out[3] ^= 1
        return out


def test_a_wrong_result_fails_known_answers():
    import random

    check = selftest.check_known_answers(_WrongDevice(), random.Random(1), "all")
    assert not check.passed and check.data["wrong"] == 1
    assert check.detail.startswith("1 of ") and "wrong, first:" in check.detail


def test_exit_status_and_errors(monkeypatch, capsys):
    # a port that does not exist: a one-line error, status 2
    assert selftest.main(["--port", "/dev/ttyNOSUCHPORT"]) == 2
    assert "cannot open the device port '/dev/ttyNOSUCHPORT'" in capsys.readouterr().err
    # a port where nothing answers (pyserial's loop:// echoes our own requests back)
    assert selftest.main(["--port", "loop://"]) == 2
    assert "no montpipe accelerator answers at loop://" in capsys.readouterr().err
    # a failing check: status 1 and FAIL in the table
    monkeypatch.setattr(selftest, "FPGABackend", lambda *a, **k: SimpleNamespace(
        close=lambda: None))
    monkeypatch.setattr(selftest, "run_checks", lambda *a, **k: [
        selftest.Check("caps", True, "fine"), selftest.Check("link", False, "bad CRCs 3")])
    assert selftest.main(["--port", "/dev/ttyUSB0"]) == 1
    out = capsys.readouterr().out
    assert "link  FAIL    bad CRCs 3" in out and "selftest FAILED" in out


def test_the_link_rate_comes_from_the_boards_report(monkeypatch, capsys):
    """Without --baud the port is opened at the rate the board's committed report was built
    for (12 Mbaud on the ECPIX-5, 3 on the ULX3S); a rate of nothing is refused by name."""
    opened = []

    def backend(port, *, baudrate):
        opened.append(baudrate)
        return SimpleNamespace(close=lambda: None)

    monkeypatch.setattr(selftest, "FPGABackend", backend)
    monkeypatch.setattr(selftest, "run_checks", lambda *a, **k: [
        selftest.Check("caps", True, "fine")])
    reports = selftest.REPORTS
    for board in ("ecpix5-85", "ulx3s-85f"):
        want = json.loads((reports / f"{board}.json").read_text())["configuration"]["baud"]
        assert selftest.main(["--port", "/dev/ttyUSB0", "--board", board]) == 0
        assert opened[-1] == want
    assert opened == [12_000_000, 3_000_000]
    assert selftest.main(["--port", "/dev/ttyUSB0", "--baud", "0"]) == 2
    assert "--baud must be a positive number of bits a second, not 0" in capsys.readouterr().err


def test_busy_is_no_fault_only_where_the_link_outruns_the_feed():
    """At 3 Mbaud two short frames take longer to arrive than the longest takes to be fed to a
    lane, so BUSY on a board is a fault; at 12 Mbaud (the ECPIX-5) it is not."""
    caps = _backend().caps
    assert not selftest.busy_possible(caps, 62.5e6, 3_000_000)
    assert not selftest.busy_possible(caps, 75e6, 3_000_000)
    assert selftest.busy_possible(caps, 83.33e6, 12_000_000)
    # the link row: one BUSY answered and sent again passes on the fast link only
    busy = SimpleNamespace(caps=caps, link_status=lambda: {"frames": 90, "bad_crc": 0,
                                                            "errors": 1, "timeouts": 0},
                           stats=SimpleNamespace(extra={"retries": 1, "stale_responses": 0,
                                                        "timeouts": 0,
                                                        "retry_causes": {"BUSY": 1}}))
    assert selftest.check_link(busy, simulated=False, clock_hz=83.33e6, baud=12_000_000).passed
    slow = selftest.check_link(busy, simulated=False, clock_hz=62.5e6, baud=3_000_000)
    assert not slow.passed and "unclean link (errors 1, retries 1)" in slow.detail
