"""The ``fpga`` backend: modular exponentiation on the accelerator over its host link.

It speaks the wire protocol (``docs/protocol.md``, :mod:`montpipe.device.wire`) over a
:class:`~montpipe.driver.transport.Transport` — a board's serial port, or the simulated board's
pseudo-terminal for the ``sim`` backend (:mod:`montpipe.driver.backends.sim`): the same code.

* **Open:** CAPS, checked against the protocol version this driver speaks; a missing port, a
  silent device or another version is a :class:`DeviceError` naming the port.
* **Contexts:** each modulus is loaded once (m, m′, R² mod m: one division on the host) into
  one of the device's context slots, least recently used first out; a Paillier key uses n²,
  and p² and q² only when secrets may go to the device (below).
* **Secrets stay on the host** unless ``trust_device_with_secrets=True`` (or
  ``MONTPIPE_TRUST_DEVICE_WITH_SECRETS=1``): a batch marked ``secret`` (decryption's CRT
  halves: the exponents p−1, q−1 and the moduli p², q², from which anyone reading the link
  could factor n) runs on the CPU backend, counted in ``host_secret_powmods``. Encryption's
  random exponents are not key secrets and do go to the device (see the README).
* **Batches:** every exponentiation of a batch goes out as a tagged MODEXP; up to ``lanes + 1``
  are in flight (every lane busy and the next request waiting in the link's second buffer, so
  the device never idles between results), and results are put back in batch order by tag.
* **What the device cannot take** (a modulus wider than N_MAX or even or below 3, an exponent
  longer than the build's windows) goes to the CPU backend, counted in ``fallbacks``; negative
  exponents are inverted on the host; bases are reduced modulo the modulus on the host.
* **Faults:** a bad or missing response, a BUSY, a lost context (device reset) or a result that
  overtakes a request sent before it (so that request was lost: results leave in request order)
  sends the request again with a new tag; a late answer to a retired tag, or an answer with
  another command's opcode, is dropped (``stale_responses``). A request
  sent ``retries + 1`` times, or a device that stays silent for ``timeout`` seconds and then
  does not answer CAPS, ends the batch with a :class:`DeviceError` naming it. Results are never
  guessed: every value returned came from a well-framed, CRC-checked response to its own tag.
* **Fixed-base powers** (DJN encryption's ``h_s^α``) run as the device's comb when the build
  has a table (``table entries`` in CAPS): the host computes the table of the base once
  (:mod:`montpipe.driver.comb`), writes it into the device (again after the device lost it,
  or a multi-exponentiation used the table), and sends the exponents' digits a lane's worth
  of jobs at a time (``COMB``); every job answers with its own tag. Table writes and combs go
  out up to two unanswered (the link's two request buffers), so a comb travels while the one
  before it runs and its results come back while the next runs. A build without a table,
  or an exponent longer than the comb the table allows, raises its powers one by one as
  ordinary exponentiations.
* **Multi-exponentiations** (``X @ [[d]]``) run on the same comb: the host builds the subset
  products of small groups of bases (:func:`~montpipe.driver.comb.subset_tables`), writes
  chunks of groups into the table's slots, and sends each row's exponent bits over a chunk as
  a job, a lane's worth of jobs a frame over as many consecutive chunks as there are slots;
  the chunks' results are multiplied on the host. Negative exponents are made non-negative by
  adding ``2^(B−1)`` to every exponent, and each row is divided by ``(Π c_i)^(2^(B−1))``.
  Only table entries the device does not hold already are written.
* **Spot checks:** ``spot_check=f`` re-computes a random fraction ``f`` of each batch's device
  results on the CPU (at least one a batch; default 1 %, ``MONTPIPE_FPGA_SPOT_CHECK``) and
  raises :class:`DeviceResultError` on a mismatch; ``spot_check=0`` turns it off.
* **Link rate:** the build's UART rate (its synthesis report's ``baud``): 3 Mbaud on the
  ULX3S, 12 Mbaud on the ECPIX-5: ``baudrate=``, else ``MONTPIPE_FPGA_BAUD``, else 3 Mbaud.
* **Heterogeneous:** ``split=True`` gives a share of each batch to the CPU backend, in
  proportion to the throughputs measured so far on both sides, and runs both at once.

Statistics (``stats.as_dict()``): device operations, CPU share, fallbacks, bytes each way,
retries and what caused them, stale responses, contexts loaded, device busy seconds.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import gmpy2

from ...device.model import (
    LINK_WINDOW,
    comb_frame_cycles,
    exponent_digits,
    modexp_cycles,
    montgomery_words,
    mprime,
)
from ...device.wire import (
    PROTOCOL_VERSION,
    Capabilities,
    LinkStatus,
    Opcode,
    Response,
    ResponseParser,
    caps_request,
    comb_request,
    encode_request,
    load_context_request,
    modexp_request,
    modexp_wire_bytes,
    table_write_request,
    unpack_words,
    word_bytes,
)
from ..backend import Backend, FixedBasePower, check_fixed_base_exponents
from ..comb import (
    CombShape,
    MultiexpPlan,
    choose_shape,
    chunk_entries,
    comb_digits,
    comb_table,
    device_plan,
    multiexp_digits,
    multiexp_frames,
    multiexp_steps,
    subset_tables,
)
from ..transport import DEFAULT_BAUD, DeviceNotFoundError, SerialTransport, Transport
from .cpu import CPUBackend
from .model import trust_from_env

__all__ = ["DEFAULT_SPOT_CHECK", "DeviceError", "DeviceResultError", "FPGABackend",
           "baud_from_env", "spot_check_from_env"]

#: statuses that mean "the link lost or refused this frame": send it again
_RETRY = {LinkStatus.BAD_CRC, LinkStatus.SHORT_FRAME, LinkStatus.LONG_FRAME, LinkStatus.BUSY,
          LinkStatus.UNKNOWN_OPCODE}


class DeviceError(RuntimeError):
    """The device could not complete a batch (or could not be opened); the message says which
    batch, what was tried and what is missing."""


class DeviceResultError(DeviceError):
    """A spot check found a device result that differs from the CPU's."""


@dataclass
class _Context:
    slot: int
    words: int


@dataclass
class _Op:
    index: int
    base: int
    digits: list[int]
    tries: int = 0


@dataclass
class CombFrame:
    """One ``COMB`` frame's worth of jobs (at most a lane each) and the table they read
    (index: plain residue; what the device does not hold is written first)."""

    entries: dict[int, int]
    shape: CombShape
    jobs: list[bytes]


@dataclass
class _Sent:
    """A table write (``jobs`` 0: the entry's ``index`` and ``value``) or a comb frame sent and
    not yet answered; ``got`` holds a comb's results by job. A ``poisoned`` frame's answers are
    taken off the link but not used: a write before it failed, or a result was malformed."""

    frame: int
    tag: int
    jobs: int
    index: int = 0
    value: int = 0
    got: dict[int, int] = field(default_factory=dict)
    poisoned: bool = False

    def answered_by(self, r: Response) -> bool:
        if not self.jobs:
            return r.tag == self.tag and _answers(r, Opcode.TABLE_WRITE)
        j = (r.tag - self.tag) & 0xFFFF
        return j < self.jobs and j not in self.got and _answers(r, Opcode.COMB)


def _discard_answer(pending: deque[_Sent], sent: _Sent, r: Response) -> None:
    """``r`` answers ``sent``, unused: ``sent`` leaves ``pending`` once it has all its answers.
    A comb not run (refused by the link or the executor: an error of any status) is answered
    once, under its own tag; a comb run answers each job."""
    sent.got[(r.tag - sent.tag) & 0xFFFF] = 0
    if not sent.jobs or len(sent.got) == sent.jobs or r.status != LinkStatus.OK:
        pending.remove(sent)


def baud_from_env() -> int:
    """``MONTPIPE_FPGA_BAUD`` (bits a second), else :data:`DEFAULT_BAUD`; anything but a
    positive whole number is a ``ValueError`` naming it."""
    text = os.environ.get("MONTPIPE_FPGA_BAUD", "").strip()
    if not text:
        return DEFAULT_BAUD
    try:
        baud = int(text.replace("_", ""))
    except ValueError:
        baud = 0
    if baud <= 0:
        raise ValueError(f"MONTPIPE_FPGA_BAUD must be a positive whole number of bits a second "
                         f"(the build's report says which: 3000000 on the ULX3S, 12000000 on the "
                         f"ECPIX-5), not {text!r}")
    return baud


class FPGABackend(Backend):
    """Modular exponentiation on the accelerator; everything else on the host.

    Parameters
    ----------
    port:
        The serial port (``/dev/ttyUSB0``; any pyserial URL); default ``MONTPIPE_FPGA_PORT``.
    transport:
        An open :class:`~montpipe.driver.transport.Transport` instead of a port.
    baudrate:
        The link's rate: the build's (its synthesis report's ``configuration.baud``); default
        ``MONTPIPE_FPGA_BAUD``, else :data:`~montpipe.driver.transport.DEFAULT_BAUD` (3 Mbaud,
        the ULX3S's; the ECPIX-5's committed build runs at 12 Mbaud).
    timeout:
        Seconds without any response, while requests are outstanding, before they are sent
        again; ``None`` (default) allows 2 s plus three times the cycle model's time for the
        longest request at ``cycle_rate`` (and the frame's time on the link).
    cycle_rate:
        Device cycles a second for that estimate; default: the clock the device reports.
    retries:
        Times one request may be sent again before the batch fails.
    spot_check:
        Fraction of each batch's device results re-computed on the CPU, at least one a batch
        (0 = off, 1 = all); default ``MONTPIPE_FPGA_SPOT_CHECK``, else
        :data:`DEFAULT_SPOT_CHECK`.
    trust_device_with_secrets:
        Send exponentiations marked ``secret`` (a private key's moduli and exponents) to the
        device; default ``MONTPIPE_TRUST_DEVICE_WITH_SECRETS`` (``1``/``yes``), else off: they
        run on the CPU backend and never cross the link.
    split:
        Share each batch between the device and the CPU backend by measured throughput.
    cpu:
        The CPU backend for fallbacks and the split (default: a new one).
    open_timeout:
        Seconds to wait for each of three CAPS requests when opening.
    """

    name = "fpga"

    def __init__(self, port: str | None = None, *, transport: Transport | None = None,
                 baudrate: int | None = None, timeout: float | None = None,
                 cycle_rate: float | None = None, retries: int = 4,
                 spot_check: float | None = None, split: bool = False,
                 cpu: Backend | None = None, open_timeout: float = 2.0,
                 trust_device_with_secrets: bool | None = None) -> None:
        super().__init__()
        if spot_check is None:
            spot_check = spot_check_from_env()
        if not isinstance(spot_check, int | float) or not 0.0 <= spot_check <= 1.0:
            raise ValueError(f"spot_check must be a fraction from 0 to 1, not {spot_check!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        if baudrate is None:
            baudrate = baud_from_env()
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive whole number of bits a second, not "
                             f"{baudrate!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout, self.retries, self.spot_check, self.split = timeout, retries, \
            spot_check, split
        self.trust_device_with_secrets = trust_from_env() if trust_device_with_secrets is None \
            else bool(trust_device_with_secrets)
        self._own_cpu = cpu is None
        self.cpu = cpu if cpu is not None else CPUBackend()
        self._rng = random.Random(secrets.randbits(64))
        self._device_lock = threading.Lock()
        self._batches = 0
        self.stats.extra.update(device_powmods=0, cpu_powmods=0, bytes_out=0, bytes_in=0,
                                retries=0, retry_causes={}, stale_responses=0, timeouts=0,
                                contexts_loaded=0, device_busy_seconds=0.0, spot_checked=0,
                                host_secret_powmods=0, comb_powers=0, comb_jobs=0,
                                table_writes=0, comb_multiexp_terms=0)
        # what the device's table holds, as far as the host knows: the modulus it was written
        # under and its entries (plain residues) by index
        self._table_modulus: int | None = None
        self._table: dict[int, int] = {}
        self._rates: dict[tuple[int, int], list[float]] = {}  # (bits, ebits) → [device, cpu]
        opened = transport is None
        if transport is None:
            port = port or os.environ.get("MONTPIPE_FPGA_PORT", "").strip()
            if not port:
                raise DeviceError("no device port: pass port= or set MONTPIPE_FPGA_PORT "
                                  "(e.g. /dev/ttyUSB0; `python -m montpipe.sim.board` gives a "
                                  "simulated one)")
            try:
                transport = SerialTransport(port, baudrate)
            except DeviceNotFoundError as e:
                raise DeviceError(str(e)) from e
        self.transport = transport
        self.baudrate = baudrate
        self._parser = ResponseParser()
        self._tag = self._rng.randrange(1 << 16)
        self._contexts: OrderedDict[int, _Context] = OrderedDict()
        try:
            self.caps = self._open(open_timeout)
        except DeviceError:
            if opened:                      # a port we opened is not left open behind an error
                transport.close()
            raise
        self.cycle_rate = cycle_rate or self.caps.clock_khz * 1e3 or 100e6
        # from now on a length no response of this device can have is noise
        self._parser = self._new_parser()

    def _new_parser(self) -> ResponseParser:
        caps = getattr(self, "caps", None)
        return ResponseParser(caps.max_response_length()) if caps else ResponseParser()

    # -- opening ------------------------------------------------------------------------------

    def _open(self, timeout: float) -> Capabilities:
        name = self.transport.name
        # answers still on their way from a previous session are not ours
        time.sleep(0.05)
        self.transport.discard_input()
        last = None
        for _ in range(3):
            tag = self._next_tag()
            try:
                response = self._command(encode_request(Opcode.CAPS, tag), tag, timeout)
            except DeviceError as e:
                last = e
                continue
            if response.status != LinkStatus.OK:
                last = DeviceError(f"device at {name} refused CAPS: status "
                                   f"{response.status!r}")
                continue
            # the version byte comes first in every version's CAPS: checked before the rest,
            # whose layout is the version's
            version = response.payload[0] if response.payload else None
            if version is not None and version != PROTOCOL_VERSION:
                raise DeviceError(f"device at {name} speaks protocol version {version}; "
                                  f"this driver speaks version {PROTOCOL_VERSION} (rebuild "
                                  f"the bitstream or update montpipe)")
            try:
                return Capabilities.decode(response.payload)
            except ValueError as e:
                raise DeviceError(f"device at {name} is not a montpipe accelerator (or "
                                  f"speaks another protocol): {e}") from e
        raise DeviceError(f"no montpipe accelerator answers at {name} at {self.baudrate} baud "
                          f"(no valid CAPS response in 3 tries): {last}; a build runs at the baud "
                          f"its report names (the ULX3S's 3000000, the ECPIX-5's 12000000: "
                          f"MONTPIPE_FPGA_BAUD, --baud)")

    def describe(self) -> dict:
        c = self.caps
        try:
            device = asdict(c.device_config())
        except ValueError as e:
            device = {"error": str(e)}
        return {"name": self.name, "port": self.transport.name,
                "max_modulus_bits": self.max_modulus_bits, "device": device,
                "max_exponent_bits": c.max_windows * c.window, "protocol": c.version,
                "split": self.split, "spot_check": self.spot_check,
                "trust_device_with_secrets": self.trust_device_with_secrets,
                "secrets": "device" if self.trust_device_with_secrets else "host"}

    @property
    def max_modulus_bits(self) -> int | None:
        return self.caps.n_max_bits

    def device_takes(self, modulus: int) -> bool:
        """Whether exponentiations modulo ``modulus`` can run on the device."""
        m = int(modulus)
        return m >= 3 and m % 2 == 1 and m.bit_length() <= self.caps.n_max_bits and \
            montgomery_words(m.bit_length(), self.caps.width) >= 3

    def multiexp_plan(self, steps: int, rows: int, bases: int, words: int
                      ) -> MultiexpPlan | None:
        """The comb plan of a multi-exponentiation of ``rows`` rows of ``steps``-bit exponents
        over ``bases`` bases of ``words`` words: the one the device's clock (as its
        capabilities report it, whatever ``cycle_rate`` a simulation gives) and this link's
        rate finish soonest (:func:`~montpipe.driver.comb.device_plan`, as the ``model``
        backend projects it); ``None`` without a table."""
        return device_plan(steps, rows, bases, table_entries=self.caps.table_entries,
                           width=self.caps.width, words=words, lanes=self.caps.lanes,
                           clock_hz=self.caps.clock_khz * 1e3 or self.cycle_rate,
                           bytes_per_s=self.baudrate / 10)

    # -- the link ---------------------------------------------------------------------------

    def _next_tag(self) -> int:
        self._tag = (self._tag + 1) & 0xFFFF
        return self._tag

    def _send(self, frame: bytes) -> None:
        self.transport.write(frame)
        self.stats.extra["bytes_out"] += len(frame)

    def _receive(self, wait: float) -> list[Response]:
        data = self.transport.read(wait)
        self.stats.extra["bytes_in"] += len(data)
        return self._parser.feed(data) if data else []

    def _command(self, frame: bytes, tag: int, timeout: float) -> Response:
        """Send a non-MODEXP command (nothing else outstanding) and wait for its answer."""
        self._send(frame)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError(f"device at {self.transport.name} did not answer opcode "
                                  f"{frame[3]:#04x} (tag {tag}) within {timeout:g} s")
            for r in self._receive(min(left, 0.1)):
                if r.tag == tag and _answers(r, frame[3]):
                    return r
                self.stats.extra["stale_responses"] += 1

    def link_status(self) -> dict:
        """The device's link counters (STATUS): frames accepted, bad CRCs, errors, timeouts
        since its last reset. Nothing may be in flight."""
        with self._device_lock:
            tag = self._next_tag()
            r = self._command(encode_request(Opcode.STATUS, tag), tag, self.timeout or 2.0)
        if r.status != LinkStatus.OK or len(r.payload) != 16:
            raise DeviceError(f"device at {self.transport.name} answered STATUS with status "
                              f"{r.status!r} and {len(r.payload)} bytes (16 expected)")
        values = [int.from_bytes(r.payload[4 * k:4 * k + 4], "little") for k in range(4)]
        return dict(zip(("frames", "bad_crc", "errors", "timeouts"), values, strict=True))

    def _retry(self, cause: str, count: int = 1) -> None:
        self.stats.extra["retries"] += count
        causes = self.stats.extra["retry_causes"]
        causes[cause] = causes.get(cause, 0) + count

    def _context(self, modulus: int, batch: str) -> _Context:
        """The context holding ``modulus``, loaded now if it is not (nothing may be in flight)."""
        ctx = self._contexts.get(modulus)
        if ctx is not None:
            self._contexts.move_to_end(modulus)
            return ctx
        W = self.caps.width
        s = montgomery_words(modulus.bit_length(), W)
        if len(self._contexts) >= self.caps.contexts:
            evicted, old = self._contexts.popitem(last=False)
            slot = old.slot
            if evicted == self._table_modulus:
                self._forget_table()        # loading another context there voids the table
        else:
            used = {c.slot for c in self._contexts.values()}
            slot = min(set(range(self.caps.contexts)) - used)
        r2 = int(gmpy2.powmod(2, 2 * W * s, modulus))
        for _attempt in range(self.retries + 1):
            tag = self._next_tag()
            frame = load_context_request(tag, slot, modulus, width=W, words=s,
                                         mprime=mprime(modulus, W), r2=r2)
            try:
                r = self._command(frame, tag, self._timeout_for(s, 0, len(frame)))
            except DeviceError:
                self._retry("context timeout")
                self._parser = self._new_parser()
                continue
            if r.status == LinkStatus.OK:
                self.stats.extra["contexts_loaded"] += 1
                ctx = self._contexts[modulus] = _Context(slot, s)
                return ctx
            if r.status not in _RETRY:
                raise DeviceError(f"{batch}: the device refused the {modulus.bit_length()}-bit "
                                  f"modulus context: {r.status!r}")
            self._retry(f"context {LinkStatus(r.status).name}")
        raise DeviceError(f"{batch}: loading the {modulus.bit_length()}-bit modulus context "
                          f"failed {self.retries + 1} times")

    def _timeout_for(self, words: int, windows: int, frame_bytes: int) -> float:
        if self.timeout is not None:
            return self.timeout
        cycles = modexp_cycles(words, self.caps.window, [1] * windows, True, self.caps.width)
        link = 10 * frame_bytes / self.baudrate
        return 2.0 + 3.0 * (cycles / self.cycle_rate + link)

    # -- one batch on the device ------------------------------------------------------------

    def _device_powmod(self, bases: list[int], exps: list[int], modulus: int, secret: bool,
                       batch: str) -> list[int]:
        caps, W = self.caps, self.caps.width
        size = word_bytes(W)
        windows_const = None
        if secret:
            bits = max((e.bit_length() for e in exps), default=0)
            windows_const = -(-bits // caps.window)
        ops = deque(_Op(i, b, exponent_digits(e, caps.window, windows_const))
                    for i, (b, e) in enumerate(zip(bases, exps, strict=True)))
        results: list[int | None] = [None] * len(bases)
        limit = min(caps.lanes + 1, 31)      # the link queues 32 result lengths
        longest = max((len(op.digits) for op in ops), default=0)
        pending: OrderedDict[int, _Op] = OrderedDict()      # tag → op, in sending order
        ctx: _Context | None = None
        timeout = None
        last_progress = time.monotonic()
        started = last_progress
        reload = True                         # (re)load the context once nothing is in flight
        while ops or pending:
            if reload and not pending:
                ctx = self._context(modulus, batch)
                timeout = self._timeout_for(ctx.words, longest,
                                            modexp_wire_bytes(ctx.words, W, longest))
                reload = False
                last_progress = time.monotonic()
            while ops and not reload and len(pending) < limit:
                op = ops.popleft()
                op.tries += 1
                if op.tries > self.retries + 1:
                    self._drain(pending, timeout)
                    raise DeviceError(f"{batch}: exponentiation {op.index} was sent "
                                      f"{op.tries - 1} times without a valid result "
                                      f"({self._describe_retries()})")
                tag = self._next_tag()
                pending[tag] = op
                self._send(modexp_request(tag, ctx.slot, op.base, op.digits, width=W,
                                          words=ctx.words, const_time=secret))
            responses = self._receive(0.05)
            rejected: DeviceError | None = None
            for r in responses:
                op = pending.pop(r.tag, None) if _answers(r, Opcode.MODEXP) else None
                if op is None:
                    self.stats.extra["stale_responses"] += 1
                    continue
                last_progress = time.monotonic()
                if r.status == LinkStatus.OK:
                    # the length first: a payload of no whole number of words does not unpack
                    value = unpack_words(r.payload, W) if len(r.payload) == ctx.words * size \
                        else modulus
                    if value >= modulus:
                        self._retry("malformed result")
                        ops.appendleft(op)
                        continue
                    results[op.index] = value
                    # results leave in request order: anything sent before this one and still
                    # unanswered was lost on the way (its frame, or its answer)
                    while pending:
                        first_tag, first = next(iter(pending.items()))
                        if first_tag == r.tag or self._sent_after(first_tag, r.tag):
                            break
                        del pending[first_tag]
                        self._retry("overtaken")
                        ops.appendleft(first)
                elif r.status == LinkStatus.NO_CONTEXT:
                    # the device lost its contexts (a reset): reload once the rest is in
                    self._retry("NO_CONTEXT")
                    self._device_may_have_reset()
                    reload = True
                    ops.appendleft(op)
                elif r.status in _RETRY:
                    self._retry(LinkStatus(r.status).name)
                    ops.appendleft(op)
                else:
                    # the batch fails, once the rest of what came is taken and what is still
                    # unanswered has answered
                    rejected = rejected or DeviceError(
                        f"{batch}: the device rejected exponentiation {op.index}: "
                        f"{r.status!r} (base {op.base.bit_length()} bits, {len(op.digits)} "
                        f"digits, modulus {modulus.bit_length()} bits)")
            if rejected is not None:
                self._drain(pending, timeout)
                raise rejected
            if pending and time.monotonic() - last_progress > timeout:
                self._on_silence(pending, ops, batch, timeout)
                reload = True          # the device may have been reset: its contexts with it
                self._device_may_have_reset()
                last_progress = time.monotonic()
        self.stats.extra["device_busy_seconds"] += time.monotonic() - started
        return results  # type: ignore[return-value]

    def _drain(self, pending: OrderedDict, timeout: float) -> None:
        """Take the answers to the exponentiations still unanswered off the link, unused, until
        none is left or nothing has come for ``timeout`` seconds: a batch that fails leaves the
        device idle and no answer of its own for the next batch to find."""
        self._wait_out(pending, timeout, lambda r: _answers(r, Opcode.MODEXP) and
                       pending.pop(r.tag, None) is not None)

    def _wait_out(self, pending, timeout: float, take) -> None:
        """Read answers until ``pending`` is empty or nothing has come for ``timeout`` seconds;
        ``take(r)`` files an answer away (false: it answers nothing pending, and is stale)."""
        last = time.monotonic()
        while pending and time.monotonic() - last < timeout:
            for r in self._receive(0.05):
                if take(r):
                    last = time.monotonic()
                else:
                    self.stats.extra["stale_responses"] += 1

    def _sent_after(self, tag: int, other: int) -> bool:
        """Whether ``tag`` was issued after ``other`` (tags count up modulo 2^16)."""
        return 0 < (tag - other) & 0xFFFF < 0x8000

    def _on_silence(self, pending: OrderedDict, ops: deque, batch: str, timeout: float) -> None:
        """Nothing came for ``timeout`` seconds with requests outstanding: they are lost (or the
        device is gone). Probe with CAPS; if it answers, send them again."""
        self.stats.extra["timeouts"] += 1
        self._retry("timeout", len(pending))
        lost = list(pending.values())
        pending.clear()
        for op in reversed(lost):
            ops.appendleft(op)
        self._parser = self._new_parser()          # a frame cut short is not coming back
        tag = self._next_tag()
        try:
            r = self._command(caps_request(tag), tag, max(2.0, timeout))
        except DeviceError as e:
            raise DeviceError(f"{batch}: no response for {timeout:g} s with {len(lost)} "
                              f"exponentiations outstanding, and the device does not answer "
                              f"CAPS ({e}); {len(ops)} results missing") from None
        if r.status != LinkStatus.OK:
            raise DeviceError(f"{batch}: after a silence of {timeout:g} s the device answers "
                              f"CAPS with {r.status!r}")

    def _describe_retries(self) -> str:
        causes = self.stats.extra["retry_causes"]
        return ", ".join(f"{k}: {v}" for k, v in sorted(causes.items())) or "no retries"

    # -- the backend's operations -----------------------------------------------------------

    def powmod(self, bases: Sequence[int], exponents: Sequence[int] | int, modulus: int, *,
               secret: bool = False) -> list[int]:
        t0 = time.perf_counter()
        bases = [int(b) for b in bases]
        if isinstance(exponents, int) or not hasattr(exponents, "__len__"):
            exps = [int(exponents)] * len(bases)
        else:
            exps = [int(e) for e in exponents]
            if len(exps) != len(bases):
                raise ValueError(f"got {len(bases)} bases but {len(exps)} exponents; they must "
                                 f"pair up")
        modulus = int(modulus)
        if modulus <= 1:
            raise ValueError(f"modulus must be an integer greater than 1, not {modulus}")
        self.stats.calls += 1
        self.stats.powmods += len(bases)
        if not bases:
            return []
        with self._lock:
            self._batches += 1
            batch = (f"batch {self._batches} ({len(bases)} exponentiations modulo a "
                     f"{modulus.bit_length()}-bit modulus on {self.transport.name})")
        m = gmpy2.mpz(modulus)
        # negative exponents: the inverse base (raises for a base not invertible)
        for i, e in enumerate(exps):
            if e < 0:
                try:
                    bases[i] = int(gmpy2.invert(bases[i], m))
                except ZeroDivisionError:
                    raise ValueError(f"bases[{i}] has no inverse modulo the modulus, so it "
                                     f"cannot take the negative exponent {e}") from None
                exps[i] = -e
            else:
                bases[i] %= modulus
        max_bits = self.caps.max_windows * self.caps.window
        out: list[int | None] = [None] * len(bases)
        if secret and not self.trust_device_with_secrets:
            # a private key's modulus and exponents never cross the link unless the user says
            device, host = [], list(range(len(bases)))
            self.stats.extra["host_secret_powmods"] += len(host)
        else:
            device = [i for i, e in enumerate(exps) if e.bit_length() <= max_bits] \
                if self.device_takes(modulus) else []
            host = sorted(set(range(len(bases))) - set(device))
            self.stats.fallbacks += len(host)     # what the device cannot take
        if self.split and len(device) > 1:
            share = self._cpu_share(modulus, exps, len(device))
            host += device[len(device) - share:]
            device = device[:len(device) - share]
        cpu_future = None
        if host:
            self.stats.extra["cpu_powmods"] += len(host)
            cpu_future = self._cpu_pool_submit([bases[i] for i in host], [exps[i] for i in host],
                                               modulus, secret)
        device_seconds = 0.0
        if device:
            t_dev = time.perf_counter()
            with self._device_lock:
                values = self._device_powmod([bases[i] for i in device],
                                             [exps[i] for i in device], modulus, secret, batch)
            device_seconds = time.perf_counter() - t_dev
            self.stats.extra["device_powmods"] += len(device)
            for i, v in zip(device, values, strict=True):
                out[i] = v
            self._spot_check(device, bases, exps, out, modulus, batch, secret)
        if cpu_future is not None:
            t_cpu0, values, t_cpu = cpu_future.result()
            for i, v in zip(host, values, strict=True):
                out[i] = v
            self._learn(modulus, exps, len(host), t_cpu - t_cpu0, cpu=True)
        if device:
            self._learn(modulus, exps, len(device), device_seconds, cpu=False)
        self.stats.busy_seconds += time.perf_counter() - t0
        return out  # type: ignore[return-value]

    def _cpu_pool_submit(self, bases, exps, modulus, secret):
        def run():
            t = time.perf_counter()
            values = self.cpu.powmod(bases, exps, modulus, secret=secret)
            return t, values, time.perf_counter()
        with self._lock:
            if self._executor is None:
                import concurrent.futures
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="montpipe-fpga-cpu")
        return self._executor.submit(run)

    def fixed_base(self, base: int, modulus: int, max_bits: int) -> FixedBasePower:
        """The device's comb when the build has a table that covers ``max_bits`` and takes the
        modulus; else powers one by one (:meth:`powmod`)."""
        modulus = int(modulus)
        shape = choose_shape(max_bits, self.caps.table_entries) \
            if self.caps.table_entries and max_bits >= 1 else None
        if shape is None or not self.device_takes(modulus):
            return super().fixed_base(base, modulus, max_bits)
        return _DeviceFixedBase(self, int(base) % modulus, modulus, max_bits, shape)

    def multiexp(self, bases: Sequence[int], exponents: Sequence[Sequence[int]],
                 modulus: int) -> list[int]:
        """On the device's comb when the build has a table and takes the modulus (see the
        module's notes); else exponentiation by exponentiation."""
        modulus = int(modulus)
        bases = [int(b) % modulus for b in bases]
        rows = [[int(e) for e in row] for row in exponents]
        for row in rows:
            if len(row) != len(bases):
                raise ValueError(f"exponent row has {len(row)} entries but there are "
                                 f"{len(bases)} bases")
        m = gmpy2.mpz(modulus)
        steps, offset = multiexp_steps(rows)
        correction: int | None = 1
        if offset:
            product = gmpy2.mpz(1)
            for b in bases:
                product = product * b % m
            try:
                correction = int(gmpy2.invert(gmpy2.powmod(product, offset, m), m))
            except ZeroDivisionError:
                correction = None                   # a base without an inverse: below
        s = montgomery_words(modulus.bit_length(), self.caps.width) \
            if modulus.bit_length() >= 2 else 0
        plan = self.multiexp_plan(steps, len(rows), len(bases), s) if bases and s else None
        if plan is None or correction is None or not self.device_takes(modulus):
            return super().multiexp(bases, rows, modulus)
        t0 = time.perf_counter()
        self.stats.multiexp_terms += len(bases) * len(rows)
        with self._lock:
            self._batches += 1
            batch = (f"batch {self._batches} (multi-exponentiation of {len(rows)} rows over "
                     f"{len(bases)} bases modulo a {modulus.bit_length()}-bit modulus on "
                     f"{self.transport.name})")
        shifted = [[e + offset for e in row] for row in rows]
        groups = subset_tables(bases, modulus, plan.bits)
        v, step = plan.tables, plan.chunk_bases
        chunks = -(-len(groups) // v)
        one = 1 % modulus
        out = [gmpy2.mpz(correction)] * len(rows)
        frames, placed = [], []
        for frame in multiexp_frames(chunks, len(rows), self.caps.lanes, plan.slots):
            entries = {index: one if g is None else groups[g][d]
                       for c in sorted({c for c, _ in frame.jobs})
                       for index, g, d in chunk_entries(plan, c, len(groups))}
            frames.append(CombFrame(entries, plan.shape, [
                multiexp_digits(shifted[r][c * step:(c + 1) * step], plan, c % plan.slots)
                for c, r in frame.jobs]))
            placed.append(frame.jobs)
        with self._device_lock:
            answers = self._device_comb(modulus, frames, batch)
        for jobs, values in zip(placed, answers, strict=True):
            for (_, r), value in zip(jobs, values, strict=True):
                out[r] = out[r] * value % m
        self.stats.extra["comb_multiexp_terms"] += len(bases) * len(rows)
        result = [int(o) for o in out]
        if self.spot_check:
            count = max(1, round(self.spot_check * len(rows)))
            sample = self._rng.sample(range(len(rows)), min(count, len(rows)))
            wants = self.cpu.multiexp(bases, [rows[j] for j in sample], modulus)
            for j, want in zip(sample, wants, strict=True):
                self.stats.extra["spot_checked"] += 1
                if result[j] != want:
                    raise DeviceResultError(f"{batch}: spot check failed for row {j}: the "
                                            f"device's result differs from the CPU's")
        self.stats.busy_seconds += time.perf_counter() - t0
        return result

    def _forget_table(self) -> None:
        """The device's table is to be taken as empty: it may have been reset, or the table's
        context was loaded again (the device then refuses the table)."""
        self._table_modulus = None
        self._table = {}

    def _device_may_have_reset(self) -> None:
        """Forget what the device was known to hold: its contexts and its table (a block RAM
        after a reset or a new bitstream holds anything, and a single table write makes the
        whole table count as written)."""
        self._contexts.clear()
        self._forget_table()

    def _device_comb(self, modulus: int, frames: list[CombFrame], batch: str) -> list[list[int]]:
        """Every frame's jobs on the comb, each frame's results in job order.

        Before a frame, the writes of its table entries that the device does not hold (nor
        is being sent); then its ``COMB``. Up to :data:`LINK_WINDOW` of these frames are
        unanswered at once — the link's two request buffers, one being served and one
        waiting — so a frame travels while the one before is served, and a comb's results
        come back while the next comb runs (a ``COMB`` is answered when all its jobs are).
        A frame whose own write or comb fails is sent again, writes and all, once nothing is
        unanswered; so are the combs sent behind a failed write (they may have read the entry
        it did not write), and everything unanswered after a reset or a silence. Each failure
        counts against the frame it struck (a silence against the oldest unanswered), once a
        round: a frame already lost to another's failure (poisoned) is not charged for what
        follows from it (a reset answers every frame after it NO_CONTEXT, or cuts one short),
        and every round charges the frame whose failure began it, so retries stay bounded and
        the batch fails naming the frame that used them up; before any error leaves, what is
        still unanswered is waited for, so the next batch does not find the device busy with
        this one."""
        W = self.caps.width
        size = word_bytes(W)
        results: list[list[int] | None] = [None] * len(frames)
        failed = [0] * len(frames)           # each frame's failures (its own, not another's)
        pending: deque[_Sent] = deque()      # sent and unanswered, in sending order
        writing: dict[int, int] = {}         # entries whose write is unanswered: their values
        queue: deque[tuple] = deque()        # the frame being sent: what it still has to send
        nxt = 0                              # the next frame to queue
        ctx: _Context | None = None
        words = 0                            # the modulus's words (kept when ctx is dropped)
        restart = False                      # a failure: drain, then send again from the first
        timeout = 0.0
        started = last_progress = time.monotonic()
        while pending or any(r is None for r in results):
            if not pending and (restart or ctx is None):
                if restart:
                    queue.clear()
                    nxt, restart = 0, False
                if ctx is None:
                    ctx = self._context(modulus, batch)
                    words = ctx.words
                    if self._table_modulus != modulus:
                        self._forget_table()
                        self._table_modulus = modulus
                    timeout = self._timeout_for(ctx.words, 0, len(table_write_request(
                        0, 0, 0, 0, width=W, words=ctx.words)))
                    for f in {len(f.jobs): f for f in frames}.values():
                        timeout = max(timeout, self._comb_timeout(f, ctx))
                last_progress = time.monotonic()
            while not restart and len(pending) < LINK_WINDOW:
                if not queue:
                    while nxt < len(frames) and results[nxt] is not None:
                        nxt += 1
                    if nxt == len(frames):
                        break
                    if failed[nxt] > self.retries:
                        self._settle(pending, timeout)
                        raise DeviceError(f"{batch}: comb frame {nxt} ({len(frames[nxt].jobs)} "
                                          f"jobs, its table writes first) failed "
                                          f"{failed[nxt]} times, got no valid results "
                                          f"(the backend's retries so far: "
                                          f"{self._describe_retries()})")
                    for index, value in sorted(frames[nxt].entries.items()):
                        if self._table.get(index) != value and writing.get(index) != value:
                            queue.append(("table", index, value))
                    queue.append(("comb",))
                    nxt += 1
                item = queue.popleft()
                frame_index = nxt - 1
                tag = self._next_tag()
                if item[0] == "table":
                    _, index, value = item
                    # until the device answers, the entry holds neither value as far as the
                    # host knows
                    self._table.pop(index, None)
                    writing[index] = value
                    self._send(table_write_request(tag, ctx.slot, index,
                                                   value * pow(2, W * ctx.words, modulus)
                                                   % modulus, width=W, words=ctx.words))
                    pending.append(_Sent(frame_index, tag, 0, index, value))
                else:
                    f = frames[frame_index]
                    # job j answers with tag + j: the tags after this one are the comb's
                    self._tag = (tag + len(f.jobs) - 1) & 0xFFFF
                    self._send(comb_request(tag, ctx.slot, f.shape.steps, f.shape.tables,
                                            f.shape.bits, f.jobs))
                    pending.append(_Sent(frame_index, tag, len(f.jobs)))
            refused: DeviceError | None = None
            for r in self._receive(0.05):
                sent = next((p for p in pending if p.answered_by(r)), None)
                if sent is None:
                    self.stats.extra["stale_responses"] += 1
                    continue
                last_progress = time.monotonic()
                if r.status == LinkStatus.OK:
                    # a table write is answered before the device serves the frame behind it,
                    # so one still unanswered when a later frame's answer comes was lost (its
                    # frame, or its answer): the combs behind it may have read the old entry
                    lost = next((p for p in pending if not p.jobs), None)
                    if lost is not None and lost is not sent and \
                            pending.index(lost) < pending.index(sent):
                        self._retry("table write overtaken")
                        failed[lost.frame] += 1
                        pending.remove(lost)
                        writing.pop(lost.index, None)
                        for p in pending:
                            p.poisoned = True
                        restart = True
                if r.status == LinkStatus.NO_CONTEXT or \
                        (r.status in _RETRY and not sent.jobs):
                    # a reset drops everything unanswered; a failed write, every comb sent
                    # behind it
                    cause = LinkStatus(r.status).name
                    self._retry(f"table {cause}" if not sent.jobs else cause)
                    # a frame sent behind another's failure (a reset answers each of them
                    # NO_CONTEXT) shares that failure; it is not a try of its own
                    if not sent.poisoned:
                        failed[sent.frame] += 1
                    pending.remove(sent)
                    if not sent.jobs:
                        writing.pop(sent.index, None)
                    for p in pending if r.status == LinkStatus.NO_CONTEXT or not sent.jobs \
                            else ():
                        p.poisoned = True
                    if r.status == LinkStatus.NO_CONTEXT:
                        self._device_may_have_reset()
                        writing.clear()
                        ctx = None
                    restart = True
                elif r.status in _RETRY:
                    self._retry(LinkStatus(r.status).name)      # the comb was not run
                    if not sent.poisoned:
                        failed[sent.frame] += 1
                    pending.remove(sent)
                    restart = True
                elif r.status != LinkStatus.OK:
                    # refused (not a fault of the line): the batch fails once the rest of
                    # what came is taken and what is still unanswered has answered
                    what = f"a comb of {sent.jobs} jobs" if sent.jobs else \
                        f"table entry {sent.index}"
                    _discard_answer(pending, sent, r)
                    refused = refused or DeviceError(f"{batch}: the device refused {what}: "
                                                     f"{r.status!r}")
                elif not sent.jobs:
                    pending.remove(sent)
                    if writing.get(sent.index) == sent.value:
                        del writing[sent.index]
                    if not sent.poisoned:
                        self.stats.extra["table_writes"] += 1
                        self._table[sent.index] = sent.value
                else:
                    # the length first: a payload of no whole number of words does not unpack
                    value = unpack_words(r.payload, W) if len(r.payload) == words * size \
                        else modulus
                    if value >= modulus:
                        self._retry("malformed result")
                        if not sent.poisoned:
                            failed[sent.frame] += 1
                        sent.poisoned = restart = True
                    sent.got[(r.tag - sent.tag) & 0xFFFF] = value
                    if len(sent.got) == sent.jobs:
                        pending.remove(sent)
                        if not sent.poisoned:
                            results[sent.frame] = [sent.got[j] for j in range(sent.jobs)]
            if refused is not None:
                self._settle(pending, timeout)
                raise refused
            if pending and time.monotonic() - last_progress > timeout:
                # a silence is the oldest frame's failure, unless every frame unanswered was
                # already lost to a failure charged this round (a reset's aftermath)
                struck = next((p for p in pending if not p.poisoned), None)
                if struck is not None:
                    failed[struck.frame] += 1
                self._comb_silence(pending, batch, timeout)
                writing.clear()
                ctx, restart = None, True
        self.stats.extra["comb_jobs"] += sum(len(f.jobs) for f in frames)
        self.stats.extra["device_busy_seconds"] += time.monotonic() - started
        return results  # type: ignore[return-value]

    def _settle(self, pending: deque, timeout: float) -> None:
        """Take the answers to what is still unanswered off the link, unused, until none is
        left or nothing has come for ``timeout`` seconds: a batch that fails leaves the device
        idle and no answer of its own for the next batch to find. The entries whose writes
        are among them are already known as nothing."""
        def take(r) -> bool:
            sent = next((p for p in pending if p.answered_by(r)), None)
            if sent is not None:
                _discard_answer(pending, sent, r)
            return sent is not None

        self._wait_out(pending, timeout, take)

    def _comb_timeout(self, frame: CombFrame, ctx: _Context) -> float:
        """Seconds to wait for a comb frame's answers: its device time and its bytes, with a
        margin."""
        caps = self.caps
        cycles = comb_frame_cycles(caps.lanes, ctx.words, len(frame.jobs), frame.shape.steps,
                                   frame.shape.tables, caps.width)
        link = 10 * (len(frame.jobs) * (11 + ctx.words * word_bytes(caps.width)) +
                     len(comb_request(0, ctx.slot, frame.shape.steps, frame.shape.tables,
                                      frame.shape.bits, frame.jobs)))
        return self.timeout or 2.0 + 3.0 * (cycles / self.cycle_rate + link / self.baudrate)

    def _comb_silence(self, pending: deque, batch: str, timeout: float) -> None:
        """Nothing came for ``timeout`` seconds with comb frames or table writes unanswered:
        they are lost, and the device may have been reset. Probe with CAPS (no answer: the
        batch fails naming it) and forget what the device held."""
        self.stats.extra["timeouts"] += 1
        self._retry("timeout", len(pending))
        lost = len(pending)
        pending.clear()
        self._parser = self._new_parser()          # a frame cut short is not coming back
        probe = self._next_tag()
        try:
            self._command(caps_request(probe), probe, max(2.0, timeout))
        except DeviceError as e:
            raise DeviceError(f"{batch}: no response for {timeout:g} s with {lost} comb "
                              f"frames or table writes outstanding, and the device does not "
                              f"answer CAPS ({e})") from None
        self._device_may_have_reset()

    def mulmod(self, a: Sequence[int], b: Sequence[int], modulus: int) -> list[int]:
        """On the host (the CPU backend's kernels): the device only exponentiates."""
        self.stats.mulmods += len(a)
        return self.cpu.mulmod(a, b, modulus)

    def prodmod(self, values: Sequence[int], modulus: int) -> int:
        self.stats.mulmods += len(values)
        return self.cpu.prodmod(values, modulus)

    # -- the split ----------------------------------------------------------------------------

    def _shape(self, modulus: int, exps: list[int]) -> tuple[int, int]:
        return modulus.bit_length(), max((e.bit_length() for e in exps), default=0)

    def _learn(self, modulus, exps, count, seconds, *, cpu: bool) -> None:
        if count < 1 or seconds <= 0:
            return
        rates = self._rates.setdefault(self._shape(modulus, exps), [0.0, 0.0])
        rate = count / seconds
        k = 1 if cpu else 0
        rates[k] = rate if rates[k] == 0 else 0.5 * rates[k] + 0.5 * rate

    def _cpu_share(self, modulus: int, exps: list[int], n: int) -> int:
        """How many of ``n`` exponentiations go to the CPU: by the measured rates, or by the
        cycle model against one timed CPU exponentiation before any are measured."""
        rates = self._rates.setdefault(self._shape(modulus, exps), [0.0, 0.0])
        if rates[0] == 0:
            words = montgomery_words(modulus.bit_length(), self.caps.width)
            windows = -(-max(e.bit_length() for e in exps) // self.caps.window)
            rates[0] = self.caps.lanes * self.cycle_rate / \
                modexp_cycles(words, self.caps.window, [1] * windows, True, self.caps.width)
        if rates[1] == 0:
            e = max(exps)
            t = time.perf_counter()
            self.cpu.powmod([modulus - 2], [e], modulus)
            rates[1] = 1 / max(time.perf_counter() - t, 1e-9) * \
                getattr(self.cpu, "workers", 1)
        share = round(n * rates[1] / (rates[0] + rates[1]))
        return min(max(share, 0), n)

    @classmethod
    def from_env(cls) -> FPGABackend:
        """The backend ``MONTPIPE_BACKEND=fpga`` gives: the port from ``MONTPIPE_FPGA_PORT``, its
        rate from ``MONTPIPE_FPGA_BAUD`` (default 3 Mbaud), a
        spot-checked fraction from ``MONTPIPE_FPGA_SPOT_CHECK`` (default
        :data:`DEFAULT_SPOT_CHECK`), ``MONTPIPE_FPGA_SPLIT=1`` to split exponentiations over
        the lanes, and ``MONTPIPE_TRUST_DEVICE_WITH_SECRETS=1`` to send secrets to the device."""
        split = os.environ.get("MONTPIPE_FPGA_SPLIT", "").strip() in ("1", "yes")
        return cls(split=split)

    # -- checks --------------------------------------------------------------------------------

    def _spot_check(self, device, bases, exps, out, modulus, batch, secret) -> None:
        if not self.spot_check:
            return
        count = max(1, round(self.spot_check * len(device)))
        sample = self._rng.sample(device, min(count, len(device)))
        m = gmpy2.mpz(modulus)
        # a secret exponent is checked without leaking it through the host's timing
        power = gmpy2.powmod_sec if secret and modulus % 2 and modulus > 1 else gmpy2.powmod
        for i in sample:
            want = int(power(bases[i], exps[i], m)) if exps[i] else 1 % modulus
            self.stats.extra["spot_checked"] += 1
            if out[i] != want:
                raise DeviceResultError(f"{batch}: spot check failed for exponentiation {i}: "
                                        f"the device's result differs from the CPU's")

    def close(self) -> None:
        super().close()
        if self._own_cpu:
            self.cpu.close()
        self.transport.close()


class _DeviceFixedBase(FixedBasePower):
    """Powers of one base by the device's comb (:meth:`FPGABackend.fixed_base`)."""

    def __init__(self, backend: FPGABackend, base: int, modulus: int, max_bits: int,
                 shape: CombShape) -> None:
        self.backend, self.base, self.modulus, self.max_bits = backend, base, modulus, max_bits
        self.shape = shape
        self.table = dict(enumerate(comb_table(base, modulus, shape)))

    def pow(self, exponents: Sequence[int]) -> list[int]:
        check_fixed_base_exponents(exponents, self.max_bits)
        b = self.backend
        exps = [int(e) for e in exponents]
        b.stats.fixed_base_powmods += len(exps)
        if not exps:
            return []
        t0 = time.perf_counter()
        with b._lock:
            b._batches += 1
            batch = (f"batch {b._batches} ({len(exps)} fixed-base powers modulo a "
                     f"{self.modulus.bit_length()}-bit modulus on {b.transport.name})")
        jobs = [comb_digits(e, self.shape) for e in exps]
        lanes = b.caps.lanes
        with b._device_lock:
            answers = b._device_comb(self.modulus, [
                CombFrame(self.table, self.shape, jobs[at:at + lanes])
                for at in range(0, len(jobs), lanes)], batch)
        out = [value for values in answers for value in values]
        b.stats.extra["comb_powers"] += len(exps)
        if b.spot_check:
            count = max(1, round(b.spot_check * len(exps)))
            m = gmpy2.mpz(self.modulus)
            for i in b._rng.sample(range(len(exps)), min(count, len(exps))):
                b.stats.extra["spot_checked"] += 1
                if out[i] != int(gmpy2.powmod(self.base, exps[i], m)):
                    raise DeviceResultError(f"{batch}: spot check failed for power {i}: the "
                                            f"device's result differs from the CPU's")
        b.stats.busy_seconds += time.perf_counter() - t0
        return out


def _answers(r: Response, opcode: int) -> bool:
    """Whether ``r`` can be the answer to a request with ``opcode``: its own opcode, or opcode
    0 (the link's receiver answering for the frame: BAD_CRC, BUSY, ...) with an error status.
    An OK under any other opcode is no result of this request, whatever its tag."""
    if r.opcode == opcode:
        return True
    return r.opcode == 0 and r.status != LinkStatus.OK


#: the spot-check fraction without MONTPIPE_FPGA_SPOT_CHECK: one result in a hundred (and at
#: least one a batch) re-computed on the CPU catches a device that is wrong often at the cost
#: of 1 % of the work; 0 turns checks off
DEFAULT_SPOT_CHECK = 0.01


def spot_check_from_env() -> float:
    """``MONTPIPE_FPGA_SPOT_CHECK`` as a fraction, else :data:`DEFAULT_SPOT_CHECK`."""
    spot = os.environ.get("MONTPIPE_FPGA_SPOT_CHECK", "").strip()
    try:
        return float(spot) if spot else DEFAULT_SPOT_CHECK
    except ValueError:
        raise ValueError(f"MONTPIPE_FPGA_SPOT_CHECK must be a fraction, not {spot!r}") from None
