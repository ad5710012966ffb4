"""The ``model`` backend: exact results on the host, the accelerator's time from its cycle model.

Every result is computed by the CPU backend (bit-exact, tested against gmpy2); every modular
exponentiation the accelerator would run is also counted in device cycles with the gateware's
exact cycle model (:func:`montpipe.hdl.model.batch_cycles`: requests dealt over the lanes,
loaded through the one request stream, results in order) and turned into *projected* device
seconds at a clock frequency. It is for capacity planning and for the demo on a machine without
a board: ``MONTPIPE_BACKEND=model`` or ``backend="model"``.

What it projects is the device alone, as it is built now: modular exponentiation with a
run-time operand length up to ``n_max_bits`` (wider or even moduli go to the CPU and count as
fallbacks), negative exponents inverted on the host first, fixed-base powers and multi-
exponentiations as ordinary exponentiations (the gateware has neither tables nor Pippenger),
secret exponents in constant-time mode over their declared length. Multiplications and products
stay on the host and are not projected. The link to the host is projected separately
(``projected_link_seconds``, request and result frames at the link's byte rate): on a board the
two overlap, so the larger bounds throughput.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ...hdl.model import (
    MAX_WIDTH,
    batch_cycles,
    batch_products,
    exponent_digits,
    montgomery_words,
)
from ..backend import FixedBasePower, _check_fixed_base_exponents, register_backend
from ..protocol import LinkStatus, Opcode, encode_response, modexp_request, word_bytes
from .cpu import CPUBackend

__all__ = ["DeviceConfig", "ModelBackend", "default_device"]

#: an exponentiation's request and result frames without their words and digits: framing,
#: header and fields, taken from the encoders (a request with no words and no digits, an
#: empty response)
_FRAMES_BYTES = len(modexp_request(0, 0, 0, [], width=8, words=0)) + \
    len(encode_response(Opcode.MODEXP, 0, LinkStatus.OK))


def modexp_wire_bytes(words: int, width: int, digits: int) -> int:
    """Bytes one exponentiation puts on the wire (docs/protocol.md): its request, with the base
    and a byte a digit (the modulus and R² are the context's, loaded once), and its response,
    with the result."""
    return _FRAMES_BYTES + 2 * words * word_bytes(width) + digits


#: committed synthesis reports (the synthesis issue writes them); the reference board's is the
#: default (file times are no guide: a fresh clone gives every file the same age)
REPORTS = Path(__file__).resolve().parents[2] / "reports" / "synth"
REFERENCE_BOARD = "ulx3s-85f"


@dataclass(frozen=True)
class DeviceConfig:
    """What the projection assumes about the device.

    ``source`` says where the figures come from. Without a synthesis report the default is the
    measured state of the gateware (``docs/gateware-plan.md``): two-multiplier lanes at W = 16,
    window 2, 26 lanes (what the LFE5U-85F's 208 block RAMs hold at 8 a lane) and the lane's
    post-route 125 MHz; the link is the ULX3S's UART at 3 Mbaud (10 bits a byte).
    """

    lanes: int = 26
    width: int = 16
    window: int = 2
    fmax_mhz: float = 125.0
    n_max_bits: int = 4096
    link_bytes_per_s: float = 300_000.0
    source: str = ("estimate: lane-level post-route Fmax and the 85F's block-RAM budget "
                   "(docs/gateware-plan.md); no board synthesis report yet")

    def __post_init__(self) -> None:
        for name in ("lanes", "width", "window", "n_max_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"device {name} must be a positive integer, not {value!r}")
        if not 2 <= self.width <= MAX_WIDTH:
            raise ValueError(f"device word width must be 2 to {MAX_WIDTH} bits, "
                             f"not {self.width}")
        for name in ("fmax_mhz", "link_bytes_per_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"device {name} must be a positive number, not {value!r}")


def _env_number(name: str, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole ' if kind is int else ''}number, "
                         f"not {text!r}") from None


def default_device() -> DeviceConfig:
    """The committed synthesis report of the reference board (``reports/synth/ulx3s-85f.json``;
    else the first report by name) if there is one, at the lower of its post-route Fmax and its
    PLL's clock, else the
    estimate in :class:`DeviceConfig`; ``MONTPIPE_MODEL_LANES``, ``MONTPIPE_MODEL_FMAX_MHZ``,
    ``MONTPIPE_MODEL_WIDTH`` and ``MONTPIPE_MODEL_WINDOW`` override single fields."""
    fields: dict = {}
    reports = sorted(REPORTS.glob("*.json"), key=lambda p: (p.stem != REFERENCE_BOARD, p.name)) \
        if REPORTS.is_dir() else []
    if reports:
        data = json.loads(reports[0].read_text())
        config = data.get("configuration", {})
        # the clock the build runs at: its PLL's when timing is met (the post-route Fmax above
        # it is margin, not speed), else the post-route Fmax a build at a lower target would
        # need
        clock = min(data["fmax_mhz"], data.get("target_mhz", data["fmax_mhz"]))
        fields = {"lanes": config["lanes"], "width": config["width"],
                  "window": config["window"], "n_max_bits": config["n_max_bits"],
                  "fmax_mhz": clock, "source": f"synthesis report {reports[0].name}"}
    for key, env, kind in (("lanes", "MONTPIPE_MODEL_LANES", int),
                           ("fmax_mhz", "MONTPIPE_MODEL_FMAX_MHZ", float),
                           ("width", "MONTPIPE_MODEL_WIDTH", int),
                           ("window", "MONTPIPE_MODEL_WINDOW", int)):
        value = _env_number(env, kind)
        if value is not None:
            fields[key] = value
            fields["source"] = fields.get("source", DeviceConfig.source) + f"; {env}={value}"
    return DeviceConfig(**fields)


class ModelBackend(CPUBackend):
    """CPU results, projected device time. ``device`` defaults to :func:`default_device`;
    the other arguments are the CPU backend's."""

    name = "model"

    def __init__(self, device: DeviceConfig | None = None, **cpu_options) -> None:
        super().__init__(**cpu_options)
        self.device = device if device is not None else default_device()
        self.stats.extra.update(projected_device_seconds=0.0, projected_link_seconds=0.0,
                                device_cycles=0, device_powmods=0, device_products=0,
                                device_word_products=0, link_bytes=0)

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "device": asdict(self.device)}

    # -- projection -------------------------------------------------------------------------

    def project(self, exponents: Sequence[int], modulus: int, *, secret: bool = False,
                declared_bits: int | None = None) -> int | None:
        """Device cycles for one batch of ``len(exponents)`` exponentiations modulo ``modulus``
        (``None`` if the device cannot take the modulus); adds them to the statistics.

        A secret batch runs in constant-time mode over ``declared_bits`` (default: the longest
        exponent of the batch), so the count does not depend on the exponents' bits.
        """
        d = self.device
        modulus = int(modulus)
        if modulus % 2 == 0 or modulus.bit_length() > d.n_max_bits or modulus < 3:
            return None
        s = montgomery_words(modulus.bit_length(), d.width)
        exps = [abs(int(e)) for e in exponents]
        windows = None
        if secret:
            bits = declared_bits if declared_bits is not None else \
                max((e.bit_length() for e in exps), default=0)
            windows = -(-bits // d.window)
        cache: dict[int, list[int]] = {}
        digit_lists = []
        for e in exps:
            if e not in cache:
                cache[e] = exponent_digits(e, d.window, windows)
            digit_lists.append(cache[e])
        cycles = batch_cycles(d.lanes, s, d.window, digit_lists, bool(secret), d.width)
        link = sum(modexp_wire_bytes(s, d.width, len(dl)) for dl in digit_lists)
        extra = self.stats.extra
        extra["device_cycles"] += cycles
        extra["device_powmods"] += len(exps)
        products = batch_products(d.window, digit_lists, bool(secret))
        extra["device_products"] += products                  # Montgomery products
        extra["device_word_products"] += products * (2 * s * s + s)   # W × W products in them
        extra["link_bytes"] += link
        extra["projected_device_seconds"] += cycles / (d.fmax_mhz * 1e6)
        extra["projected_link_seconds"] += link / d.link_bytes_per_s
        return cycles

    def _project_or_fall_back(self, count: int, exponents, modulus, secret=False) -> None:
        if count == 0:
            return
        exps = [exponents] * count if isinstance(exponents, int) else list(exponents)
        if self.project(exps, modulus, secret=secret) is None:
            self.stats.fallbacks += count

    # -- operations: the CPU's results, the device's time -----------------------------------

    def powmod(self, bases: Sequence[int], exponents: Sequence[int] | int, modulus: int, *,
               secret: bool = False) -> list[int]:
        out = super().powmod(bases, exponents, modulus, secret=secret)
        self._project_or_fall_back(len(bases), exponents, modulus, secret)
        return out

    def fixed_base(self, base: int, modulus: int, max_bits: int) -> FixedBasePower:
        return _ModelFixedBase(self, super().fixed_base(base, modulus, max_bits), max_bits)

    def multiexp(self, bases: Sequence[int], exponents: Sequence[Sequence[int]],
                 modulus: int) -> list[int]:
        out = super().multiexp(bases, exponents, modulus)
        terms = [e for row in exponents for e in row]
        self._project_or_fall_back(len(terms), terms, modulus)
        return out


class _ModelFixedBase(FixedBasePower):
    """The CPU's fixed-base table for results; the device raises the base like any other."""

    def __init__(self, backend: ModelBackend, inner: FixedBasePower, max_bits: int) -> None:
        self.backend, self.inner = backend, inner
        self.base, self.modulus, self.max_bits = inner.base, inner.modulus, max_bits

    def pow(self, exponents: Sequence[int]) -> list[int]:
        _check_fixed_base_exponents(exponents, self.max_bits)
        out = self.inner.pow(exponents)
        self.backend._project_or_fall_back(len(exponents), list(exponents), self.modulus)
        return out


register_backend("model", ModelBackend)
