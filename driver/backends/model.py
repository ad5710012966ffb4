"""The ``model`` backend: exact results on the host, the accelerator's time from its cycle model.

Every result is computed by the CPU backend (bit-exact, tested against gmpy2); every modular
exponentiation the accelerator would run is also counted in device cycles with the gateware's
exact cycle model (:func:`montpipe.device.model.batch_cycles`: requests dealt over the lanes,
loaded through the one request stream, results in order) and turned into *projected* device
seconds at a clock frequency. It is for capacity planning and for the demo on a machine without
a board: ``MONTPIPE_BACKEND=model`` or ``backend="model"``.

What it projects is the device alone, as it is built now: modular exponentiation with a
run-time operand length up to ``n_max_bits`` (wider or even moduli go to the CPU and count as
fallbacks), negative exponents inverted on the host first, fixed-base powers as the device's
comb when the build has a table (:func:`~montpipe.device.model.packet_cycles` of the packets
the comb sends, a lane's worth of powers a frame), and multi-exponentiations on the same comb
as the ``fpga`` backend runs them (host-built group tables in the table's slots, (chunk, row)
jobs a lane's worth a frame), else both as ordinary exponentiations. Table writes are
counted as the ``fpga`` backend makes them: only the entries the device does not hold already
(a fixed-base table is written again after a multi-exponentiation used the table). Secret
exponents in constant-time mode over their declared length, and only when the device is
trusted with secrets (``trust_device_with_secrets``, as the ``fpga`` backend: by default a
private key's exponentiations stay on the host and are counted in ``host_secret_powmods``, not
projected). Multiplications and products stay on the host and are not projected. The link to
the host is projected separately (``projected_link_seconds``, request and result frames at the
link's byte rate). How far the two overlap depends on the operation, and the accelerator's time
(``projected_accelerator_seconds``) is summed call by call, as the ``fpga`` backend answers a
call before it takes the next: an exponentiation batch keeps every lane fed (up to ``lanes +
1`` requests unanswered), so its time is the larger of device and link; table writes and combs
go as the ``fpga`` backend sends them, at most two frames unanswered (the link's two request
buffers), so a comb's results come back while the next comb runs, but a table write waits
behind the comb before it (:func:`~montpipe.device.model.link_schedule_seconds`).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict

from ...device.config import DeviceConfig
from ...device.model import (
    LINK_WINDOW,
    LinkFrame,
    batch_cycles,
    batch_products,
    comb_frame_cycles,
    exponent_digits,
    link_schedule_seconds,
    montgomery_words,
    montmul_cycles,
)
from ...device.wire import (
    modexp_wire_bytes,
)
from ..backend import FixedBasePower, check_fixed_base_exponents
from ..comb import (
    CombShape,
    MultiexpPlan,
    choose_shape,
    chunk_entries,
    comb_link_frame,
    device_plan,
    multiexp_frames,
    multiexp_steps,
    table_write_frame,
)
from .cpu import CPUBackend

__all__ = ["DeviceConfig", "ModelBackend", "default_device", "trust_from_env"]

#: the committed synthesis reports, shipped with the package; the reference board's is the
#: default (file times are no guide: a fresh clone gives every file the same age)
REPORTS = importlib.resources.files("montpipe") / "reports" / "synth"
REFERENCE_BOARD = "ulx3s-85f"


def _env_number(name: str, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole ' if kind is int else ''}number, "
                         f"not {text!r}") from None


def default_device() -> tuple[DeviceConfig, str]:
    """The device to project and where its figures come from.

    The committed synthesis report of the reference board (``reports/synth/ulx3s-85f.json``;
    else the first report by name): its configuration, at the lower of its post-route Fmax and
    its PLL's clock (a build that meets timing runs at its PLL's clock; the Fmax above it is
    margin); ``MONTPIPE_MODEL_BOARD`` names another board's committed report (an unknown name
    is a ``ValueError`` listing the reports). Without a report, the reference
    :class:`DeviceConfig` as designed, with a warning: its clock is then a target, not a
    measurement. ``MONTPIPE_MODEL_LANES``,
    ``MONTPIPE_MODEL_CLOCK_MHZ``, ``MONTPIPE_MODEL_WIDTH``, ``MONTPIPE_MODEL_WINDOW`` and
    ``MONTPIPE_MODEL_BAUD`` (the link's bits a second) override single fields.
    """
    fields: dict = {}
    board = os.environ.get("MONTPIPE_MODEL_BOARD", "").strip() or REFERENCE_BOARD
    reports = sorted((p for p in REPORTS.iterdir() if p.name.endswith(".json")),
                     key=lambda p: (p.name != f"{board}.json", p.name)) \
        if REPORTS.is_dir() else []
    if board != REFERENCE_BOARD and (not reports or reports[0].name != f"{board}.json"):
        names = ", ".join(p.name.removesuffix(".json") for p in reports) or "none"
        raise ValueError(f"MONTPIPE_MODEL_BOARD={board!r} names no committed synthesis report "
                         f"(there are: {names})")
    if reports:
        data = json.loads(reports[0].read_text())
        config = data["configuration"]
        fields = {k: config[k] for k in ("lanes", "width", "max_words", "window", "max_windows",
                                         "contexts", "baud") if k in config}
        # a report from before the comb is of a build without a table
        fields["table_entries"] = config.get("table_entries", 0)
        fields["clock_mhz"] = min(data["fmax_mhz"], data.get("target_mhz", data["fmax_mhz"]))
        source = f"synthesis report {reports[0].name}"
    else:
        source = "no synthesis report: the reference configuration, its clock a target"
        warnings.warn(f"montpipe model backend: no synthesis report in {REPORTS}; projecting "
                      f"the reference configuration at its target clock, not a measured build",
                      RuntimeWarning, stacklevel=2)
    for key, env, kind in (("lanes", "MONTPIPE_MODEL_LANES", int),
                           ("clock_mhz", "MONTPIPE_MODEL_CLOCK_MHZ", float),
                           ("width", "MONTPIPE_MODEL_WIDTH", int),
                           ("window", "MONTPIPE_MODEL_WINDOW", int),
                           ("baud", "MONTPIPE_MODEL_BAUD", int)):
        value = _env_number(env, kind)
        if value is not None:
            fields[key] = value
            source += f"; {env}={value}"
    try:
        return DeviceConfig(**fields), source
    except ValueError as exc:
        raise ValueError(f"{exc} ({source})") from None


def trust_from_env() -> bool:
    """``MONTPIPE_TRUST_DEVICE_WITH_SECRETS``: ``1``/``yes`` lets secrets go to the device;
    empty, ``0`` or ``no`` keeps them on the host; anything else is a ``ValueError``."""
    text = os.environ.get("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", "").strip().lower()
    if text in ("1", "yes", "true"):
        return True
    if text in ("", "0", "no", "false"):
        return False
    raise ValueError(f"MONTPIPE_TRUST_DEVICE_WITH_SECRETS must be 1 or 0, not {text!r}")


# the operations whose link bytes the statistics keep apart (``link_bytes_<op>``, table writes
# included; ``table_write_bytes`` is those writes alone)
_OPS = ("powmods", "comb_powers", "comb_multiexp_terms")


class ModelBackend(CPUBackend):
    """CPU results, projected device time.

    Parameters
    ----------
    device:
        What the projection assumes; default :func:`default_device`'s (``source`` says where
        it came from).
    trust_device_with_secrets:
        Project secret batches (decryption) onto the device too, as the ``fpga`` backend runs
        them there when trusted; default ``MONTPIPE_TRUST_DEVICE_WITH_SECRETS``, else off.
    link_window:
        Table writes and combs unanswered at once in the link's schedule; default
        ``MONTPIPE_MODEL_LINK_WINDOW``, else :data:`~montpipe.device.model.LINK_WINDOW` (what
        the link's two request buffers allow and the ``fpga`` backend does). A larger one
        projects a link that could queue more frames behind a running comb.
    cpu_options:
        The CPU backend's arguments.
    """

    name = "model"

    def __init__(self, device: DeviceConfig | None = None, *,
                 trust_device_with_secrets: bool | None = None, link_window: int | None = None,
                 **cpu_options) -> None:
        source = "link_window"
        if link_window is None:
            link_window = _env_number("MONTPIPE_MODEL_LINK_WINDOW", int)
            source = "MONTPIPE_MODEL_LINK_WINDOW"
            link_window = LINK_WINDOW if link_window is None else link_window
        if isinstance(link_window, bool) or not isinstance(link_window, int) or link_window < 1:
            raise ValueError(f"{source} must be a whole number of frames, at least 1, not "
                             f"{link_window!r}")
        super().__init__(**cpu_options)
        self.link_window = link_window
        if device is None:
            self.device, self.source = default_device()
        else:
            self.device, self.source = device, "given"
        self.trust_device_with_secrets = trust_from_env() if trust_device_with_secrets is None \
            else bool(trust_device_with_secrets)
        self.stats.extra.update(projected_device_seconds=0.0, projected_link_seconds=0.0,
                                projected_accelerator_seconds=0.0,
                                device_cycles=0, device_powmods=0, device_products=0,
                                device_word_products=0, link_bytes=0,
                                grouped_mulmods=0, projected_grouped_product_seconds=0.0,
                                host_secret_powmods=0, device_comb_powers=0,
                                device_comb_multiexp_terms=0, table_writes=0,
                                table_write_bytes=0, **{f"link_bytes_{op}": 0 for op in _OPS})
        # what the device's table holds as the fpga backend would know it: the modulus it was
        # written under and, by index, a key naming each entry's value (_ONE for the ones)
        self._table_modulus: int | None = None
        self._table: dict[int, object] = {}

    def describe(self) -> dict:
        device = {**asdict(self.device), "n_max_bits": self.device.n_max_bits,
                  "source": self.source}
        return {**super().describe(), "name": self.name, "device": device,
                "link_window": self.link_window,
                "trust_device_with_secrets": self.trust_device_with_secrets,
                "secrets": "device" if self.trust_device_with_secrets else "host"}

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
        self._add_projection("device_powmods", len(exps), cycles, link,
                             batch_products(d.window, digit_lists, bool(secret)), s,
                             max(cycles / (d.clock_mhz * 1e6), link / d.link_bytes_per_s))
        return cycles

    def _add_projection(self, counter: str, count: int, cycles: int, link: int,
                        products: int, words: int, seconds: float) -> None:
        """Add one projected operation batch to the statistics: ``count`` to ``counter``, its
        device cycles, link bytes, Montgomery products (of ``words``-word operands; each
        is ``2s² + s`` W × W products) and the accelerator's ``seconds`` for it."""
        d, extra = self.device, self.stats.extra
        extra[counter] += count
        extra["device_cycles"] += cycles
        extra["device_products"] += products
        extra["device_word_products"] += products * (2 * words * words + words)
        extra["link_bytes"] += link
        op = f"link_bytes_{counter.removeprefix('device_')}"
        extra[op] = extra.get(op, 0) + link
        extra["projected_device_seconds"] += cycles / (d.clock_mhz * 1e6)
        extra["projected_link_seconds"] += link / d.link_bytes_per_s
        extra["projected_accelerator_seconds"] += seconds

    def _project_or_fall_back(self, count: int, exponents, modulus, secret=False) -> None:
        if count == 0:
            return
        if secret and not self.trust_device_with_secrets:
            self.stats.extra["host_secret_powmods"] += count   # the fpga backend keeps these
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
        d = self.device
        modulus = int(modulus)
        shape = choose_shape(max_bits, d.table_entries) \
            if d.table_entries and max_bits >= 1 else None
        takes = modulus % 2 and modulus >= 3 and modulus.bit_length() <= d.n_max_bits
        return _ModelFixedBase(self, super().fixed_base(base, modulus, max_bits), max_bits,
                               shape if takes else None)

    def _table_writes(self, modulus: int, entries: dict[int, object], words: int
                      ) -> list[LinkFrame]:
        """The frames of the writes of ``entries`` (index: a key naming the value) that the
        fpga backend sends: those the table does not hold already under ``modulus``; the
        table then holds them. The device stores an entry in far less time than its bytes
        take on the wire, so the frames count no device time."""
        if self._table_modulus != modulus:
            self._table_modulus, self._table = modulus, {}
        writes = 0
        for index, key in entries.items():
            if self._table.get(index) != key:
                self._table[index] = key
                writes += 1
        frame = table_write_frame(self.device.width, words)
        self.stats.extra["table_writes"] += writes
        self.stats.extra["table_write_bytes"] += writes * (frame.out_bytes + frame.in_bytes)
        return [frame] * writes

    def project_comb(self, count: int, modulus: int, shape: CombShape, base: int) -> int:
        """Device cycles for ``count`` powers of ``base`` by the comb of ``shape`` (a lane's
        worth a frame), with the writes of the table's entries the device does not hold on the
        link first; adds them to the statistics."""
        d = self.device
        modulus, base = int(modulus), int(base) % int(modulus)
        s = montgomery_words(int(modulus).bit_length(), d.width)
        # entry 0 of every table is the one (and so is every entry of the base 1)
        entries = {i: _ONE if i % (1 << shape.bits) == 0 or base == 1 else
                   ("power", base, shape, i) for i in range(shape.entries)}
        frames = self._table_writes(modulus, entries, s)
        cycles = 0
        for at in range(0, count, d.lanes):
            jobs = min(d.lanes, count - at)
            frame_cycles = comb_frame_cycles(d.lanes, s, jobs, shape.steps, shape.tables,
                                             d.width)
            cycles += frame_cycles
            frames.append(comb_link_frame(shape, jobs, lanes=d.lanes, words=s, width=d.width,
                                          clock_hz=d.clock_mhz * 1e6))
        self._add_projection("device_comb_powers", count, cycles, _bytes(frames),
                             count * shape.products, s,
                             link_schedule_seconds(frames, d.link_bytes_per_s, self.link_window))
        return cycles

    def multiexp(self, bases: Sequence[int], exponents: Sequence[Sequence[int]],
                 modulus: int) -> list[int]:
        out = super().multiexp(bases, exponents, modulus)
        d = self.device
        modulus = int(modulus)
        rows = [[int(e) for e in row] for row in exponents]
        steps, _ = multiexp_steps(rows)
        takes = modulus % 2 and modulus >= 3 and modulus.bit_length() <= d.n_max_bits
        plan = device_plan(steps, len(rows), len(bases), table_entries=d.table_entries,
                           width=d.width, words=montgomery_words(modulus.bit_length(), d.width),
                           lanes=d.lanes, clock_hz=d.clock_mhz * 1e6,
                           bytes_per_s=d.link_bytes_per_s, window=self.link_window) \
            if takes and bases else None
        if plan is None:
            terms = [e for row in rows for e in row]
            self._project_or_fall_back(len(terms), terms, modulus)
        else:
            self.project_multiexp([int(b) % modulus for b in bases], len(rows), modulus, plan)
        return out

    def project_multiexp(self, bases: Sequence[int], rows: int, modulus: int,
                         plan: MultiexpPlan) -> int:
        """Device cycles for a multi-exponentiation on the comb as the ``fpga`` backend runs
        it (:func:`~montpipe.driver.comb.multiexp_frames`): before each frame the table entries
        of its chunks that the table does not hold (a group's ``2^h`` subsets, each named by
        the bases it multiplies: the empty one, and those a short last group does not have,
        are ones), then a lane's worth of (chunk, row) jobs; adds them to the statistics."""
        d = self.device
        s = montgomery_words(int(modulus).bit_length(), d.width)
        h, v = plan.bits, plan.tables
        groups = -(-len(bases) // h)
        chunks = -(-groups // v)
        cycles = products = 0
        frames: list[LinkFrame] = []
        for frame in multiexp_frames(chunks, rows, d.lanes, plan.slots):
            entries: dict[int, object] = {}
            for c in frame.loads:
                for index, g, sub in chunk_entries(plan, c, groups):
                    group = bases[g * h:(g + 1) * h] if g is not None else []
                    # the entry is the product of these bases; the empty subset's, and a
                    # short group's beyond its bases, the one
                    key = tuple(b for j, b in enumerate(group) if sub >> j & 1 and b != 1)
                    entries[index] = key if key and not sub >> len(group) else _ONE
            frames += self._table_writes(int(modulus), entries, s)
            jobs = len(frame.jobs)
            frame_cycles = comb_frame_cycles(d.lanes, s, jobs, plan.steps, v, d.width)
            cycles += frame_cycles
            frames.append(comb_link_frame(plan.shape, jobs, lanes=d.lanes, words=s,
                                          width=d.width, clock_hz=d.clock_mhz * 1e6))
            products += jobs * (plan.steps * (v + 1) - 1)
        self._add_projection("device_comb_multiexp_terms", len(bases) * rows, cycles,
                             _bytes(frames), products, s,
                             link_schedule_seconds(frames, d.link_bytes_per_s, self.link_window))
        return cycles

    def group_prodmod(self, values: Sequence[int], groups: Sequence[int], n_groups: int,
                      modulus: int) -> list[int]:
        """The CPU's grouped products, counted (``grouped_mulmods``) and projected apart.

        The gateware has no product operation, so these stay out of
        ``projected_device_seconds``; ``projected_grouped_product_seconds`` is what the lanes
        would take as Montgomery products (two a modular multiplication: the product and the
        conversion back), spread evenly over the lanes, without the link.
        """
        out = super().group_prodmod(values, groups, n_groups, modulus)
        d = self.device
        modulus = int(modulus)
        if modulus % 2 and modulus >= 3 and modulus.bit_length() <= d.n_max_bits:
            count = sum(1 for g in groups if g >= 0)
            s = montgomery_words(modulus.bit_length(), d.width)
            cycles = 2 * count * montmul_cycles(s, d.width) / d.lanes
            self.stats.extra["grouped_mulmods"] += count
            self.stats.extra["projected_grouped_product_seconds"] += cycles / (d.clock_mhz * 1e6)
        return out


#: the key of a table entry that holds the one (Montgomery form of 1)
_ONE = "one"


def _bytes(frames: list[LinkFrame]) -> int:
    """Link bytes of ``frames``, both ways."""
    return sum(f.out_bytes + f.in_bytes for f in frames)


class _ModelFixedBase(FixedBasePower):
    """The CPU's fixed-base table for results; the device's comb (``shape``; its table's
    entries written when the device does not hold them), or without one the device raises the
    base like any other."""

    def __init__(self, backend: ModelBackend, inner: FixedBasePower, max_bits: int,
                 shape: CombShape | None) -> None:
        self.backend, self.inner, self.shape = backend, inner, shape
        self.base, self.modulus, self.max_bits = inner.base, inner.modulus, max_bits

    def pow(self, exponents: Sequence[int]) -> list[int]:
        check_fixed_base_exponents(exponents, self.max_bits)
        out = self.inner.pow(exponents)
        if self.shape is None:
            self.backend._project_or_fall_back(len(exponents), list(exponents), self.modulus)
        elif exponents:
            self.backend.project_comb(len(exponents), self.modulus, self.shape, self.base)
        return out

