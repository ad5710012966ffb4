"""The ``sim`` backend: the ``fpga`` backend's host code over the simulated board.

:class:`SimBackend` starts a :class:`~montpipe.sim.board.SimulatedBoard` (the gateware built
with Verilator, behind a pseudo-terminal; built on first use, a few seconds) and is an
:class:`~montpipe.driver.backends.fpga.FPGABackend` on its port: every exponentiation it takes
(a private key's only with ``trust_device_with_secrets``) is computed by the simulated gateware,
a spot-checked fraction again on the CPU (``spot_check``).
Needs the ``[sim]`` extra (Verilator) and a C++ compiler.

The simulation runs at about a million cycles a second, so a 2048-bit exponentiation with a
1024-bit exponent (a Paillier encryption at 1024-bit keys) takes ~20 s; the board's default
build holds moduli up to 2048 bits (``montpipe.sim.board.SIM_CONFIG``). Wider ones go to the
CPU as fallbacks, as on a board. :mod:`montpipe.sim` (and with it Amaranth) is imported only
when a simulated board is started.
"""

from __future__ import annotations

from ...device.config import DeviceConfig
from ..transport import DEFAULT_BAUD, SerialTransport
from .fpga import FPGABackend

__all__ = ["SimBackend"]


class SimBackend(FPGABackend):
    """An :class:`FPGABackend` on a simulated board of ``config`` (default
    :data:`montpipe.sim.board.SIM_CONFIG`), on the link's byte stream or, with
    ``uart_divisor``, through its UART; the other arguments are the ``fpga`` backend's.
    ``board`` is the running :class:`~montpipe.sim.board.SimulatedBoard`."""

    name = "sim"

    def __init__(self, config: DeviceConfig | None = None, *, uart_divisor: int = 0,
                 cycle_rate: float = 200e3, **options) -> None:
        from ...sim.board import SIM_CONFIG, SimulatedBoard

        self.board = SimulatedBoard(config or SIM_CONFIG, uart_divisor=uart_divisor)
        # a pseudo-terminal has no line rate: MONTPIPE_FPGA_BAUD, set for a board, is not
        # this backend's
        options.setdefault("baudrate", DEFAULT_BAUD)
        try:
            super().__init__(transport=SerialTransport(self.board.port),
                             cycle_rate=cycle_rate, **options)
        except BaseException:
            self.board.close()
            raise

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "simulated": True,
                "executable": str(self.board.executable)}

    def close(self) -> None:
        super().close()
        self.board.close()
        self.stats.extra["simulated_cycles"] = int(self.board.stats().get("cycles", 0))

