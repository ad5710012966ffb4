"""``python -m montpipe.hdl.export DIR``: write each block of the gateware as Verilog."""

from __future__ import annotations

import sys
from pathlib import Path

from amaranth.back import verilog

from .array import ModExpArray
from .core import ModExpCore
from .modexp import ModExpLane
from .montmul import MontMulLane

#: (file name, factory) of every block exported; widths are the defaults for the 85F build
BLOCKS = [
    ("montmul_lane_w16_s257.v", lambda: MontMulLane(width=16, max_words=257, slots=3)),
    # for ECP5 synthesis: MULT18X18D instances with their own registers (not simulatable as is)
    ("montmul_lane_w16_s257_ecp5.v",
     lambda: MontMulLane(width=16, max_words=257, slots=3, ecp5_dsp=True)),
    ("montmul_lane_w18_s228.v", lambda: MontMulLane(width=18, max_words=228, slots=3)),
    # 36-bit words: each multiplier four MULT18X18D and a pipelined sum (the 85F board build)
    ("montmul_lane_w36_s114.v", lambda: MontMulLane(width=36, max_words=114, slots=3)),
    ("montmul_lane_w36_s114_ecp5.v",
     lambda: MontMulLane(width=36, max_words=114, slots=3, ecp5_dsp=True)),
    # with the sequencer's eight slots at w = 2 (912 words: one 1 024-deep block RAM column)
    ("montmul_lane_w36_s114_slots8_ecp5.v",
     lambda: MontMulLane(width=36, max_words=114, slots=8, ecp5_dsp=True)),
    ("montmul_lane_w16_s10.v", lambda: MontMulLane(width=16, max_words=10, slots=3)),
    ("modexp_lane_w16_s257_win2.v",
     lambda: ModExpLane(width=16, max_words=257, window=2, max_windows=2048)),
    ("modexp_core_w16_s257_win2.v",
     lambda: ModExpCore(width=16, max_words=257, window=2, max_windows=2048)),
    ("modexp_array4_w16_s10_win2.v",
     lambda: ModExpArray(lanes=4, width=16, max_words=10, window=2, max_windows=64)),
]


def export(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in BLOCKS:
        top = make()
        path = out / name
        path.write_text(verilog.convert(top, name=path.stem))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "build/verilog")
    for path in export(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
