"""The ``fpga`` and ``sim`` backends against the simulated board (Verilator, behind a
pseudo-terminal): results against gmpy2, Paillier at 1024-bit keys, fallbacks, the split, and
every fault the link can suffer. No board is attached to any machine here: the ``fpga``
backend's code runs against the simulated one, through the same serial-port code."""

import os
import random
import struct
import time
import warnings
import zlib

import gmpy2
import pytest

pytest.importorskip("amaranth", reason="the simulated board needs pip install .[hdl]")
pytest.importorskip("serial", reason="the fpga backend needs pyserial")

from montpipe.device.config import DeviceConfig
from montpipe.device.model import exponent_digits, modexp_cycles, montgomery_words
from montpipe.device.wire import (
    COMB_MAX_DIGITS,
    PROTOCOL_VERSION,
    Capabilities,
    LinkStatus,
    Opcode,
    ResponseParser,
    comb_request,
    encode_response,
    load_context_request,
    modexp_request,
    pack_words,
    table_write_request,
    unpack_words,
    word_bytes,
)
from montpipe.driver import generate_paillier_keypair
from montpipe.driver.backends.fpga import DeviceError, DeviceResultError, FPGABackend
from montpipe.driver.backends.sim import SimBackend
from montpipe.driver.comb import choose_shape
from montpipe.driver.transport import Fault, FaultyTransport, SerialTransport, Transport
from montpipe.sim.board import SIM_CONFIG, SimulatedBoard
from montpipe.sim.runner import SimulatorMissingError, prepare

# one simulated board for the module: its tests stay on one make-test worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simulated-board")]


@pytest.fixture(scope="module", autouse=True)
def _verilator():
    try:
        prepare("verilator")
    except SimulatorMissingError as exc:
        pytest.skip(f"{exc} — the simulated board could not be built")


@pytest.fixture(scope="module")
def shared_board():
    with SimulatedBoard(SIM_CONFIG) as board:
        yield board


@pytest.fixture
def board():
    """A board of its own, for tests that leave it in a state (reset, requests lost)."""
    with SimulatedBoard(SIM_CONFIG) as board:
        yield board


def _modulus(rng, bits):
    return rng.getrandbits(bits) | 1 | 1 << (bits - 1)


def _batch(rng, bits, count, ebits=None):
    m = _modulus(rng, bits)
    return m, [rng.randrange(m) for _ in range(count)], \
        [rng.getrandbits(ebits or bits) for _ in range(count)]


def _expected(bases, exps, m):
    return [int(gmpy2.powmod(b, e, m)) for b, e in zip(bases, exps)]


# -- the fpga backend against the simulated board --------------------------------------------


def test_fpga_backend_on_the_simulated_board(shared_board):
    rng = random.Random(11)
    backend = FPGABackend(shared_board.port, timeout=30, trust_device_with_secrets=True)
    try:
        caps = backend.caps
        assert (caps.version, caps.width, caps.lanes) == (PROTOCOL_VERSION, SIM_CONFIG.width, 2)
        assert backend.max_modulus_bits == caps.n_max_bits >= 2048
        for bits in (40, 256, 521):
            m, bases, exps = _batch(rng, bits, 7)
            exps[0], exps[1] = 0, 1                      # the shortest exponents
            bases[2] = m - 1
            assert backend.powmod(bases, exps, m) == _expected(bases, exps, m), bits
        # secret exponents run in constant-time mode; negative ones invert on the host; bases
        # at or above the modulus are reduced first
        m, bases, exps = _batch(rng, 300, 5)
        assert backend.powmod(bases, exps, m, secret=True) == _expected(bases, exps, m)
        assert backend.powmod(bases, -7, m) == [pow(b, -7, m) for b in bases]
        big = [b + m * 3 for b in bases]
        assert backend.powmod(big, 65537, m) == _expected(bases, [65537] * 5, m)
        before = backend.stats.as_dict()
        assert before["device_powmods"] == 3 * 7 + 3 * 5 and before["fallbacks"] == 0
        assert before["contexts_loaded"] == 4 and before["retries"] == 0
        assert before["bytes_out"] > 0 and before["bytes_in"] > 0
        # a modulus wider than N_MAX, an even one and a too-long exponent go to the CPU
        wide = _modulus(rng, caps.n_max_bits + 8)
        assert backend.powmod([3, 5], [7, 11], wide) == [pow(3, 7, wide), pow(5, 11, wide)]
        assert backend.powmod([3], [5], 1 << 100) == [pow(3, 5, 1 << 100)]
        m = _modulus(rng, 200)
        long_e = 1 << (caps.max_windows * caps.window)
        assert backend.powmod([3, 4], [long_e, 5], m) == [pow(3, long_e, m), pow(4, 5, m)]
        after = backend.stats.as_dict()
        assert after["fallbacks"] - before["fallbacks"] == 2 + 1 + 1
        assert after["device_powmods"] - before["device_powmods"] == 1
        with pytest.raises(ValueError, match="no inverse"):
            backend.powmod([m * 2 + 0], [-1], m)     # 0 has no inverse
        with pytest.raises(ValueError, match="pair up"):
            backend.powmod([1, 2], [3], 101)
    finally:
        backend.close()


def test_context_slots_are_reused_least_recently_used_first(shared_board):
    rng = random.Random(12)
    backend = FPGABackend(shared_board.port, timeout=30)
    try:
        moduli = [_modulus(rng, 128) for _ in range(backend.caps.contexts + 2)]
        for m in moduli + moduli[-2:]:
            assert backend.powmod([5, 6], [m - 2, 3], m) == [pow(5, m - 2, m), pow(6, 3, m)]
        # every modulus loaded once, the last two reused from their slots
        assert backend.stats.extra["contexts_loaded"] == len(moduli)
    finally:
        backend.close()


def test_paillier_at_1024_bit_keys_on_the_sim_backend():
    """Encrypt (standard and DJN), decrypt (CRT, constant time) and scalar multiply with every
    exponentiation on the simulated gateware, against gmpy2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # 1024-bit keys warn (SecurityWarning)
        # the decryption halves too: this test is of the gateware's constant-time path
        backend = SimBackend(trust_device_with_secrets=True)
        try:
            pk, sk = generate_paillier_keypair(n_length=1024, backend=backend, mode="standard")
            n, nn = pk.n, pk.nsquare
            rs = [random.randrange(1, n) for _ in range(2)]
            plain = [123456789, n - 42]
            cts = pk.raw_encrypt_batch(plain, r_values=rs)
            assert cts == [(1 + n * x) * int(gmpy2.powmod(r, n, nn)) % nn
                           for x, r in zip(plain, rs)]
            assert sk.raw_decrypt_batch(cts) == plain
            assert backend.stats.extra["device_powmods"] == 2 + 4   # n², then p² and q²
            # the float/int API: scalar multiply (positive, negative: the inverse on the host,
            # then the device), decrypt; r_value=1 keeps these encryptions off the device
            a, b = pk.encrypt(17, r_value=1), pk.encrypt(-3, r_value=1)
            assert sk.decrypt(a * 5) == 85 and sk.decrypt(b * -7) == 21
            assert sk.decrypt(a * 5 + b * -7) == 106
            # DJN encryption (the default mode): h_s ** alpha, alpha of n/2 bits
            c = pk.raw_encrypt_batch([5, 6], mode="djn")
            assert sk.raw_decrypt_batch(c) == [5, 6]
            stats = backend.stats.as_dict()
            assert stats["fallbacks"] == 0 and stats["retries"] == 0, stats
            # the DJN powers ran as the device's comb, its table written once
            assert stats["fixed_base_powmods"] == 2 and stats["comb_powers"] == 2
            assert stats["table_writes"] == choose_shape(pk.djn_exponent_bits,
                                                         SIM_CONFIG.table_entries).entries
            # 2 encryptions + 2·2 CRT halves, 4 scalar products + 3·2 halves, 2·2 DJN halves
            assert stats["device_powmods"] == 6 + 4 + 6 + 4
            # the simulation's cycle rate times requests; multi-exponentiations are planned for
            # the board's clock, as the model backend plans them
            from montpipe.driver.comb import device_plan
            s = montgomery_words(nn.bit_length(), WIDTH)
            clock_hz = SIM_CONFIG.clock_mhz * 1e6
            assert backend.cycle_rate < clock_hz / 100
            for rows, bases in ((1, 300), (20, 456)):
                assert backend.multiexp_plan(56, rows, bases, s) == device_plan(
                    56, rows, bases, table_entries=SIM_CONFIG.table_entries,
                    width=SIM_CONFIG.width, words=s, lanes=SIM_CONFIG.lanes, clock_hz=clock_hz,
                    bytes_per_s=SIM_CONFIG.link_bytes_per_s)
        finally:
            backend.close()
    # at least the cycles of one encryption's r^n mod n² went by in the simulated gateware
    one = modexp_cycles(montgomery_words(nn.bit_length(), WIDTH), 2, exponent_digits(n, 2),
                        False, WIDTH)
    assert backend.stats.extra["simulated_cycles"] > one


# -- opening: no device, the wrong device ----------------------------------------------------


def test_open_errors_name_the_port(monkeypatch):
    monkeypatch.delenv("MONTPIPE_FPGA_PORT", raising=False)
    with pytest.raises(DeviceError, match="MONTPIPE_FPGA_PORT"):
        FPGABackend()
    with pytest.raises(DeviceError, match="/dev/montpipe-no-such-port"):
        FPGABackend("/dev/montpipe-no-such-port")
    master, slave = os.openpty()                     # a port with nothing behind it
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError, match=f"no montpipe accelerator answers at "
                                              f"{os.ttyname(slave)}"):
            FPGABackend(os.ttyname(slave), open_timeout=0.2)
        assert time.monotonic() - started < 5
    finally:
        os.close(master)
        os.close(slave)


class _FakeDevice(Transport):
    """Answers CAPS with the given capabilities (a device of another protocol version)."""

    name = "fake"

    def __init__(self, caps: Capabilities) -> None:
        self.caps, self.out = caps, bytearray()

    def write(self, data: bytes) -> None:
        if data[3] == Opcode.CAPS:
            self.out += encode_response(Opcode.CAPS, int.from_bytes(data[4:6], "little"), 0,
                                        self.caps.encode())

    def read(self, timeout: float) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data

    def close(self) -> None:
        pass


class _OldDevice(_FakeDevice):
    """A version-1 device: its CAPS has no table field."""

    def write(self, data: bytes) -> None:
        if data[3] == Opcode.CAPS:
            self.out += encode_response(Opcode.CAPS, int.from_bytes(data[4:6], "little"), 0,
                                        self.caps.encode()[:-2])


def test_wrong_protocol_version_is_refused_at_open():
    """By its version, named, whatever the rest of its CAPS looks like."""
    caps = Capabilities(PROTOCOL_VERSION + 1, 16, 4094, 24, 2, 1024, 2, 125000)
    with pytest.raises(DeviceError, match=f"protocol version {PROTOCOL_VERSION + 1}; this "
                                          f"driver speaks version {PROTOCOL_VERSION}"):
        FPGABackend(transport=_FakeDevice(caps))
    old = Capabilities(1, 16, 4094, 24, 2, 1024, 2, 125000)
    with pytest.raises(DeviceError, match=f"protocol version 1; this driver speaks version "
                                          f"{PROTOCOL_VERSION}"):
        FPGABackend(transport=_OldDevice(old))


# -- faults on the link ------------------------------------------------------------------------


def _faulty_backend(board, faults, **options):
    transport = FaultyTransport(SerialTransport(board.port), faults)
    options.setdefault("timeout", 1.0)
    return FPGABackend(transport=transport, **options), transport


# byte offsets: opening sends a CAPS frame (10 bytes) and reads its answer (24); the first
# batch then loads its context (answer: 11 bytes); a result frame is 11 bytes and the words
CAPS_TX, CAPS_RX, CONTEXT_RX = 10, 26, 11
WIDTH = SIM_CONFIG.width
RESULT_256_RX = 11 + montgomery_words(256, WIDTH) * word_bytes(WIDTH)


@pytest.mark.parametrize("fault", [
    ("tx", "corrupt", 0.6, 0), ("tx", "drop", 0.6, 0), ("tx", "corrupt", 0.05, 0),
    ("rx", "corrupt", 0.5, 0), ("rx", "drop", 0.5, 0),
    ("rx", "delay", 0.3, 0.4), ("rx", "delay", 0.7, 2.5),
], ids=lambda f: "-".join(map(str, f)))
def test_one_fault_still_gives_every_result(board, fault):
    """A corrupted, dropped or delayed byte somewhere in the batch (in the context frame at
    5 %): every result correct. A delay under the timeout (1 s) costs nothing; one over it
    sends the requests again, and their late first answers are dropped as stale."""
    direction, kind, where, seconds = fault
    rng = random.Random(zlib.crc32(repr(fault).encode()))
    m, bases, exps = _batch(rng, 256, 8)
    # the batch's bytes each way, measured on a clean run, place the fault
    clean, t = _faulty_backend(board, [])
    assert clean.powmod(bases, exps, m) == _expected(bases, exps, m)
    start = CAPS_TX if direction == "tx" else CAPS_RX
    total = (t.sent if direction == "tx" else t.received) - start
    clean.close()
    at = start + int(where * total)
    fault_ = Fault(direction, at, kind, seconds=seconds)
    backend, transport = _faulty_backend(board, [fault_])
    try:
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        assert transport.log, "the fault was not injected"
        stats = backend.stats.as_dict()
        if kind != "delay" or seconds > 1.0:
            assert stats["retries"] >= 1, stats
        else:
            assert stats["retries"] == 0, stats
        if seconds > 1.0:
            assert stats["stale_responses"] >= 1 and stats["timeouts"] >= 1, stats
        assert stats["device_powmods"] == 8
    finally:
        backend.close()


def test_a_missing_response_is_asked_again(board):
    rng = random.Random(5)
    m, bases, exps = _batch(rng, 256, 6)
    # drop the third result frame whole
    at = CAPS_RX + CONTEXT_RX + 2 * RESULT_256_RX
    backend, transport = _faulty_backend(board, [Fault("rx", at, "drop", length=RESULT_256_RX)])
    try:
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        assert backend.stats.extra["retry_causes"].get("overtaken", 0) >= 1
    finally:
        backend.close()


def test_a_device_reset_mid_batch(board):
    rng = random.Random(6)
    m, bases, exps = _batch(rng, 384, 8)
    s = montgomery_words(384, WIDTH)
    context = len(load_context_request(0, 0, m, width=WIDTH, words=s, mprime=1, r2=0))
    frame = len(modexp_request(0, 0, 0, exponent_digits(exps[0], 2, 192), width=WIDTH,
                               words=s))
    # as the fourth request goes out: three are in flight, two of them computing
    faults = [Fault("tx", CAPS_TX + context + 3 * frame, "call", action=board.reset_device)]
    backend, transport = _faulty_backend(board, faults)
    try:
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        stats = backend.stats.as_dict()
        assert "tx byte" in transport.log[0]
        assert stats["contexts_loaded"] == 2, stats           # loaded again after the reset
        assert stats["retries"] >= 1
    finally:
        backend.close()


def test_a_dead_device_fails_the_batch_by_name_without_hanging(board):
    rng = random.Random(7)
    m, bases, exps = _batch(rng, 256, 6)
    at = CAPS_RX + CONTEXT_RX + RESULT_256_RX          # everything after the first result
    backend, _ = _faulty_backend(board, [Fault("rx", at, "drop", length=10**9)], timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError, match=r"batch 1 \(6 exponentiations modulo a 256-bit "
                                              r"modulus on /dev/pts/\d+\).*CAPS"):
            backend.powmod(bases, exps, m)
        assert time.monotonic() - started < 10
    finally:
        backend.close()


def test_retries_are_bounded(board):
    """Every frame after the context corrupted: the batch ends with an error naming it (a
    request sent too often, or a device that no longer answers CAPS), not a loop."""
    rng = random.Random(8)
    m, bases, exps = _batch(rng, 128, 3)
    faults = [Fault("tx", CAPS_TX + 60 + 30 * k, "corrupt") for k in range(0, 400)]
    backend, _ = _faulty_backend(board, faults, retries=2, timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError, match=r"batch 1 \(3 exponentiations"):
            backend.powmod(bases, exps, m)
        assert time.monotonic() - started < 20
    finally:
        backend.close()


class _RewritingTransport(Transport):
    """Re-frames what the device answers, with fresh CRCs, as :meth:`answer` says: a wrong
    answer the link cannot detect (a device fault, not a line fault). By default the first OK
    answer under ``opcode`` becomes ``change(status, payload)``; ``done`` says it happened (set
    it False to have it happen again)."""

    def __init__(self, inner: Transport, opcode: Opcode | None = None, change=None) -> None:
        self.inner, self.name = inner, inner.name
        self.opcode, self.change = opcode, change
        self.parser, self.done = ResponseParser(), False

    def answer(self, r) -> tuple[int, bytes] | None:
        """What goes back for ``r``: a status and payload, or None to drop it."""
        status, payload = int(r.status), r.payload
        if r.opcode == self.opcode and status == 0 and not self.done:
            (status, payload), self.done = self.change(status, payload), True
        return status, payload

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        out = bytearray()
        for r in self.parser.feed(self.inner.read(timeout)):
            answer = self.answer(r)
            if answer is not None:
                out += encode_response(r.opcode, r.tag, *answer)
        return bytes(out)

    def close(self) -> None:
        self.inner.close()


def test_spot_check_catches_a_wrong_device_result(shared_board):
    rng = random.Random(9)
    m, bases, exps = _batch(rng, 200, 4)
    # one bit of the first result flipped
    lying = _RewritingTransport(SerialTransport(shared_board.port), Opcode.MODEXP,
                                lambda status, payload: (status, bytes([payload[0] ^ 2]) +
                                                         payload[1:]))
    backend = FPGABackend(transport=lying, spot_check=1.0, timeout=30)
    try:
        with pytest.raises(DeviceResultError, match=r"batch 1 .*spot check failed for "
                                                    r"exponentiation 0"):
            backend.powmod(bases, exps, m)
        # without spot checks the link alone cannot tell: that is what the mode is for
        backend.spot_check = 0.0
        lying.done = False
        got = backend.powmod(bases, exps, m)
        assert got[0] != _expected(bases, exps, m)[0] and got[1:] == _expected(bases, exps, m)[1:]
    finally:
        backend.close()


def test_the_link_rate_comes_from_the_environment(monkeypatch):
    """``MONTPIPE_FPGA_BAUD`` gives the rate (the ECPIX-5's build runs at 12 Mbaud), 3 Mbaud
    without it, and anything but a positive whole number is refused by name."""
    from montpipe.driver.backends.fpga import baud_from_env

    monkeypatch.delenv("MONTPIPE_FPGA_BAUD", raising=False)
    assert baud_from_env() == 3_000_000
    monkeypatch.setenv("MONTPIPE_FPGA_BAUD", "12_000_000")
    assert baud_from_env() == 12_000_000
    for bad in ("fast", "-3", "0", "3e6"):
        monkeypatch.setenv("MONTPIPE_FPGA_BAUD", bad)
        with pytest.raises(ValueError, match=f"MONTPIPE_FPGA_BAUD must be a positive whole "
                                             f"number of bits a second .*not '{bad}'"):
            baud_from_env()
        with pytest.raises(ValueError, match="MONTPIPE_FPGA_BAUD"):
            FPGABackend(transport=_FakeDevice(None))


def test_a_rejected_exponentiation_leaves_nothing_in_flight(shared_board):
    """An exponentiation the device rejects fails its batch by name, promptly, once the others
    in flight have answered: the next batch gets no answer of the failed one's."""
    rng = random.Random(11)
    m, bases, exps = _batch(rng, 256, 8)
    transport = _RewritingTransport(SerialTransport(shared_board.port), Opcode.MODEXP,
                                    lambda status, payload: (
                                        int(LinkStatus.BASE_NOT_BELOW_MODULUS), b""))
    backend = FPGABackend(transport=transport, timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError, match=r"batch 1 \(8 exponentiations .*\): the device "
                                              r"rejected exponentiation 0: "
                                              r"<LinkStatus.BASE_NOT_BELOW_MODULUS: 4>"):
            backend.powmod(bases, exps, m)
        assert time.monotonic() - started < 15, "it waited out the 30 s timeout"
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        stats = backend.stats.as_dict()
        assert stats["stale_responses"] == 0 and stats["retries"] == 0, stats
    finally:
        backend.close()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="spot_check"):
        FPGABackend(transport=_FakeDevice(None), spot_check=2)
    with pytest.raises(ValueError, match="retries"):
        FPGABackend(transport=_FakeDevice(None), retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        FPGABackend(transport=_FakeDevice(None), timeout=0)
    with pytest.raises(ValueError, match="baudrate must be a positive whole number of bits a "
                                         "second, not 0"):
        FPGABackend(transport=_FakeDevice(None), baudrate=0)
    with pytest.raises(ValueError, match="direction"):
        Fault("up", 0, "drop")
    with pytest.raises(ValueError, match=r"'delay' fault .* direction 'rx'"):
        Fault("tx", 0, "delay", seconds=1)


# -- heterogeneous: device and CPU at once ----------------------------------------------------


def test_split_follows_the_measured_rates(shared_board):
    rng = random.Random(10)
    backend = FPGABackend(shared_board.port, split=True, timeout=30)
    try:
        m, bases, exps = _batch(rng, 256, 12)
        shape = (m.bit_length(), max(e.bit_length() for e in exps))
        backend._rates[shape] = [100.0, 200.0]      # the CPU measured twice the device
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        stats = backend.stats.as_dict()
        assert (stats["device_powmods"], stats["cpu_powmods"]) == (4, 8)
        assert stats["fallbacks"] == 0
        # both rates were measured on this batch and replace the guesses
        device_rate, cpu_rate = backend._rates[shape]
        assert device_rate != 100.0 and cpu_rate != 200.0
        # a fresh shape (nothing measured yet) is split by the cycle model's estimate against
        # one timed CPU exponentiation; the results are exact whatever the split
        m, bases, exps = _batch(rng, 512, 6)
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
    finally:
        backend.close()


# -- through the UART ----------------------------------------------------------------------


def test_end_to_end_through_the_uart():
    """The board top's UART receiver and transmitter in the model, 8N1 frames on the pins."""
    config = DeviceConfig.sized(256, 256, lanes=2, contexts=2, timeout=20_000)
    backend = SimBackend(config, uart_divisor=8, timeout=20)
    try:
        rng = random.Random(13)
        m, bases, exps = _batch(rng, 250, 5)
        assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
        assert backend.caps.n_max_bits >= 250
    finally:
        backend.close()
    assert backend.stats.extra["simulated_cycles"] > 0


def test_encode_response_frames_like_the_device():
    frame = encode_response(Opcode.STATUS, 7, 0, b"\x01\x02")
    body = frame[1:-4]
    assert frame[0] == 0x5A and struct.unpack("<I", frame[-4:])[0] == zlib.crc32(body)
    (r,) = ResponseParser().feed(frame)
    assert (r.opcode, r.tag, r.status, r.payload) == (Opcode.STATUS, 7, 0, b"\x01\x02")


# -- secrets, answers and checks against an emulated device ------------------------------------


class _EmulatedDevice(Transport):
    """A montpipe device in Python (gmpy2 for the arithmetic), recording every modulus loaded
    and every exponent received, so tests can see what crossed the link. ``lie`` makes the
    first MODEXP result wrong; ``impostor`` answers the first MODEXP first with an OK frame
    under opcode 0 and a plausible value."""

    name = "emulated"

    def __init__(self, lie: bool = False, impostor: bool = False) -> None:
        self.caps = Capabilities(PROTOCOL_VERSION, 16, 2048, 4, 2, 1024, 4, 100_000)
        self.out, self.contexts = bytearray(), {}
        self.moduli, self.exponents = [], []
        self.lie, self.impostor = lie, impostor

    def write(self, data: bytes) -> None:
        length, opcode, tag = struct.unpack_from("<HBH", data, 1)
        payload, W = data[6:3 + length], self.caps.width
        size = word_bytes(W)
        if opcode == Opcode.CAPS:
            self.out += encode_response(opcode, tag, 0, self.caps.encode())
        elif opcode == Opcode.LOAD_CONTEXT:
            slot, words = struct.unpack_from("<BH", payload)
            m = unpack_words(payload[3 + size:3 + size + words * size], W)
            self.contexts[slot] = (m, words)
            self.moduli.append(m)
            self.out += encode_response(opcode, tag, 0)
        elif opcode == Opcode.MODEXP:
            slot, _const, ndigits = struct.unpack_from("<BBH", payload)
            m, words = self.contexts[slot]
            base = unpack_words(payload[4:4 + words * size], W)
            digits = payload[4 + words * size:]
            e = sum(d << (self.caps.window * i) for i, d in enumerate(digits))
            self.exponents.append(e)
            value = int(gmpy2.powmod(base, e, m))
            if self.impostor:
                self.impostor = False
                fake = (value + 1) % m
                self.out += encode_response(0, tag, 0, pack_words(fake, words, W))
            if self.lie:
                self.lie, value = False, (value + 1) % m
            self.out += encode_response(opcode, tag, 0, pack_words(value, words, W))

    def read(self, timeout: float) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        if not data:
            time.sleep(min(timeout, 0.001))
        return data

    def close(self) -> None:
        pass


def test_secrets_stay_on_the_host_unless_trusted(keypair_factory, monkeypatch):
    monkeypatch.delenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", raising=False)
    _, sk = keypair_factory(512)
    from montpipe.driver.paillier import PaillierPrivateKey, PaillierPublicKey

    for trusted in (False, True):
        device = _EmulatedDevice()
        backend = FPGABackend(transport=device, trust_device_with_secrets=trusted)
        pk = PaillierPublicKey(sk.public_key.n, backend=backend)
        key = PaillierPrivateKey(pk, sk.p, sk.q)
        assert key.decrypt(pk.encrypt(-12.5)) == -12.5
        sent = set(device.moduli)
        assert pk.nsquare in sent
        assert ({sk.psquare, sk.qsquare} <= sent) is trusted
        assert ({sk.p - 1, sk.q - 1} & set(device.exponents) != set()) is trusted
        assert backend.describe()["secrets"] == ("device" if trusted else "host")
        assert backend.stats.extra["host_secret_powmods"] == (0 if trusted else 2)
        backend.close()
    monkeypatch.setenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", "1")
    assert FPGABackend(transport=_EmulatedDevice()).trust_device_with_secrets
    monkeypatch.setenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", "maybe")
    with pytest.raises(ValueError, match="MONTPIPE_TRUST_DEVICE_WITH_SECRETS must be 1 or 0"):
        FPGABackend(transport=_EmulatedDevice())


def test_an_ok_under_another_opcode_is_no_result():
    rng = random.Random(3)
    m, bases, exps = _batch(rng, 256, 3)
    device = _EmulatedDevice(impostor=True)
    backend = FPGABackend(transport=device, spot_check=0.0, timeout=5)
    assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
    assert backend.stats.extra["stale_responses"] == 1


def test_spot_checks_are_on_by_default(monkeypatch):
    monkeypatch.delenv("MONTPIPE_FPGA_SPOT_CHECK", raising=False)
    rng = random.Random(4)
    m, bases, exps = _batch(rng, 256, 1)
    backend = FPGABackend(transport=_EmulatedDevice(lie=True))
    assert backend.spot_check == 0.01 and backend.describe()["spot_check"] == 0.01
    with pytest.raises(DeviceResultError, match="spot check failed for exponentiation 0"):
        backend.powmod(bases, exps, m)
    assert backend.powmod(bases, exps, m) == _expected(bases, exps, m)
    assert backend.stats.extra["spot_checked"] == 2   # at least one a batch
    monkeypatch.setenv("MONTPIPE_FPGA_SPOT_CHECK", "0")
    assert FPGABackend(transport=_EmulatedDevice()).spot_check == 0.0


def test_the_parser_drops_lengths_beyond_the_devices_frames():
    """A stray marker and a length no response of this device can carry is dropped at once;
    one with a plausible length does not hold back the whole frame behind it."""
    caps = _EmulatedDevice().caps
    good = encode_response(Opcode.MODEXP, 7, 0, bytes(range(20)))
    limit = caps.max_response_length()
    assert limit == 4 + montgomery_words(2048, 16) * 2
    for stray in (b"\x5a" + struct.pack("<H", limit + 1), b"\x5a" + struct.pack("<H", 300),
                  b"\x5a\x40\x00\x03\x07", b"\x5a"):
        parser = ResponseParser(limit)
        (r,) = parser.feed(stray + good)
        assert (r.opcode, r.tag, r.payload) == (Opcode.MODEXP, 7, bytes(range(20)))
        assert parser.feed(good)[0].tag == 7           # and the parser is in step after it
    with pytest.raises(ValueError, match="max_length"):
        ResponseParser(70_000)


# -- the comb (fixed-base powers) under faults ------------------------------------------------


def _comb_bytes(m, max_bits, jobs):
    """Bytes each way of one comb batch after opening: (context, table, comb frame, one job's
    answer) out and in."""
    shape = choose_shape(max_bits, SIM_CONFIG.table_entries)
    s = montgomery_words(m.bit_length(), WIDTH)
    context = len(load_context_request(0, 0, m, width=WIDTH, words=s, mprime=1, r2=0))
    table = shape.entries * len(table_write_request(0, 0, 0, 0, width=WIDTH, words=s))
    comb = len(comb_request(0, 0, shape.steps, shape.tables, shape.bits,
                            [bytes(shape.columns)] * jobs))
    answer = len(encode_response(Opcode.COMB, 0, 0, bytes(s * word_bytes(WIDTH))))
    return shape, context, table, comb, answer


@pytest.mark.parametrize("fault", ["comb-corrupt", "table-corrupt", "answer-drop", "reset"])
def test_comb_faults_still_give_every_power(board, fault):
    """A corrupted comb frame is refused and sent again; so is a corrupted table write, and
    the comb that may already be on its way behind it (it would read the entry not written)
    is not taken; a lost job's answer times the comb out and it is sent again; a device reset
    between combs loses the context and the table, which are written again. Every power is
    right."""
    rng = random.Random(zlib.crc32(fault.encode()))
    m = _modulus(rng, 256)
    g = rng.randrange(2, m)
    max_bits = 64
    exps = [0, (1 << max_bits) - 1] + [rng.getrandbits(max_bits) for _ in range(2)]
    shape, context, table, comb, answer = _comb_bytes(m, max_bits, SIM_CONFIG.lanes)
    first_comb = CAPS_TX + context + table
    if fault == "comb-corrupt":
        faults = [Fault("tx", first_comb + comb // 2, "corrupt")]
    elif fault == "table-corrupt":              # the last entry's value
        faults = [Fault("tx", first_comb - 8, "corrupt")]
    elif fault == "answer-drop":
        at = CAPS_RX + CONTEXT_RX + shape.entries * 11 + answer       # the second job's
        faults = [Fault("rx", at, "drop", length=answer)]
    else:
        faults = [Fault("tx", first_comb + comb - 1, "call", action=board.reset_device)]
    backend, transport = _faulty_backend(board, faults, timeout=2.0)
    try:
        handle = backend.fixed_base(g, m, max_bits)
        assert handle.pow(exps) == [pow(g, e, m) for e in exps]
        assert transport.log, "the fault was not injected"
        stats = backend.stats.as_dict()
        assert stats["comb_powers"] == 4 and stats["retries"] >= 1, stats
        if fault in ("comb-corrupt", "table-corrupt"):
            assert stats["table_writes"] == shape.entries             # refused, sent again
        else:
            # a reset, or a silence that may have been one: context and table written again;
            # the last write before the comb may be answered before the reset or lost in it
            assert stats["contexts_loaded"] == 2, stats
            assert stats["table_writes"] - shape.entries in (shape.entries - 1, shape.entries)
        if fault == "answer-drop":
            assert stats["timeouts"] == 1, stats
    finally:
        backend.close()


def test_table_entries_are_written_once_and_again_after_a_reset(board):
    """Entries the device holds are not written again (the empty subsets' ones, shared by
    every chunk), but after a reset that an exponentiation batch noticed, every entry is: a
    table write marks the whole table as written, and a table after a power cycle holds
    anything."""
    from montpipe.driver.backends.cpu import CPUBackend

    rng = random.Random(23)
    m = _modulus(rng, 512)

    def invertible(count):
        out = []
        while len(out) < count:
            b = rng.randrange(2, m)
            out += [b] * (gmpy2.gcd(b, m) == 1)
        return out

    rows = [[rng.randrange(-(1 << 20), 1 << 20) for _ in range(40)] for _ in range(5)]
    backend = FPGABackend(board.port, timeout=30)
    cpu = CPUBackend()
    try:
        caps = backend.caps
        plan = backend.multiexp_plan(21, 5, 40, montgomery_words(512, caps.width))
        groups = -(-40 // plan.bits)
        subsets, ones = groups * ((1 << plan.bits) - 1), plan.tables * plan.slots
        writes = []
        for reset in (False, False, True):
            if reset:
                board.reset_device()
                assert backend.powmod([3], [5], m) == [pow(3, 5, m)]   # sees NO_CONTEXT
            bases = invertible(40)
            before = backend.stats.extra["table_writes"]
            assert backend.multiexp(bases, rows, m) == cpu.multiexp(bases, rows, m)
            writes.append(backend.stats.extra["table_writes"] - before)
        assert writes == [subsets + ones, subsets, subsets + ones], (writes, plan)
        assert backend.stats.extra["contexts_loaded"] == 2
    finally:
        backend.close()
        cpu.close()


def test_an_entry_whose_write_fails_is_known_as_nothing(board):
    """A table write refused (here: its frame corrupted) may be followed by writes already on
    their way, which the device then does land; the host takes none of them as held, keeps
    the entries answered before, and with no retry left fails the batch by name."""
    rng = random.Random(31)
    m = _modulus(rng, 256)
    shape, context, table, _, _ = _comb_bytes(m, 64, SIM_CONFIG.lanes)
    write = table // shape.entries
    bad = 5                                     # the entry whose frame is corrupted
    faults = [Fault("tx", CAPS_TX + context + bad * write + write - 8, "corrupt")]
    backend, transport = _faulty_backend(board, faults, retries=0, timeout=5.0)
    try:
        handle = backend.fixed_base(rng.randrange(2, m), m, 64)
        with pytest.raises(DeviceError, match=r"comb frame 0 \(2 jobs, its table writes first\) "
                                              r"failed 1 times, got no valid results \(the "
                                              r"backend's retries so far: table BAD_CRC: 1\)"):
            handle.pow([3, 5])
        assert transport.log, "the fault was not injected"
        assert sorted(backend._table) == list(range(bad))
        assert all(backend._table[i] == handle.table[i] for i in range(bad))
    finally:
        backend.close()


def test_a_table_write_lost_without_an_answer_voids_the_comb_behind_it(board):
    """A table write whose frame the device never sees (its marker corrupted: no error comes
    back either) is known lost when the frame sent after it is answered — the device answers a
    write before it serves the next frame — so the comb behind it, which read the old entry, is
    not taken but sent again with the entry written. All-ones exponents of the comb's full 72
    bits read the last entry of every table, the one lost here (the last written, so the comb
    is on its way behind it)."""
    rng = random.Random(37)
    m = _modulus(rng, 256)
    bits = 72
    shape, context, table, _, _ = _comb_bytes(m, bits, SIM_CONFIG.lanes)
    assert shape.steps * shape.tables * shape.bits == bits
    write = table // shape.entries
    last = shape.entries - 1
    faults = [Fault("tx", CAPS_TX + context + last * write, "corrupt")]
    backend, transport = _faulty_backend(board, faults, spot_check=0, timeout=5.0)
    try:
        g = rng.randrange(2, m)
        exps = [(1 << bits) - 1, (1 << bits) - 2]
        assert backend.fixed_base(g, m, bits).pow(exps) == [pow(g, e, m) for e in exps]
        assert transport.log, "the fault was not injected"
        causes = backend.stats.extra["retry_causes"]
        assert causes == {"table write overtaken": 1}, causes
        assert backend.stats.extra["table_writes"] == shape.entries
    finally:
        backend.close()


class _RefusingTransport(_RewritingTransport):
    """The device's first comb answered as the link's executor refuses a comb it does not run:
    once, ``BAD_LENGTH`` under the frame's tag, its other job's answer never sent. (The real
    comb ran; the comb sent behind it is still running when the refusal arrives.)"""

    refused = None

    def answer(self, r) -> tuple[int, bytes] | None:
        if r.opcode == Opcode.COMB and self.refused is None:
            self.refused = r.tag
            return int(LinkStatus.BAD_LENGTH), b""
        if r.opcode == Opcode.COMB and r.tag == (self.refused + 1) & 0xFFFF:
            return None                         # job 1 of the refused comb: never sent
        return int(r.status), r.payload


def test_a_refused_comb_leaves_nothing_in_flight(shared_board):
    """A comb refused while the comb behind it runs fails its batch by name, but only once
    every frame it sent has answered — promptly, not by waiting out the timeout: the next
    batch finds the device idle, gets no answer of the failed one's, and every result right."""
    rng = random.Random(43)
    m = _modulus(rng, 256)
    transport = _RefusingTransport(SerialTransport(shared_board.port))
    backend = FPGABackend(transport=transport, timeout=30)
    try:
        g = rng.randrange(2, m)
        handle = backend.fixed_base(g, m, 64)
        exps = [rng.getrandbits(64) for _ in range(3 * SIM_CONFIG.lanes)]     # three combs
        started = time.monotonic()
        with pytest.raises(DeviceError, match=r"batch \d+ \(6 fixed-base powers .*\): the "
                                              r"device refused a comb of 2 jobs: "
                                              r"<LinkStatus.BAD_LENGTH: 1>"):
            handle.pow(exps)
        assert time.monotonic() - started < 15, "it waited out the 30 s timeout"
        assert transport.refused is not None
        assert handle.pow(exps) == [pow(g, e, m) for e in exps]
        stats = backend.stats.as_dict()
        assert stats["stale_responses"] == 0 and stats["retries"] == 0, stats
    finally:
        backend.close()


def test_combs_keep_two_frames_unanswered_and_never_three(shared_board):
    """Table writes and combs go out up to two unanswered (the link's two request buffers):
    a comb is sent while the comb before it runs, the device never answers BUSY, and every
    result is right; the model projects the same window."""
    from montpipe.device.model import LINK_WINDOW
    from montpipe.driver.backends.cpu import CPUBackend

    rng = random.Random(41)
    m = _modulus(rng, 256)
    backend = FPGABackend(shared_board.port, timeout=30)
    unanswered: dict[int, tuple] = {}        # a frame's tag: its opcode, the answers it awaits
    seen = {"most": 0, "combs at once": 0}
    send, receive = backend._send, backend._receive

    def logged_send(frame):
        opcode, tag = frame[3], int.from_bytes(frame[4:6], "little")
        if opcode in (Opcode.COMB, Opcode.TABLE_WRITE):
            jobs = frame[10] if opcode == Opcode.COMB else 1
            unanswered[tag] = (opcode, {(tag + j) & 0xFFFF for j in range(jobs)})
            seen["most"] = max(seen["most"], len(unanswered))
            combs = sum(op == Opcode.COMB for op, _ in unanswered.values())
            seen["combs at once"] = max(seen["combs at once"], combs)
        send(frame)

    def logged_receive(wait):
        got = receive(wait)
        for r in got:
            for tag, (_, due) in list(unanswered.items()):
                due.discard(r.tag)
                if not due:
                    del unanswered[tag]
        return got

    backend._send, backend._receive = logged_send, logged_receive
    cpu = CPUBackend()
    try:
        g = rng.randrange(2, m)
        exps = [rng.getrandbits(64) for _ in range(7)]
        assert backend.fixed_base(g, m, 64).pow(exps) == [pow(g, e, m) for e in exps]
        bases = [b for b in (rng.randrange(2, m) for _ in range(30)) if gmpy2.gcd(b, m) == 1]
        rows = [[rng.randrange(1 << 20) for _ in bases] for _ in range(5)]
        assert backend.multiexp(bases, rows, m) == cpu.multiexp(bases, rows, m)
        assert seen["most"] == LINK_WINDOW == 2, seen
        assert seen["combs at once"] == 2, seen
        assert backend.stats.as_dict()["retries"] == 0, backend.stats.as_dict()
    finally:
        backend.close()
        cpu.close()


def test_the_model_counts_the_table_writes_the_device_gets(board):
    """Fixed-base powers, multi-exponentiations taking the table from them and from each
    other, and the fixed base again: the model backend projects exactly the table writes the
    fpga backend makes."""
    from montpipe.driver.backends.model import ModelBackend

    rng = random.Random(29)
    m = _modulus(rng, 512)
    bases = [b for b in (rng.randrange(2, m) for _ in range(60)) if gmpy2.gcd(b, m) == 1]
    backends = [FPGABackend(board.port, timeout=30), ModelBackend(SIM_CONFIG, workers=1)]
    try:
        for backend in backends:
            g = backend.fixed_base(5, m, 300)
            g.pow([rng.getrandbits(300) for _ in range(3)])
            # groups of one base and of two (17 and 41 bases: a short last group)
            for count, rows in ((40, 5), (len(bases), 1), (17, 6), (41, 8)):
                backend.multiexp(bases[:count], [[rng.randrange(-(1 << 20), 1 << 20) for _ in
                                                  range(count)] for _ in range(rows)], m)
            g.pow([rng.getrandbits(300)])
        fpga, model = (b.stats.extra["table_writes"] for b in backends)
        assert fpga == model > 0, (fpga, model)
    finally:
        for backend in backends:
            backend.close()


def test_fixed_base_without_a_table_raises_powers_one_by_one(shared_board):
    """An exponent range the table cannot cover (or a build without one) is no error: the
    powers go out as exponentiations."""
    backend = FPGABackend(shared_board.port, timeout=30)
    try:
        m = _modulus(random.Random(3), 128)
        too_long = COMB_MAX_DIGITS * 8 + 1                  # more digits than a comb job holds
        handle = backend.fixed_base(7, m, too_long)
        exps = [3, 5]
        assert handle.pow(exps) == [pow(7, e, m) for e in exps]
        assert backend.stats.extra["comb_powers"] == 0
        assert backend.stats.extra["device_powmods"] == 2
        with pytest.raises(ValueError):
            handle.pow([1 << too_long])
    finally:
        backend.close()


def test_multiexp_on_the_comb(shared_board, monkeypatch):
    """Rows of signed exponents over shared bases, on the device's comb (host-built group
    tables in the table's slots, frames of jobs of either chunk), equal to the CPU's, every
    table entry written once; a base without an inverse under negative exponents is refused as
    the CPU refuses it."""
    from dataclasses import replace

    from montpipe.driver.backends.cpu import CPUBackend

    rng = random.Random(21)
    backend = FPGABackend(shared_board.port, timeout=30)
    cpu = CPUBackend()
    # the plan the backend would choose, in two slots (on this small board one slot finishes
    # as soon), so that frames hold jobs of two chunks
    chosen = backend.multiexp_plan
    monkeypatch.setattr(backend, "multiexp_plan", lambda *a: replace(chosen(*a), slots=2))
    try:
        m = _modulus(rng, 512)
        bases = []
        while len(bases) < 38:              # invertible: they take negative exponents
            b = rng.randrange(2, m)
            bases += [b] * (gmpy2.gcd(b, m) == 1)
        bases += [1, m - 1]
        rows = [[rng.randrange(-(1 << 20), 1 << 20) for _ in bases] for _ in range(3)]
        rows.append([0] * len(bases))
        rows.append([(1 << 20) - 1] * len(bases))
        assert backend.multiexp(bases, rows, m) == cpu.multiexp(bases, rows, m)
        caps = backend.caps
        plan = backend.multiexp_plan(21, 5, len(bases), montgomery_words(512, caps.width))
        groups = -(-len(bases) // plan.bits)
        chunks = -(-groups // plan.tables)
        # five rows on two lanes: a frame holds jobs of two chunks
        assert chunks == plan.slots == 2 and caps.lanes == 2, (plan, caps)
        assert backend.stats.extra["table_writes"] == \
            groups * ((1 << plan.bits) - 1) + plan.tables * 2
        positive = [[abs(e) for e in row] for row in rows[:2]]
        assert backend.multiexp(bases, positive, m) == cpu.multiexp(bases, positive, m)
        stats = backend.stats.as_dict()
        assert stats["comb_multiexp_terms"] == len(bases) * (len(rows) + 2), stats
        assert stats["device_powmods"] == 0 and stats["fallbacks"] == 0
        with pytest.raises(ValueError, match="no inverse"):
            backend.multiexp([0, 3], [[-1, 2]], m)
    finally:
        backend.close()
        cpu.close()
