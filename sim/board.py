"""The simulated board: the accelerator's gateware, built with Verilator, behind a
pseudo-terminal.

``SimulatedBoard`` runs the Verilator model of :class:`SimBoard` (the host link and the
exponentiation array, optionally behind the UART) as a subprocess whose serial port is a
pseudo-terminal, so the driver's ``fpga`` code opens it exactly as it opens a board
(``/dev/ttyUSB0`` there, ``/dev/pts/N`` here). Two levels:

* ``uart_divisor=0`` (default): bytes go into the link's byte stream one a cycle — the speed of
  the gateware itself, what the ``sim`` backend uses;
* ``uart_divisor=N``: the board top's UART receiver and transmitter are in the model and the
  harness drives and samples the serial pins as 8N1 frames of N cycles a bit — the whole path of
  a real board but the pins, for one end-to-end test.

The harness (``board_main.cpp``) clocks the design only while it is busy or bytes are pending,
and pulses its reset on ``SIGUSR1`` (:meth:`SimulatedBoard.reset_device`, a board reset for the
fault tests). ``python -m montpipe.sim.board`` starts one and prints its port.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from ..hdl.link import FrameLink
from ..hdl.model import montgomery_words
from ..hdl.uart import UARTRx, UARTTx

__all__ = ["BoardConfig", "SimBoard", "SimulatedBoard", "build"]

HARNESS = Path(__file__).with_name("board_main.cpp")


@dataclass(frozen=True)
class BoardConfig:
    """Build parameters of the simulated board. The default holds a 2048-bit modulus — Paillier
    at 1024-bit keys (n², and p², q² for CRT decryption) — with 1024-bit exponents, on the
    85F board build's 36-bit words."""

    lanes: int = 2
    width: int = 36
    n_max_bits: int = 2048
    window: int = 2
    max_exponent_bits: int = 1024
    contexts: int = 4
    uart_divisor: int = 0           # 0: the link's byte stream; N: 8N1 on the pins, N cycles a bit
    timeout: int = 20_000           # cycles before the link drops a stalled frame
    clock_khz: int = 125_000        # what the capabilities report (the simulation has no clock)

    @property
    def max_words(self) -> int:
        return montgomery_words(self.n_max_bits, self.width)

    @property
    def max_windows(self) -> int:
        return -(-self.max_exponent_bits // self.window)

    def key(self) -> str:
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


class SimBoard(wiring.Component):
    """The simulated board's top: :class:`~montpipe.hdl.link.FrameLink`, behind the board's
    UART when ``config.uart_divisor`` is set, with ``busy`` for the harness."""

    def __init__(self, config: BoardConfig) -> None:
        self.config = c = config
        self.link = FrameLink(width=c.width, max_words=c.max_words, window=c.window,
                              max_windows=c.max_windows, lanes=c.lanes, contexts=c.contexts,
                              timeout=c.timeout, clock_khz=c.clock_khz)
        if c.uart_divisor:
            ports = {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1)}
        else:
            # flat names: Verilator would mangle the "__" of stream members in its C++
            ports = {"rx_data": In(8), "rx_valid": In(1), "rx_ready": Out(1),
                     "tx_data": Out(8), "tx_valid": Out(1), "tx_ready": In(1),
                     "busy": Out(1)}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.d.comb += self.busy.eq(link.busy)
        d = self.config.uart_divisor
        if d:
            m.submodules.uart_rx = rx = UARTRx(d)
            m.submodules.uart_tx = tx = UARTTx(d)
            m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
            connect(m, rx.o_stream, link.i_rx)
            connect(m, link.o_tx, tx.i_stream)
        else:
            m.d.comb += [link.i_rx.payload.eq(self.rx_data), link.i_rx.valid.eq(self.rx_valid),
                         self.rx_ready.eq(link.i_rx.ready),
                         self.tx_data.eq(link.o_tx.payload), self.tx_valid.eq(link.o_tx.valid),
                         link.o_tx.ready.eq(self.tx_ready)]
        return m


#: executables built (or found) by this process: converting the design to Verilog to find its
#: build takes over a second, and a test session starts a dozen boards of one configuration
_built: dict[tuple[BoardConfig, Path], Path] = {}


def build(config: BoardConfig = BoardConfig(), *, root: Path = Path("build/sim/board"),
          verbose: bool = False) -> Path:
    """Verilate and compile the board for ``config``; returns the executable. A build is kept
    under ``root`` by a hash of its Verilog and the harness, and reused."""
    from amaranth.back import verilog

    from .runner import prepare

    prepare("verilator")
    known = _built.get((config, root.resolve()))
    if known is not None and known.exists():
        return known
    source = verilog.convert(SimBoard(config), name="sim_board")
    harness = HARNESS.read_text()
    digest = hashlib.sha256((source + harness).encode()).hexdigest()[:12]
    directory = (root / f"{config.key()}-{digest}").resolve()
    exe = directory / "obj_dir" / "Vsim_board"
    _built[(config, root.resolve())] = exe
    if exe.exists():
        return exe
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sim_board.v").write_text(source)
    shutil.copy(HARNESS, directory / "board_main.cpp")
    cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-lint",
           "--top-module", "sim_board", "-j", str(os.cpu_count() or 1),
           "-CFLAGS", f"-O2 -DUART_DIVISOR={config.uart_divisor}",
           "sim_board.v", "board_main.cpp"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    (directory / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0 or not exe.exists():
        raise RuntimeError(f"Verilator build of the simulated board failed (exit "
                           f"{proc.returncode}); see {directory / 'build.log'}")
    if verbose:
        print(f"built {exe} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return exe


class SimulatedBoard:
    """A running simulated board. ``port`` is its pseudo-terminal, for
    :class:`~montpipe.driver.backends.fpga.FPGABackend` or any serial-port program.

    Use as a context manager, or call :meth:`close`. ``stats()`` after close gives the simulated
    cycles and wall time.
    """

    def __init__(self, config: BoardConfig = BoardConfig(), *,
                 root: Path = Path("build/sim/board"), link: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        self.config = config
        self.executable = build(config, root=root)
        cmd = [str(self.executable)]
        if link is not None:
            cmd += ["--link", str(link)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        self._stderr: list[str] = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        line = self._read_line(start_timeout)
        if not line.startswith("PTY "):
            self.close()
            raise RuntimeError(f"simulated board did not start: {line!r} "
                               f"{''.join(self._stderr)}")
        self.port = line.split(None, 1)[1].strip()
        self._closed = False

    def _read_line(self, timeout: float) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0] if result else ""

    def _drain_stderr(self) -> None:
        for line in self._proc.stderr:
            self._stderr.append(line)

    def reset_device(self) -> None:
        """Pulse the design's reset, as a board reset would: contexts and results in flight
        are lost."""
        self._proc.send_signal(signal.SIGUSR1)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._err_thread.join(5)
        self._closed = True

    def stats(self) -> dict:
        """``cycles`` and ``wall_s`` of the simulation (after :meth:`close`)."""
        for line in self._stderr:
            if line.startswith("STATS "):
                return {k: float(v) for k, v in
                        (item.split("=") for item in line.split()[1:])}
        return {}

    def __enter__(self) -> SimulatedBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m montpipe.sim.board",
        description="Run the simulated board behind a pseudo-terminal until interrupted.")
    # one option per BoardConfig field (--lanes, --width, --n-max-bits, ..., --uart-divisor)
    for f in fields(BoardConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default,
                            help="0: the link's byte stream (fast); N: through the UART, N "
                                 "cycles a bit" if f.name == "uart_divisor" else None)
    parser.add_argument("--link", type=Path, default=Path("build/sim/board/tty"),
                        help="a symlink to the pseudo-terminal (default %(default)s)")
    args = parser.parse_args(argv)
    config = BoardConfig(**{f.name: getattr(args, f.name) for f in fields(BoardConfig)})
    args.link.parent.mkdir(parents=True, exist_ok=True)
    with SimulatedBoard(config, link=args.link) as board:
        print(f"simulated board on {board.port} (also {args.link}); "
              f"MONTPIPE_BACKEND=fpga MONTPIPE_FPGA_PORT={args.link}; Ctrl-C stops it",
              flush=True)
        try:
            while board.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    print(board.stats())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
