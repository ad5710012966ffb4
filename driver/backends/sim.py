"""The ``sim`` backend: the ``fpga`` backend's host code over the simulated board.

:class:`SimBackend` starts a :class:`~montpipe.sim.board.SimulatedBoard` (the gateware built
with Verilator, behind a pseudo-terminal; built on first use, a few seconds) and is an
:class:`~montpipe.driver.backends.fpga.FPGABackend` on its port: every exponentiation is
computed by the simulated gateware and checked nowhere else (turn on ``spot_check`` for that).
Needs the ``[sim]`` extra (Verilator) and a C++ compiler.

The simulation runs at about a million cycles a second, so a 2048-bit exponentiation with a
1024-bit exponent (a Paillier encryption at 1024-bit keys) takes ~20 s; the board's default
build holds moduli up to 2048 bits (``montpipe.sim.board.BoardConfig``). Wider ones go to the
CPU as fallbacks, as on a board.
"""

from __future__ import annotations

from ...sim.board import BoardConfig, SimulatedBoard
from ..backend import register_backend
from ..transport import SerialTransport
from .fpga import FPGABackend

__all__ = ["SimBackend"]


class SimBackend(FPGABackend):
    """An :class:`FPGABackend` on a simulated board of ``config``; the other arguments are
    the ``fpga`` backend's. ``board`` is the running :class:`SimulatedBoard`."""

    name = "sim"

    def __init__(self, config: BoardConfig | None = None, *, cycle_rate: float = 200e3,
                 **options) -> None:
        self.board = SimulatedBoard(config or BoardConfig())
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


register_backend("sim", SimBackend)
