"""The ``model`` backend: CPU results, device time from the gateware's exact cycle model."""

import json
import random
import warnings
from dataclasses import replace

import gmpy2
import pytest

from montpipe.device.config import DeviceConfig
from montpipe.device.model import batch_cycles, exponent_digits, montgomery_words
from montpipe.driver import paillier
from montpipe.driver.backends import model as model_mod
from montpipe.driver.backends.model import ModelBackend, default_device

SMALL = DeviceConfig(lanes=2, width=16, max_words=257, window=2, clock_mhz=100.0)


def odd(rng, bits):
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


def test_results_are_exact_and_cycles_are_the_batch_model():
    rng = random.Random(1)
    mod = odd(rng, 300)
    bases = [rng.randrange(mod) for _ in range(5)]
    exps = [rng.getrandbits(64) for _ in range(5)]
    backend = ModelBackend(SMALL, workers=1)
    assert backend.powmod(bases, exps, mod) == [int(gmpy2.powmod(b, e, mod))
                                                for b, e in zip(bases, exps)]
    s = montgomery_words(300, 16)
    want = batch_cycles(2, s, 2, [exponent_digits(e, 2) for e in exps], False)
    stats = backend.stats.as_dict()
    assert stats["device_cycles"] == want
    assert stats["projected_device_seconds"] == pytest.approx(want / 100e6)
    assert stats["device_powmods"] == 5 and stats["fallbacks"] == 0
    # per exponentiation: a request frame of 14 bytes, the base (2 bytes a word) and a byte a
    # digit, and a result frame of 11 bytes and the result (docs/protocol.md)
    digits = sum(len(exponent_digits(e, 2)) for e in exps)
    assert stats["link_bytes"] == 5 * (14 + 2 * s) + digits + 5 * (11 + 2 * s)
    assert stats["projected_link_seconds"] == pytest.approx(stats["link_bytes"] / 300_000)


@pytest.mark.parametrize("width", [16, 36])
def test_projection_equals_the_rtl_cycles_for_the_same_batch(width):
    """The same batch through the Amaranth simulation of a two-lane array (at 36 bits, the
    four-block multipliers' longer pipeline)."""
    pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")
    from test_hdl_core import run as run_rtl

    from montpipe.device.model import request_frame
    from montpipe.hdl.array import ModExpArray

    rng = random.Random(2)
    mod = odd(rng, 70 if width == 16 else 140)
    cases = [(rng.randrange(mod), rng.getrandbits(rng.choice([5, 30]))) for _ in range(5)]
    frames = []
    for tag, (b, e) in enumerate(cases):
        beats = request_frame(tag, b, e, mod, width=width, window=2)
        frames.append([(x, i == len(beats) - 1) for i, x in enumerate(beats)])
    results, end = run_rtl(frames, make=lambda: ModExpArray(2, width, 6, 2, 40))
    assert [sum(w << (width * k) for k, w in enumerate(words)) for _, _, words in results] == \
        [pow(b, e, mod) for b, e in cases]
    device = DeviceConfig.sized(4096, 2048, lanes=2, width=width, window=2, clock_mhz=100.0)
    backend = ModelBackend(device, workers=1)
    assert backend.project([e for _, e in cases], mod) == end["last_result"]


def test_secret_batches_take_the_declared_length_whatever_the_bits():
    rng = random.Random(3)
    mod = odd(rng, 256)
    a, b = ModelBackend(SMALL, workers=1), ModelBackend(SMALL, workers=1)
    ones = [(1 << 128) - 1] * 4
    sparse = [1 << 127, (1 << 127) | 1, 1 << 127, 3 | (1 << 127)]
    assert a.project(ones, mod, secret=True) == b.project(sparse, mod, secret=True)
    assert a.project(ones, mod) != b.project(sparse, mod)
    assert a.project([1], mod, secret=True, declared_bits=128) == \
        b.project([1 << 127], mod, secret=True, declared_bits=128)


def test_what_the_device_cannot_take_falls_back_and_is_counted():
    rng = random.Random(4)
    backend = ModelBackend(DeviceConfig.sized(256, 2048, lanes=2), workers=1)
    wide, even = odd(rng, 300), odd(rng, 200) + 1
    for mod in (wide, even):
        assert backend.powmod([5, 7], 65537, mod) == [pow(5, 65537, mod), pow(7, 65537, mod)]
    assert backend.stats.fallbacks == 4
    assert backend.stats.extra["device_cycles"] == 0


def test_paillier_through_the_model_backend():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        pk, sk = paillier.generate_paillier_keypair(n_length=1024, backend=ModelBackend(
            SMALL, workers=1))
    values = [1.5, -2.25, 3.0]
    enc = pk.encrypt_vector(values)
    assert list(sk.decrypt_vector(enc * 2.0)) == [3.0, -4.5, 6.0]
    stats = pk.backend.stats.as_dict()
    # 3 DJN encryptions by the comb and 3 scalar products on the device; the 2·3 CRT halves
    # on the host
    assert stats["device_comb_powers"] == 3 and stats["device_powmods"] >= 3
    assert stats["projected_device_seconds"] > 0
    assert stats["host_secret_powmods"] == 6
    assert pk.backend.describe()["device"]["lanes"] == 2


def test_bad_device_configurations_are_named():
    with pytest.raises(ValueError, match="device lanes must be a positive integer, not 0"):
        DeviceConfig(lanes=0)
    with pytest.raises(ValueError, match="device word width must be 2 to 36 bits, not 40"):
        DeviceConfig(width=40)
    with pytest.raises(ValueError, match="device clock_mhz must be a positive number, not -1"):
        DeviceConfig(clock_mhz=-1)
    with pytest.raises(ValueError, match="device max_words must be at least 3, not 2"):
        DeviceConfig(max_words=2)


def test_environment_overrides_and_bad_values(monkeypatch):
    monkeypatch.setenv("MONTPIPE_MODEL_LANES", "40")
    monkeypatch.setenv("MONTPIPE_MODEL_CLOCK_MHZ", "150")
    monkeypatch.setenv("MONTPIPE_MODEL_BAUD", "12000000")
    device, source = default_device()
    assert (device.lanes, device.clock_mhz, device.baud) == (40, 150.0, 12_000_000)
    assert device.link_bytes_per_s == 1_200_000
    assert "MONTPIPE_MODEL_LANES=40" in source and "MONTPIPE_MODEL_BAUD=12000000" in source
    monkeypatch.setenv("MONTPIPE_MODEL_BAUD", "0")
    with pytest.raises(ValueError, match=r"baud must be .*MONTPIPE_MODEL_BAUD=0"):
        default_device()
    monkeypatch.setenv("MONTPIPE_MODEL_LANES", "many")
    with pytest.raises(ValueError, match="MONTPIPE_MODEL_LANES must be a whole number, not 'many'"):
        default_device()


def test_a_committed_synthesis_report_is_the_default(monkeypatch, tmp_path):
    (tmp_path / "ulx3s-85f.json").write_text(json.dumps({
        "fmax_mhz": 131.5,
        "configuration": {"lanes": 30, "width": 18, "max_words": 228, "window": 4}}))
    monkeypatch.setattr(model_mod, "REPORTS", tmp_path)
    device, source = default_device()
    assert (device.lanes, device.width, device.window, device.clock_mhz) == (30, 18, 4, 131.5)
    assert device.n_max_bits == 18 * 228 - 2
    assert source == "synthesis report ulx3s-85f.json"
    # timing met with margin: the device runs at its PLL's clock, not at the post-route Fmax
    (tmp_path / "ulx3s-85f.json").write_text(json.dumps({
        "fmax_mhz": 81.2, "target_mhz": 75.0,
        "configuration": {"lanes": 15, "width": 36, "max_words": 114, "window": 2}}))
    assert default_device()[0].clock_mhz == 75.0


def test_without_a_report_the_model_says_it_projects_an_unmeasured_device(monkeypatch, tmp_path):
    monkeypatch.setattr(model_mod, "REPORTS", tmp_path)
    with pytest.warns(RuntimeWarning, match="no synthesis report"):
        device, source = default_device()
    assert device == DeviceConfig() and "its clock a target" in source


def test_the_reference_report_is_the_default():
    """Found through the package (``tests/test_layout.py`` checks the wheel carries it)."""
    device, source = default_device()
    assert source == "synthesis report ulx3s-85f.json"
    assert (device.lanes, device.width) == (15, 36)


def test_the_fl_demo_reports_projected_device_time(monkeypatch):
    monkeypatch.delenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", raising=False)
    from montpipe.fl_demo import run
    from montpipe.fl_demo.data import load_breast_cancer_split
    from montpipe.fl_demo.protocol import Config

    data = load_breast_cancer_split(seed=0)
    cfg = Config(iterations=1, key_bits=512)
    backends = {"arbiter": "model", "guest": "model", "host": "model"}
    res = run.train(data, cfg, use_ray=False, progress=False, backends=backends)
    summary = run.summarise(res, data, cfg, backends)
    parties = summary["projected_accelerator"]["per_party"]
    assert set(parties) == {"arbiter", "guest", "host"}
    assert parties["guest"]["device_seconds_per_iteration"] > 0
    assert parties["host"]["device_seconds_per_iteration"] > 0
    # the arbiter only decrypts, and an untrusted device is given no secrets
    assert parties["arbiter"]["device_seconds_per_iteration"] == 0
    assert summary["projected_accelerator_seconds_per_iteration"] > 0


def test_the_model_projects_both_settings_for_secrets(keypair_factory, monkeypatch):
    """Decryption's CRT halves (a private key's moduli and exponents) are projected onto the
    device only when it is trusted with secrets; otherwise they are host work, as on the
    fpga backend, and describe() says which."""
    monkeypatch.delenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", raising=False)
    from montpipe.driver.paillier import PaillierPrivateKey, PaillierPublicKey

    _, sk = keypair_factory(512)
    counts = {}
    for trusted in (False, True):
        backend = ModelBackend(trust_device_with_secrets=trusted)
        pk = PaillierPublicKey(sk.public_key.n, backend=backend, mode="standard")
        key = PaillierPrivateKey(pk, sk.p, sk.q)
        cts = pk.raw_encrypt_batch([1, 2, 3])
        assert key.raw_decrypt_batch(cts) == [1, 2, 3]
        extra = backend.stats.extra
        counts[trusted] = (extra["device_powmods"], extra["host_secret_powmods"])
        assert backend.describe()["secrets"] == ("device" if trusted else "host")
        assert backend.describe()["trust_device_with_secrets"] is trusted
    assert counts == {False: (3, 6), True: (9, 0)}
    monkeypatch.setenv("MONTPIPE_TRUST_DEVICE_WITH_SECRETS", "yes")
    assert ModelBackend().describe()["secrets"] == "device"


def test_fixed_base_powers_project_the_comb_or_exponentiations():
    """With a table the model projects the comb's packets (packet_cycles) and its link bytes,
    the table's writes when the device does not hold it; without one, ordinary
    exponentiations; both give the CPU's results."""
    from montpipe.device.model import comb_commands, packet_cycles
    from montpipe.driver.comb import choose_shape

    rng = random.Random(4)
    m = odd(rng, 2048)
    exps = [rng.getrandbits(512) for _ in range(5)]
    with_table = ModelBackend(SMALL, workers=1)
    without = ModelBackend(replace(SMALL, table_entries=0), workers=1)
    for backend in (with_table, without):
        handle = backend.fixed_base(3, m, 512)
        assert handle.pow(exps) == [pow(3, e, m) for e in exps]
    shape = choose_shape(512, SMALL.table_entries)
    s = montgomery_words(2048, SMALL.width)
    want = packet_cycles(2, s, comb_commands(2, 2, shape.steps, shape.tables), SMALL.width) * 2 \
        + packet_cycles(2, s, comb_commands(2, 1, shape.steps, shape.tables), SMALL.width)
    assert with_table.stats.extra["device_cycles"] == want
    assert with_table.stats.extra["device_comb_powers"] == 5
    assert with_table.stats.extra["device_products"] == 5 * shape.products
    assert without.stats.extra["device_comb_powers"] == 0
    assert without.stats.extra["device_powmods"] == 5
    assert with_table.stats.extra["device_cycles"] < without.stats.extra["device_cycles"] / 3
    # the table goes over the link when the device does not hold it, as the fpga backend
    # sends it: another handle of the same base finds it there; another base's table takes
    # its place but for the ones (entry 0 of each table), and then the first is written again
    from montpipe.driver.comb import table_write_frame

    def link_of(base):
        before = with_table.stats.extra["link_bytes"]
        with_table.fixed_base(base, m, 512).pow(exps[:1])
        return with_table.stats.extra["link_bytes"] - before

    frames = link_of(3)
    entry = table_write_frame(SMALL.width, s)
    rewrite = (shape.entries - shape.tables) * (entry.out_bytes + entry.in_bytes)
    assert [link_of(5), link_of(3), link_of(3)] == [frames + rewrite, frames + rewrite, frames]


def test_multiexp_projects_the_comb_or_exponentiations():
    """With a table the model projects the multi-exponentiation the fpga backend runs on the
    comb (chunks of host-built group tables in the table's slots, a lane's worth of (chunk,
    row) jobs a frame); without one, every term as an exponentiation. Results are the CPU's
    either way."""
    from montpipe.device.model import comb_commands, packet_cycles
    from montpipe.driver.comb import device_plan, multiexp_steps

    rng = random.Random(9)
    m = odd(rng, 2048)
    bases = [rng.randrange(m) for _ in range(40)]
    rows = [[rng.randrange(-(1 << 40), 1 << 40) for _ in bases] for _ in range(3)]
    with_table = ModelBackend(SMALL, workers=1)
    without = ModelBackend(replace(SMALL, table_entries=0), workers=1)
    want = [1] * 3
    for j, row in enumerate(rows):
        for b, e in zip(bases, row, strict=True):
            want[j] = want[j] * pow(b, e, m) % m
    for backend in (with_table, without):
        assert backend.multiexp(bases, rows, m) == want
    s = montgomery_words(2048, SMALL.width)
    steps, offset = multiexp_steps(rows)
    assert (steps, offset) == (41, 1 << 40)          # |e| < 2^40, and a sign
    plan = device_plan(steps, 3, 40, table_entries=SMALL.table_entries, width=SMALL.width,
                       words=s, lanes=SMALL.lanes, clock_hz=SMALL.clock_mhz * 1e6,
                       bytes_per_s=SMALL.link_bytes_per_s)
    chunks = -(-40 // plan.chunk_bases)
    assert plan.slots >= 2 and chunks > 1
    # the (chunk, row) jobs fill both lanes of every frame but perhaps the last, where a
    # frame a chunk would leave a lane idle in every second frame
    jobs = chunks * 3

    def frame(n):
        return packet_cycles(2, s, comb_commands(2, n, steps, plan.tables), SMALL.width)

    cycles = jobs // 2 * frame(2) + jobs % 2 * frame(1)
    assert with_table.stats.extra["device_cycles"] == cycles
    assert cycles < chunks * (frame(2) + frame(1))
    assert with_table.stats.extra["device_comb_multiexp_terms"] == 120
    assert without.stats.extra["device_powmods"] == 120
    # on the link: every group's non-empty subsets once, the empty one once a table and slot
    # in use, the frames' digits and every job's result
    from montpipe.device.wire import comb_request, encode_response, table_write_request
    groups = -(-40 // plan.bits)
    used_slots = min(plan.slots, chunks)
    entry = len(table_write_request(0, 0, 0, 0, width=SMALL.width, words=s)) + \
        len(encode_response(0, 0, 0))
    writes = groups * ((1 << plan.bits) - 1) + plan.tables * used_slots
    digits = lambda n: len(comb_request(0, 0, steps, plan.tables, plan.shape.bits,  # noqa: E731
                                        [bytes(steps * plan.tables)] * n))
    link = writes * entry + jobs // 2 * digits(2) + jobs % 2 * digits(1) + \
        jobs * len(encode_response(0, 0, 0, bytes(2 * s)))
    assert with_table.stats.extra["link_bytes"] == link
    assert link < without.stats.extra["link_bytes"]
    assert with_table.stats.extra["projected_accelerator_seconds"] < \
        without.stats.extra["projected_accelerator_seconds"] / 2
    # kept apart by operation, the table's writes among them
    assert with_table.stats.extra["link_bytes_comb_multiexp_terms"] == link
    assert with_table.stats.extra["table_write_bytes"] == writes * entry
    assert with_table.stats.extra["link_bytes_powmods"] == 0
    assert without.stats.extra["link_bytes_powmods"] == without.stats.extra["link_bytes"] > 0
    with_table.fixed_base(3, m, 512).pow([5, 7])
    extra = with_table.stats.extra
    assert extra["link_bytes_comb_multiexp_terms"] == link      # the powers' bytes go apart
    assert extra["link_bytes_comb_powers"] == extra["link_bytes"] - link > 0


def test_the_plan_is_chosen_by_what_the_model_projects():
    """The plan's estimate (:func:`multiexp_link_frames` on a table holding nothing) is the
    model's projection of the call on a fresh backend, seconds and bytes; so the plan the
    backends choose is the one the model projects soonest done."""
    from montpipe.device.model import link_schedule_seconds
    from montpipe.driver.comb import device_plan, multiexp_link_frames, multiexp_steps

    rng = random.Random(31)
    m = odd(rng, 1024)
    bases = [rng.randrange(2, m) for _ in range(100)]
    rows = [[rng.randrange(1 << 30) for _ in bases] for _ in range(5)]
    s = montgomery_words(1024, SMALL.width)
    rates = dict(lanes=SMALL.lanes, clock_hz=SMALL.clock_mhz * 1e6)
    steps, _ = multiexp_steps(rows)
    plan = device_plan(steps, 5, 100, table_entries=SMALL.table_entries, width=SMALL.width,
                       words=s, bytes_per_s=SMALL.link_bytes_per_s, **rates)
    # chunks take turns in the slots, and the last group is short: ones written again
    groups = -(-100 // plan.bits)
    assert -(-groups // plan.tables) > plan.slots and 100 % plan.bits, plan
    frames = multiexp_link_frames(plan, 100, 5, words=s, width=SMALL.width, **rates)
    backend = ModelBackend(SMALL, workers=1)
    backend.multiexp(bases, rows, m)
    extra = backend.stats.extra
    assert extra["projected_accelerator_seconds"] == \
        pytest.approx(link_schedule_seconds(frames, SMALL.link_bytes_per_s), rel=1e-12)
    assert extra["link_bytes"] == sum(f.out_bytes + f.in_bytes for f in frames)
    assert extra["device_cycles"] == \
        round(sum(f.device_seconds for f in frames) * SMALL.clock_mhz * 1e6)


def test_a_multiexp_leaves_most_of_a_fixed_base_table_in_place():
    """20 rows on 15 lanes need two slots to keep the lanes full, not all the table holds: the
    fixed-base powers after the multi-exponentiation write again only the entries its chunks
    took."""
    rng = random.Random(37)
    device = DeviceConfig(lanes=15, width=36, max_words=114, window=2, clock_mhz=62.5)
    backend = ModelBackend(device, workers=1)
    m = odd(rng, 2048)
    power = backend.fixed_base(rng.randrange(2, m), m, 1024)
    power.pow([rng.getrandbits(1024) for _ in range(3)])
    extra = backend.stats.extra
    first = extra["table_writes"]
    assert first == power.shape.entries                 # a fresh table: every entry
    bases = [rng.randrange(2, m) for _ in range(456)]
    backend.multiexp(bases, [[rng.getrandbits(40) for _ in bases] for _ in range(20)], m)
    before = extra["table_writes"]
    power.pow([rng.getrandbits(1024) for _ in range(3)])
    again = extra["table_writes"] - before
    assert 0 < again <= power.shape.entries // 2, again


def test_another_boards_report_by_name(monkeypatch):
    monkeypatch.setenv("MONTPIPE_MODEL_BOARD", "orangecrab-85f")
    device, source = default_device()
    assert "orangecrab-85f.json" in source
    report = json.loads((model_mod.REPORTS / "orangecrab-85f.json").read_text())
    assert device.clock_mhz == min(report["fmax_mhz"], report["target_mhz"])
    monkeypatch.setenv("MONTPIPE_MODEL_BOARD", "no-such-board")
    with pytest.raises(ValueError, match="'no-such-board' names no committed synthesis report "
                                         r"\(there are: .*ulx3s-85f"):
        default_device()


def test_the_link_schedule_overlaps_as_far_as_the_window_allows():
    """Frames of 10 bytes out, 5 s of device and 10 bytes back at a byte a second: one at a
    time they take 25 s each; with two unanswered the second goes out while the first is
    served and comes back while the third waits for the first's answer to free a buffer."""
    from montpipe.device.model import LINK_WINDOW, LinkFrame, link_schedule_seconds

    frames = [LinkFrame(10, 5.0, 10)] * 3
    assert link_schedule_seconds(frames, 1.0, window=1) == 75.0
    assert link_schedule_seconds(frames, 1.0, window=2) == 50.0
    assert link_schedule_seconds(frames, 1.0, window=3) == 45.0
    assert LINK_WINDOW == 2 and link_schedule_seconds(frames, 1.0) == 50.0
    # a device-bound stream is the device's time and the first and last frame's bytes
    busy = [LinkFrame(1, 100.0, 1)] * 4
    assert link_schedule_seconds(busy, 1.0) == 1 + 400 + 1
    # a write behind a comb is taken in while the comb runs but served after it, and its
    # answer leaves behind the comb's
    assert link_schedule_seconds([LinkFrame(1, 100.0, 1), LinkFrame(50, 0.0, 1)], 1.0) == 103
    assert link_schedule_seconds([], 1.0) == 0.0
    with pytest.raises(ValueError, match="at least one frame, not 0"):
        link_schedule_seconds(frames, 1.0, window=0)
    with pytest.raises(ValueError, match="positive, not -3"):
        link_schedule_seconds(frames, -3)


def test_the_accelerator_time_is_summed_call_by_call_as_the_fpga_backend_runs_them():
    """An exponentiation batch: the larger of device and link (every lane fed). Combs and
    table writes: the link schedule, which lies between the larger of device and either
    direction's bytes and device plus link one frame at a time; the FL accounting takes the
    backend's figure, not the larger of the iteration's device and link totals."""
    from montpipe.device.model import LINK_WINDOW, LinkFrame, link_schedule_seconds
    from montpipe.fl_demo import accounting

    rng = random.Random(12)
    m = odd(rng, 2048)
    backend = ModelBackend(SMALL, workers=1)
    extra = backend.stats.extra
    backend.powmod([rng.randrange(m) for _ in range(6)], [rng.getrandbits(64) for _ in range(6)], m)
    assert extra["projected_accelerator_seconds"] == pytest.approx(
        max(extra["projected_device_seconds"], extra["projected_link_seconds"]))
    before = dict(extra)
    bases = [rng.randrange(m) for _ in range(40)]
    backend.multiexp(bases, [[rng.randrange(1 << 40) for _ in bases] for _ in range(5)], m)
    backend.fixed_base(3, m, 512).pow([rng.getrandbits(512) for _ in range(7)])
    part = {k: extra[k] - before[k] for k in ("projected_device_seconds",
                                              "projected_link_seconds",
                                              "projected_accelerator_seconds")}
    device, link, acc = part.values()
    assert max(device, link / 2) < acc < device + link
    # the same frames one at a time would take device plus link
    assert LINK_WINDOW == 2
    assert link_schedule_seconds([LinkFrame(4, 1.0, 4)] * 5, 2.0, window=1) == 5 * (2 + 1 + 2)
    counts = accounting.difference(before, dict(extra))
    assert accounting.projection(counts)["accelerator_seconds"] == pytest.approx(acc)
    assert accounting.projection({k: v for k, v in counts.items()
                                  if k != accounting.ACCELERATOR})["accelerator_seconds"] \
        == pytest.approx(max(device, link))


def test_a_deeper_link_window_is_a_what_if_and_bad_ones_are_named(monkeypatch):
    """MONTPIPE_MODEL_LINK_WINDOW projects a link that could queue more frames behind a
    running comb: never slower than the two frames the link takes today; zero, negative or
    not a number is refused by name."""
    from montpipe.device.model import LINK_WINDOW

    rng = random.Random(13)
    m = odd(rng, 2048)
    bases = [rng.randrange(m) for _ in range(40)]
    rows = [[rng.randrange(1 << 40) for _ in bases] for _ in range(5)]
    times = {}
    for window in ("", "1", "64"):
        monkeypatch.setenv("MONTPIPE_MODEL_LINK_WINDOW", window)
        backend = ModelBackend(SMALL, workers=1)
        backend.multiexp(bases, rows, m)
        times[backend.link_window] = backend.stats.extra["projected_accelerator_seconds"]
        assert backend.describe()["link_window"] == backend.link_window
    assert list(times) == [LINK_WINDOW, 1, 64]
    assert times[64] < times[LINK_WINDOW] < times[1]
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("MONTPIPE_MODEL_LINK_WINDOW", bad)
        with pytest.raises(ValueError, match=r"MONTPIPE_MODEL_LINK_WINDOW must be a whole "
                                             rf"number.* not '?{bad}'?$"):
            ModelBackend(SMALL, workers=1)
    with pytest.raises(ValueError, match=r"at least 1, not 0"):
        ModelBackend(SMALL, workers=1, link_window=0)
