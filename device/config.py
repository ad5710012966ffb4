"""One description of a build of the accelerator, shared by everything that needs one.

The board tops (:mod:`montpipe.hdl.board`) are built from a :class:`DeviceConfig`, the simulated
board (:mod:`montpipe.sim.board`) runs one, the ``model`` backend projects one, and a device's
capabilities answer (:class:`~montpipe.device.wire.Capabilities`) decodes to one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .model import MAX_WIDTH, MIN_WORDS, montgomery_words, pipeline

__all__ = ["DeviceConfig"]


@dataclass(frozen=True)
class DeviceConfig:
    """The accelerator's build parameters. The defaults are the reference build, sized for the
    LFE5U-85F: 15 lanes of 36-bit words (120 of its 156 ``MULT18X18D``), moduli up to 4102 bits
    (Paillier at 2048-bit keys), exponents up to 2048 bits, at 75 MHz behind a 3 Mbaud UART.

    Parameters
    ----------
    lanes:
        Montgomery lanes, each running one exponentiation at a time.
    width:
        Word width ``W`` in bits (2 to 36). Above 18 a multiplier is four ``MULT18X18D``.
    max_words:
        Words of the widest modulus (:attr:`n_max_bits` is ``W · max_words − 2``).
    window:
        Exponent digit width in bits.
    max_windows:
        Digits of the longest exponent (:attr:`max_exponent_bits` is ``window · max_windows``).
    contexts:
        Moduli the link holds at once (1 to 255).
    clock_mhz:
        The core clock.
    baud:
        The host link's UART rate (8N1, ten bits a byte).
    timeout:
        Core cycles without a byte after which the link drops a partial frame.
    table_entries:
        Operands the link's comb table holds (0: no comb): fixed-base powers by a comb over
        powers uploaded once per key (``docs/gateware-plan.md``).
    """

    lanes: int = 15
    width: int = 36
    max_words: int = 114
    window: int = 2
    max_windows: int = 1024
    contexts: int = 2
    clock_mhz: float = 75.0
    baud: int = 3_000_000
    timeout: int = 100_000
    table_entries: int = 256

    def __post_init__(self) -> None:
        for name in ("lanes", "width", "max_words", "window", "max_windows", "contexts", "baud",
                     "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"device {name} must be a positive integer, not {value!r}")
        if not 2 <= self.width <= MAX_WIDTH:
            raise ValueError(f"device word width must be 2 to {MAX_WIDTH} bits, "
                             f"not {self.width}")
        if self.max_words < MIN_WORDS:
            raise ValueError(f"device max_words must be at least {MIN_WORDS}, "
                             f"not {self.max_words}")
        if isinstance(self.table_entries, bool) or not isinstance(self.table_entries, int) \
                or not 0 <= self.table_entries <= 4096:
            raise ValueError(f"device table_entries must be an integer from 0 to 4096, "
                             f"not {self.table_entries!r}")
        if self.contexts > 255:
            raise ValueError(f"device contexts must be 1 to 255, not {self.contexts}")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, int | float) \
                or not self.clock_mhz > 0:
            raise ValueError(f"device clock_mhz must be a positive number, "
                             f"not {self.clock_mhz!r}")

    @classmethod
    def sized(cls, n_max_bits: int, max_exponent_bits: int, **fields) -> DeviceConfig:
        """The configuration whose moduli reach ``n_max_bits`` and exponents
        ``max_exponent_bits``, with ``fields`` for the rest."""
        base = cls(**fields)
        return replace(base, max_words=montgomery_words(n_max_bits, base.width),
                       max_windows=-(-max_exponent_bits // base.window))

    @property
    def n_max_bits(self) -> int:
        """The widest modulus the build takes."""
        return self.width * self.max_words - 2

    @property
    def max_exponent_bits(self) -> int:
        """The longest exponent the build takes."""
        return self.window * self.max_windows

    @property
    def ecp5_dsp(self) -> bool:
        """Whether the lanes instantiate their ``MULT18X18D`` blocks (above W = 18, four blocks
        a multiplier with their registers and a pipelined sum; up to 18 bits yosys infers the
        one block a multiplier needs)."""
        return self.width > 18

    @property
    def multipliers(self) -> int:
        """``MULT18X18D`` blocks the lanes use: two multipliers a lane."""
        return self.lanes * 2 * pipeline(self.width).blocks

    @property
    def link_bytes_per_s(self) -> float:
        """The UART's payload rate: ten bits on the line a byte."""
        return self.baud / 10

    def key(self) -> str:
        """A short name of the configuration, for build directories."""
        return "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}"
                        for k, v in asdict(self).items())
