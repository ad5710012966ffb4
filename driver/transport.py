"""Byte transports under the ``fpga`` and ``sim`` backends: one interface for a board's serial
port and a simulated board's pseudo-terminal (both through pyserial), and a fault injector that
wraps either.

A transport moves bytes and nothing else: framing, tags, retries and timeouts are the backend's
(:mod:`montpipe.driver.backends.fpga`).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["DEFAULT_BAUD", "DeviceNotFoundError", "Fault", "FaultyTransport", "SerialTransport",
           "Transport"]


#: the link's rate unless the build's report says otherwise: the ULX3S's FT231X at its fastest
#: (the ECPIX-5's committed build runs at 12 Mbaud)
DEFAULT_BAUD = 3_000_000


class DeviceNotFoundError(OSError):
    """The port does not exist or cannot be opened; the message names it."""


class Transport(abc.ABC):
    """A bidirectional byte stream."""

    #: what the transport is connected to, for messages
    name: str = "?"

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of ``data``."""

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """What has arrived, waiting up to ``timeout`` seconds for at least one byte
        (``b""`` if none came)."""

    def discard_input(self) -> None:
        """Drop whatever has arrived and not been read."""
        while self.read(0):
            pass

    @abc.abstractmethod
    def close(self) -> None: ...


class SerialTransport(Transport):
    """A serial port through pyserial: ``/dev/ttyUSB0``, a simulated board's ``/dev/pts/N``, or
    any pyserial URL (``socket://host:port``, ``loop://``)."""

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUD) -> None:
        import serial

        self.name = str(port)
        try:
            self._serial = serial.serial_for_url(str(port), baudrate=baudrate, timeout=0,
                                                 write_timeout=10)
        except (serial.SerialException, OSError, ValueError) as e:
            raise DeviceNotFoundError(f"cannot open the device port {port!r}: {e}") from e

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, timeout: float) -> bytes:
        s = self._serial
        waiting = s.in_waiting
        if waiting:
            return s.read(waiting)
        if timeout <= 0:
            return b""
        s.timeout = timeout
        try:
            first = s.read(1)
        finally:
            s.timeout = 0
        return first + s.read(s.in_waiting) if first else b""

    def close(self) -> None:
        self._serial.close()


@dataclass
class Fault:
    """One fault on the link. ``direction`` is ``"tx"`` (host to device) or ``"rx"``; ``at``
    counts bytes in that direction from 0 since the injector was made.

    kinds: ``"corrupt"`` flips bit 0 of byte ``at``; ``"drop"`` removes ``length`` bytes from
    ``at`` (a dropped byte, or a whole response); ``"delay"`` (``rx`` only) holds the bytes from
    ``at`` back for ``seconds``; ``"call"`` calls ``action()`` when byte ``at`` passes (say, to
    reset the device mid-batch).
    """

    direction: str
    at: int
    kind: str
    length: int = 1
    seconds: float = 0.0
    action: Callable[[], None] | None = None
    fired: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.direction not in ("tx", "rx"):
            raise ValueError(f"fault direction must be 'tx' or 'rx', not {self.direction!r}")
        if self.kind not in ("corrupt", "drop", "delay", "call"):
            raise ValueError(f"fault kind must be corrupt, drop, delay or call, not "
                             f"{self.kind!r}")
        if self.kind == "call" and self.action is None:
            raise ValueError("a 'call' fault needs an action")
        if self.kind == "delay" and self.direction != "rx":
            raise ValueError("a 'delay' fault holds back what the device sends: direction 'rx'")


class FaultyTransport(Transport):
    """Wraps a transport and applies :class:`Fault` s to the bytes passing through; ``log``
    lists what it did."""

    def __init__(self, inner: Transport, faults: Iterable[Fault]) -> None:
        self.inner, self.name = inner, inner.name
        self.faults = list(faults)
        self.sent = self.received = 0
        self.log: list[str] = []
        self._held = bytearray()
        self._release_at = 0.0
        self._lock = threading.Lock()

    def _apply(self, direction: str, data: bytes, start: int) -> bytes:
        out = bytearray()
        for offset, byte in enumerate(data):
            position = start + offset
            keep = True
            for f in self.faults:
                if f.direction != direction:
                    continue
                if f.kind == "drop" and f.at <= position < f.at + f.length:
                    keep = False
                    if position == f.at:
                        self.log.append(f"{direction} byte {position}: drop {f.length}")
                elif position == f.at and not f.fired:
                    f.fired = True
                    if f.kind == "corrupt":
                        byte ^= 1
                    elif f.kind == "call":
                        f.action()
                    elif f.kind == "delay":
                        self._release_at = time.monotonic() + f.seconds
                        self._held += data[offset:]
                        self.log.append(f"{direction} byte {position}: delay {f.seconds} s")
                        return bytes(out)
                    self.log.append(f"{direction} byte {position}: {f.kind}")
            if keep:
                out.append(byte)
        return bytes(out)

    def write(self, data: bytes) -> None:
        with self._lock:
            out = self._apply("tx", data, self.sent)
            self.sent += len(data)
        self.inner.write(out)

    def read(self, timeout: float) -> bytes:
        if self._held:
            wait = self._release_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout))
                return b""
            data, self._held = bytes(self._held), bytearray()
            more = self.inner.read(0)
            start = self.received
            self.received += len(more)
            return data + self._apply("rx", more, start)
        data = self.inner.read(timeout)
        start = self.received
        self.received += len(data)
        return self._apply("rx", data, start)

    def close(self) -> None:
        self.inner.close()
