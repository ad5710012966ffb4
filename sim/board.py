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
from dataclasses import fields
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from ..device.config import DeviceConfig
from ..hdl.link import FrameLink
from ..hdl.uart import UARTRx, UARTTx

__all__ = ["SIM_CONFIG", "SimBoard", "SimulatedBoard", "build"]

HARNESS = Path(__file__).with_name("board_main.cpp")


#: The simulated board's default build: moduli up to 2048 bits and exponents up to 1024 — Paillier
#: at 1024-bit keys (n², and p², q² for CRT decryption) — on the reference build's 36-bit words,
#: two lanes; a shorter link timeout, since the simulation runs far below the board's clock
SIM_CONFIG = DeviceConfig.sized(2048, 1024, lanes=2, contexts=4, timeout=20_000)


class SimBoard(wiring.Component):
    """The simulated board's top: :class:`~montpipe.hdl.link.FrameLink` for ``config``, behind
    the board's UART when ``uart_divisor`` is set (else on the link's byte stream), with
    ``busy`` for the harness."""

    def __init__(self, config: DeviceConfig, uart_divisor: int = 0) -> None:
        self.config = c = config
        self.uart_divisor = uart_divisor
        self.link = FrameLink(width=c.width, max_words=c.max_words, window=c.window,
                              max_windows=c.max_windows, lanes=c.lanes, contexts=c.contexts,
                              timeout=c.timeout, table_entries=c.table_entries,
                              clock_khz=round(c.clock_mhz * 1000))
        if uart_divisor:
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
        d = self.uart_divisor
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
#: build takes over a second, and a test run starts a dozen boards of one configuration
_built: dict[tuple[DeviceConfig, int, Path], Path] = {}


def build(config: DeviceConfig = SIM_CONFIG, *, uart_divisor: int = 0,
          root: Path = Path("build/sim/board"), verbose: bool = False) -> Path:
    """Verilate and compile the board for ``config`` (``uart_divisor``: see
    :class:`SimBoard`); returns the executable. A build is kept under ``root`` by a hash of
    its Verilog and the harness, and reused."""
    from amaranth.back import verilog

    from .runner import exclusive, prepare

    prepare("verilator")
    cache_key = (config, uart_divisor, root.resolve())
    known = _built.get(cache_key)
    if known is not None and known.exists():
        return known
    source = verilog.convert(SimBoard(config, uart_divisor), name="sim_board")
    harness = HARNESS.read_text()
    digest = hashlib.sha256((source + harness).encode()).hexdigest()[:12]
    directory = (root / f"{config.key()}-uart{uart_divisor}-{digest}").resolve()
    exe = directory / "obj_dir" / "Vsim_board"
    # the stamp, not the executable, says a build finished: a build killed while linking can
    # leave an executable behind
    stamp = directory / "built"
    with exclusive(directory):
        if not stamp.exists():
            _verilate(directory, exe, source, uart_divisor, verbose)
            stamp.touch()
    _built[cache_key] = exe
    return exe


def _verilate(directory: Path, exe: Path, source: str, uart_divisor: int,
              verbose: bool) -> None:
    (directory / "sim_board.v").write_text(source)
    shutil.copy(HARNESS, directory / "board_main.cpp")
    cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-lint",
           "--top-module", "sim_board", "-j", str(os.cpu_count() or 1),
           "-CFLAGS", f"-O2 -DUART_DIVISOR={uart_divisor}",
           "sim_board.v", "board_main.cpp"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    (directory / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0 or not exe.exists():
        raise RuntimeError(f"Verilator build of the simulated board failed (exit "
                           f"{proc.returncode}); see {directory / 'build.log'}")
    if verbose:
        print(f"built {exe} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


class SimulatedBoard:
    """A running simulated board. ``port`` is its pseudo-terminal, for
    :class:`~montpipe.driver.backends.fpga.FPGABackend` or any serial-port program.

    Use as a context manager, or call :meth:`close`. ``stats()`` after close gives the simulated
    cycles and wall time.
    """

    def __init__(self, config: DeviceConfig = SIM_CONFIG, *, uart_divisor: int = 0,
                 root: Path = Path("build/sim/board"), link: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        self.config, self.uart_divisor = config, uart_divisor
        self.executable = build(config, uart_divisor=uart_divisor, root=root)
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
    # one option per DeviceConfig field (--lanes, --width, --max-words, ..., --timeout)
    for f in fields(DeviceConfig):
        default = getattr(SIM_CONFIG, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(default), default=default)
    parser.add_argument("--uart-divisor", type=int, default=0,
                        help="0: the link's byte stream (fast); N: through the UART, N cycles a "
                             "bit")
    parser.add_argument("--link", type=Path, default=Path("build/sim/board/tty"),
                        help="a symlink to the pseudo-terminal (default %(default)s)")
    args = parser.parse_args(argv)
    config = DeviceConfig(**{f.name: getattr(args, f.name) for f in fields(DeviceConfig)})
    args.link.parent.mkdir(parents=True, exist_ok=True)
    with SimulatedBoard(config, uart_divisor=args.uart_divisor, link=args.link) as board:
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
