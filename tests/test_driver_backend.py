"""The backend protocol, the registry and default, and the CPU backend's kernels."""

import os
import secrets
import subprocess
import sys

import gmpy2
import pytest

from montpipe.driver import backend as backend_mod
from montpipe.driver import paillier
from montpipe.driver.backends import cpu
from montpipe.driver.backends.cpu import CPUBackend

needs_native = pytest.mark.skipif(
    not cpu.native_available(), reason="GMP kernels not built (no GMP headers at install)"
)


def rand_odd(bits):
    return secrets.randbits(bits) | 1 | (1 << (bits - 1))


# -- registry and default --------------------------------------------------------------------

def test_registry_and_errors():
    assert "cpu" in backend_mod.available_backends()
    assert backend_mod.get_backend("cpu") is backend_mod.get_backend("cpu")
    b = CPUBackend(workers=1)
    assert backend_mod.get_backend(b) is b
    with pytest.raises(ValueError, match="unknown montpipe backend 'gpu'; expected one of cpu"):
        backend_mod.get_backend("gpu")
    with pytest.raises(TypeError, match="backend must be"):
        backend_mod.get_backend(42)


def _run(code, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_environment_selects_the_default():
    r = _run("from montpipe.driver import default_backend as d; print(d().name, d() is d())",
             MONTPIPE_BACKEND="cpu")
    assert r.stdout.split() == ["cpu", "True"], r.stderr
    r = _run("from montpipe.driver import default_backend as d; d()", MONTPIPE_BACKEND="fpgaa")
    assert r.returncode != 0
    assert "MONTPIPE_BACKEND: unknown montpipe backend 'fpgaa'" in r.stderr


def test_explicit_override_per_key(keypair_factory):
    pk, sk = keypair_factory(512)
    mine = CPUBackend(workers=1)
    pk2 = paillier.PaillierPublicKey(pk.n, backend=mine)
    sk2 = paillier.PaillierPrivateKey(pk2, sk.p, sk.q)
    assert pk2.backend is mine and pk.backend is backend_mod.default_backend()
    before = mine.stats.powmods
    assert sk2.decrypt(pk2.encrypt(3)) == 3
    assert mine.stats.powmods > before


def test_cpu_backend_arguments(monkeypatch):
    with pytest.raises(ValueError, match="workers must be a positive integer, not 0"):
        CPUBackend(workers=0)
    monkeypatch.setenv("MONTPIPE_CPU_WORKERS", "two")
    with pytest.raises(ValueError, match="MONTPIPE_CPU_WORKERS must be a positive integer"):
        CPUBackend()
    monkeypatch.setenv("MONTPIPE_CPU_WORKERS", "3")
    assert CPUBackend().describe()["workers"] in (1, 3)  # 1 when the kernels are missing
    monkeypatch.setenv("MONTPIPE_TABLE_MB", "lots")
    with pytest.raises(ValueError, match="MONTPIPE_TABLE_MB must be a number"):
        CPUBackend()


# -- kernels against gmpy2 -------------------------------------------------------------------

needs_ifma = pytest.mark.skipif(
    not cpu.ifma_active(), reason="this CPU has no AVX-512 IFMA (the GMP path is tested)"
)

# (factory, IFMA kernels on?)
BACKENDS = [
    pytest.param((lambda: CPUBackend(workers=2), True), id="ifma-2threads",
                 marks=[needs_native, needs_ifma]),
    pytest.param((lambda: CPUBackend(workers=1), True), id="ifma-1thread",
                 marks=[needs_native, needs_ifma]),
    pytest.param((lambda: CPUBackend(workers=2), False), id="gmp-2threads", marks=needs_native),
    pytest.param((lambda: CPUBackend(workers=1), False), id="gmp-1thread", marks=needs_native),
    pytest.param((lambda: CPUBackend(workers=2, use_native=False), False), id="gmpy2"),
]


@pytest.fixture(params=BACKENDS)
def be(request, monkeypatch):
    # force the parallel split even on small test batches
    monkeypatch.setattr(cpu, "_PARALLEL_THRESHOLD_NS", 0)
    factory, ifma = request.param
    before = cpu.ifma_active()
    if cpu.native_available():
        cpu._native.ifma(ifma)
    b = factory()
    yield b
    b.close()
    if cpu.native_available():
        cpu._native.ifma(before)


@pytest.mark.parametrize("bits", [64, 65, 1024, 2049, 4096, 8190])
def test_powmod(be, bits):
    m = rand_odd(bits)
    eb = min(bits, 300)  # the modulus width is what the kernels care about; keep gmpy2 quick
    bases = [0, 1, m - 1, m, m + 5, *(secrets.randbelow(m) for _ in range(20))]
    exps = [0, 1, 2, (1 << eb) - 1, 1 << (eb - 1), *(secrets.randbits(eb) for _ in range(20))]
    assert be.powmod(bases, exps, m) == [int(gmpy2.powmod(b, e, m)) for b, e in zip(bases, exps)]
    e = secrets.randbits(eb) | (1 << (eb - 1))
    assert be.powmod(bases, e, m) == [int(gmpy2.powmod(b, e, m)) for b in bases]
    assert be.powmod(bases, e, m, secret=True) == [int(gmpy2.powmod(b, e, m)) for b in bases]
    assert be.powmod([], 5, m) == []
    for n in (1, 2, 3, 7, 8, 9, 16, 17):  # lane tails of the 8-wide kernels
        assert be.powmod(bases[:n], e, m) == [int(gmpy2.powmod(b, e, m)) for b in bases[:n]]


def test_powmod_negative_exponents_and_errors(be):
    m = int(gmpy2.next_prime(rand_odd(512)))
    b = secrets.randbelow(m - 2) + 2
    assert be.powmod([b], [-3], m) == [int(gmpy2.powmod(gmpy2.invert(b, m), 3, m))]
    p = 101
    with pytest.raises(ValueError, match="no inverse"):
        be.powmod([p], [-1], p * 103)
    with pytest.raises(ValueError, match="pair up"):
        be.powmod([1, 2], [1], m)
    with pytest.raises(ValueError, match="greater than 1"):
        be.powmod([1], [1], 1)


def test_mulmod_prodmod(be):
    m = rand_odd(4096)
    a = [secrets.randbelow(m) for _ in range(9)]
    b = [secrets.randbelow(m) for _ in range(9)]
    assert be.mulmod(a, b, m) == [x * y % m for x, y in zip(a, b)]
    prod = 1
    for x in a:
        prod = prod * x % m
    assert be.prodmod(a, m) == prod
    assert be.prodmod([], m) == 1
    with pytest.raises(ValueError, match="pair up"):
        be.mulmod(a, b[:3], m)


@pytest.mark.parametrize("max_bits", [1, 17, 128, 1024])
@pytest.mark.parametrize("mod_bits", [256, 4096])
def test_fixed_base(be, max_bits, mod_bits):
    m = rand_odd(mod_bits)
    base = secrets.randbelow(m)
    fb = be.fixed_base(base, m, max_bits)
    exps = [0, 1, (1 << max_bits) - 1, 1 << (max_bits - 1),
            *(secrets.randbits(max_bits) for _ in range(15))]
    assert fb.pow(exps) == [int(gmpy2.powmod(base, e, m)) for e in exps]
    for n in (1, 3, 9):
        assert fb.pow(exps[:n]) == [int(gmpy2.powmod(base, e, m)) for e in exps[:n]]
    with pytest.raises(ValueError, match=rf"exponents\[0\] must be in \[0, 2\*\*{max_bits}\)"):
        fb.pow([1 << max_bits])
    with pytest.raises(ValueError, match=r"exponents\[1\] must be in"):
        fb.pow([0, -1])


@needs_native
def test_native_fixed_base_keeps_off_ifma_when_it_is_off():
    # a CPU without AVX-512 IFMA runs this path: building the table must not touch the IFMA
    # set-up (its instructions would kill the process), and powers still come out right
    from montpipe.driver import _native

    before = cpu.ifma_active()
    try:
        _native.ifma(False)
        m = rand_odd(2048)
        table = _native.FixedBase(3, m, 64, 4, False)
        assert table.ifma is False
        exps = [secrets.randbits(64) for _ in range(9)]
        assert table.pow(exps) == [int(gmpy2.powmod(3, e, m)) for e in exps]
        if before:
            _native.ifma(True)
            built_on = _native.FixedBase(3, m, 64, 4, False)
            assert built_on.ifma is True
            _native.ifma(False)                  # switched off after: the GMP path
            assert built_on.pow(exps) == [int(gmpy2.powmod(3, e, m)) for e in exps]
    finally:
        _native.ifma(before)


@pytest.mark.parametrize("rows, cols, ebits", [(1, 1, 1), (3, 40, 57), (2, 200, 130), (5, 7, 1),
                                               (9, 70, 57), (17, 16, 20)])
def test_multiexp(be, rows, cols, ebits):
    m = int(gmpy2.next_prime(rand_odd(1024)))  # every base invertible
    bases = [secrets.randbelow(m - 2) + 2 for _ in range(cols)]
    exps = [[secrets.randbits(ebits) * (-1) ** secrets.randbits(1) for _ in range(cols)]
            for _ in range(rows)]
    exps[0][0] = 0
    expected = []
    for row in exps:
        acc = gmpy2.mpz(1)
        for b, e in zip(bases, row):
            acc = acc * gmpy2.powmod(b, e, m) % m
        expected.append(int(acc))
    assert be.multiexp(bases, exps, m) == expected
    assert be.multiexp(bases, [], m) == []
    with pytest.raises(ValueError, match="entries but there are"):
        be.multiexp(bases, [[1] * (cols + 1)], m)


@needs_native
def test_native_multiexp_windows_agree():
    from montpipe.driver import _native

    m = rand_odd(512)
    bases = [secrets.randbelow(m) for _ in range(30)]
    exps = [[secrets.randbits(70) - (1 << 69) for _ in range(30)] for _ in range(3)]
    results = {w: _native.multiexp(bases, exps, m, w) for w in (0, 1, 3, 8, 13)}
    assert len({repr(r) for r in results.values()}) == 1
    with pytest.raises(ValueError, match="window must be 0"):
        _native.multiexp(bases, exps, m, 17)
    with pytest.raises(TypeError, match="must be an integer"):
        _native.powmod([1.5], 3, m)


def test_submit_returns_a_future(be):
    m = rand_odd(256)
    f = be.submit("powmod", [3, 4], 5, m)
    assert f.result(timeout=30) == [pow(3, 5, m), pow(4, 5, m)]
    bad = be.submit("powmod", [3], [1, 2], m)
    with pytest.raises(ValueError, match="pair up"):
        bad.result(timeout=30)


def test_stats_count_work(be):
    m = rand_odd(256)
    be.powmod([2, 3, 4], 7, m)
    be.multiexp([2, 3], [[1, 2]], m)
    s = be.stats.as_dict()
    assert s["powmods"] >= 3 and s["multiexp_terms"] >= 2 and s["busy_seconds"] >= 0


@needs_native
def test_threads_run_in_parallel_without_the_gil():
    """The kernels release the GIL: a pure-Python loop keeps running while one computes."""
    import threading
    import time

    from montpipe.driver import _native

    m = rand_odd(2048)
    bases = [secrets.randbelow(m) for _ in range(40)]
    ticks = 0
    done = threading.Event()

    def spin():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.01)
    start = ticks
    _native.powmod(bases, (1 << 1024) - 1, m)
    moved = ticks - start
    done.set()
    t.join()
    assert moved > 1000, "the spinning thread was starved: the GIL was held"


def test_error_names_the_callers_index(be):
    m = 101 * 103
    bases = [2] * 9 + [101] + [3] * 6
    with pytest.raises(ValueError, match=r"no inverse") as info:
        be.powmod(bases, [-1] * 16, m)
    if be.describe()["kernels"] == "gmp-native":
        assert "bases[9]" in str(info.value)


# -- constant time where it is promised --------------------------------------------------------

def test_constant_time_djn_powers_read_the_whole_table_and_multiply_every_window(
        keypair_factory):
    """With constant_time, h_s ** alpha costs the same products and table reads for every
    alpha (none, one bit, all bits, random): the table is read in full and a window whose
    digit is 0 is multiplied by 1, not skipped."""
    from montpipe.driver.paillier import PaillierPublicKey

    pk0, sk = keypair_factory(512)
    backend = CPUBackend(workers=1, constant_time=True)
    pk = PaillierPublicKey(pk0.n, backend=backend)
    table = pk._djn()
    assert table.constant_time and table.window == 4
    bits = pk.djn_exponent_bits
    windows = -(-bits // table.window)
    alphas = [0, 1, 1 << (bits - 1), (1 << bits) - 1, secrets.randbits(bits), 1 << 17]
    before = table.counts
    for alpha in alphas:
        start = table.counts
        assert table.pow([alpha]) == [pow(pk.hs, alpha, pk.nsquare)]
        done = tuple(b - a for a, b in zip(start, table.counts))
        assert done == (windows - 1, windows << table.window), alpha
    assert table.counts[0] - before[0] == len(alphas) * (windows - 1)
    assert sk.raw_decrypt_batch(pk.raw_encrypt_batch([5, 6])) == [5, 6]
    assert not CPUBackend(workers=1).fixed_base(pk.hs, pk.nsquare, bits).constant_time


def test_constant_time_without_the_kernels_is_gmps_powm_sec(monkeypatch):
    """On gmpy2 alone (no kernels built), secret exponentiations and DJN powers go through
    powmod_sec, never the variable-time powmod."""

    m = rand_odd(300)
    backend = CPUBackend(use_native=False, constant_time=True)
    seen = []
    real = gmpy2.powmod_sec
    monkeypatch.setattr(cpu.gmpy2, "powmod_sec", lambda b, e, n: seen.append(e) or real(b, e, n))
    monkeypatch.setattr(cpu.gmpy2, "powmod",
                        lambda *a: (_ for _ in ()).throw(AssertionError("variable-time powmod")))
    e = secrets.randbits(200)
    assert backend.powmod([3, 5], e, m, secret=True) == [pow(3, e, m), pow(5, e, m)]
    alphas = [secrets.randbits(100) for _ in range(3)]
    assert backend.fixed_base(7, m, 100).pow(alphas) == [pow(7, a, m) for a in alphas]
    assert seen == [e, e, *alphas]
