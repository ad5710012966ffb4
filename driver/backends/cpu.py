"""The CPU backend: GMP kernels that release the GIL, one batch slice per core.

gmpy2's ``powmod`` holds the GIL, so threads calling it run one at a time. The kernels in
:mod:`montpipe.driver._native` convert their arguments, release the GIL and loop in C, so a
plain thread pool gives real parallelism with no pickling and no worker start-up cost
(``make bench`` measures threads over gmpy2 against threads over the kernels). When the kernels
were not built (no GMP headers at install time) the backend still works on gmpy2, on one core,
and says so in :meth:`CPUBackend.describe`.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time
from collections.abc import Sequence

import gmpy2
import numpy as np

from ..backend import (
    Backend,
    FixedBasePower,
    check_fixed_base_exponents,
    group_order,
)

try:
    from .. import _native
except ImportError:  # pragma: no cover - exercised only on machines without GMP headers
    _native = None

__all__ = ["CPUBackend", "ifma_active", "native_available"]

if _native is not None and os.environ.get("MONTPIPE_IFMA", "").strip() == "0":
    _native.ifma(False)


def ifma_active() -> bool:
    """Whether batches run on the AVX-512 IFMA kernels (CPU support, not ``MONTPIPE_IFMA=0``)."""
    return _native is not None and _native.ifma()


# Below this much estimated work (nanoseconds) a batch runs in the calling thread: handing
# it to the pool costs more than it saves.
_PARALLEL_THRESHOLD_NS = 300_000


def fixed_base_window(max_bits: int, modulus: int, budget_bytes: int) -> int:
    """The widest window (fewest multiplications: ``ceil(max_bits / w) - 1`` a power) whose
    table of ``ceil(max_bits / w) * (2**w - 1)`` residues fits in ``budget_bytes``.

    For a 2048-bit key and the default 64 MiB that is w = 10 (51 MiB, 102 multiplications)
    against w = 8 (16 MiB, 127); ``python -m montpipe.bench.kernels`` measures the table and
    the cost of a power.
    """
    size = (int(modulus).bit_length() + 63) // 64 * 8
    best = 1
    for w in range(1, 17):
        if -(-max_bits // w) * ((1 << w) - 1) * size <= budget_bytes:
            best = w
    return best


def constant_time_window(max_bits: int, modulus: int, budget_bytes: int) -> int:
    """The window of a constant-time fixed-base table: every power reads each window's whole
    row of ``2**w`` entries and multiplies once a window, so a wider window costs reads as it
    saves products. The least ``ceil(max_bits / w) * (2**w * limbs + 3 * limbs**2)`` (reads
    plus a product and a reduction in limb operations) within ``budget_bytes``: w = 6 for a
    2048-bit key's n**2, 4 for a 512-bit key's."""
    limbs = _limbs(modulus)
    best, best_cost = 1, None
    for w in range(1, 17):
        windows = -(-max_bits // w)
        if windows * (1 << w) * limbs * 8 > budget_bytes:
            break
        cost = windows * ((1 << w) * limbs + 3 * limbs * limbs)
        if best_cost is None or cost < best_cost:
            best, best_cost = w, cost
    return best


def native_available() -> bool:
    """Whether the GIL-free GMP kernels were built and import."""
    return _native is not None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _limbs(x: int) -> int:
    return max(1, (int(x).bit_length() + 63) // 64)


class CPUBackend(Backend):
    """Batch big-integer operations on the host CPU.

    Parameters
    ----------
    workers:
        Threads to spread a batch over; default: the cores this process may run on
        (``MONTPIPE_CPU_WORKERS`` overrides).
    use_native:
        Use the GMP kernels when built (default). ``False`` forces the gmpy2 path, which
        runs on one core; the benchmark uses it to show the difference.
    constant_time:
        Run exponentiations marked ``secret`` (decryption) with GMP's ``mpz_powm_sec``, whose
        memory access pattern does not depend on the exponent (~13% slower), and DJN's
        fixed-base powers ``h_s ** alpha`` (``alpha`` is as secret as the plaintext it hides)
        on a table read in full with one product a window (GMP's ``mpn_sec_*``). Default off
        (``MONTPIPE_CONSTANT_TIME=1`` turns it on), matching python-paillier's plain powmod.
    """

    name = "cpu"

    def __init__(
        self,
        workers: int | None = None,
        *,
        use_native: bool = True,
        constant_time: bool | None = None,
    ) -> None:
        super().__init__()
        if workers is None:
            env = os.environ.get("MONTPIPE_CPU_WORKERS", "").strip()
            if env:
                try:
                    workers = int(env)
                except ValueError:
                    raise ValueError(
                        f"MONTPIPE_CPU_WORKERS must be a positive integer, not {env!r}"
                    ) from None
            else:
                workers = _cpu_count()
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        self._workers = workers
        if constant_time is None:
            constant_time = os.environ.get("MONTPIPE_CONSTANT_TIME", "").strip() in ("1", "yes")
        self.constant_time = bool(constant_time)
        env = os.environ.get("MONTPIPE_TABLE_MB", "").strip()
        try:
            table_mb = float(env) if env else 64.0
        except ValueError:
            raise ValueError(f"MONTPIPE_TABLE_MB must be a number, not {env!r}") from None
        #: bytes a fixed-base table may take (``MONTPIPE_TABLE_MB``, default 64 MiB)
        self.table_budget = int(table_mb * 2**20)
        self._native = _native if use_native else None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def workers(self) -> int:
        """How many threads a large batch is split over."""
        return self._workers if self._native is not None else 1

    def describe(self) -> dict:
        d = super().describe()
        d.update(
            workers=self.workers,
            constant_time=self.constant_time,
            kernels=("gmp-native+avx512ifma" if ifma_active() else "gmp-native")
            if self._native is not None else "gmpy2",
            gmp=self._native.gmp_version if self._native is not None else gmpy2.mp_version(),
        )
        return d

    # -- splitting work over threads --------------------------------------------------------

    def _pool_get(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="montpipe-cpu"
                )
            return self._pool

    def _split(self, n: int, work_ns: float) -> list[tuple[int, int]]:
        parts = self.workers
        if parts <= 1 or n <= 1 or work_ns < _PARALLEL_THRESHOLD_NS:
            return [(0, n)]
        # IFMA kernels fill eight lanes a pass: cut at multiples of eight
        quantum = 8 if ifma_active() and n >= 16 else 1
        units = -(-n // quantum)
        parts = min(parts, units)
        step, extra = divmod(units, parts)
        bounds, start = [], 0
        for i in range(parts):
            end = min(n, start + (step + (1 if i < extra else 0)) * quantum)
            bounds.append((start, end))
            start = end
        return bounds

    def _run(self, fn, bounds: list[tuple[int, int]]) -> list:
        if len(bounds) == 1:
            return [fn(*bounds[0])]
        pool = self._pool_get()
        futures = [pool.submit(fn, lo, hi) for lo, hi in bounds[1:]]
        first = fn(*bounds[0])
        return [first, *(f.result() for f in futures)]

    # -- operations -------------------------------------------------------------------------

    def powmod(
        self,
        bases: Sequence[int],
        exponents: Sequence[int] | int,
        modulus: int,
        *,
        secret: bool = False,
    ) -> list[int]:
        t0 = time.perf_counter()
        native = self._native
        if native is not None and len(bases) == 1 and modulus > 1:
            # the scalar API's path: skip the batch machinery, it costs more than the work
            e = exponents if not hasattr(exponents, "__len__") else exponents[0]
            if hasattr(exponents, "__len__") and len(exponents) != 1:
                raise ValueError(
                    f"got 1 bases but {len(exponents)} exponents; they must pair up"
                )
            out = native.powmod(bases, e, modulus, secret and self.constant_time)
            self._account(t0, powmods=1)
            return out
        bases = list(bases)
        shared = not hasattr(exponents, "__len__")
        if not shared:
            exponents = list(exponents)
            if len(exponents) != len(bases):
                raise ValueError(
                    f"got {len(bases)} bases but {len(exponents)} exponents; they must pair up"
                )
            if exponents and all(e == exponents[0] for e in exponents):
                exponents, shared = int(exponents[0]), True  # one exponent: the faster kernel
                ebits = exponents.bit_length()
            else:
                ebits = max((int(e).bit_length() for e in exponents), default=1)
        else:
            exponents = int(exponents)
            ebits = exponents.bit_length()
        if modulus <= 1:
            raise ValueError(f"modulus must be an integer greater than 1, not {modulus}")
        work = 1.5 * max(ebits, 1) * _limbs(modulus) ** 2 * len(bases)

        def chunk(lo: int, hi: int) -> list[int]:
            e = exponents if shared else exponents[lo:hi]
            if native is not None:
                try:
                    return native.powmod(bases[lo:hi], e, modulus, secret and self.constant_time)
                except ValueError as err:
                    # the kernel numbers bases within its slice; report the caller's index
                    raise ValueError(re.sub(r"bases\[(\d+)\]",
                                            lambda g: f"bases[{int(g[1]) + lo}]", str(err))
                                     ) from None
            m = gmpy2.mpz(modulus)
            es = [e] * (hi - lo) if shared else e
            if secret and self.constant_time:
                return [_powmod_sec(b, x, m) for b, x in zip(bases[lo:hi], es, strict=True)]
            return [int(gmpy2.powmod(b, x, m)) for b, x in zip(bases[lo:hi], es, strict=True)]

        try:
            parts = self._run(chunk, self._split(len(bases), work))
        except (ZeroDivisionError, ValueError) as e:  # gmpy2's words for "no inverse"
            if "invert" not in str(e) and not isinstance(e, ZeroDivisionError):
                raise
            raise ValueError(
                "a base has no inverse modulo the modulus, so it cannot take a negative exponent"
            ) from None
        self._account(t0, powmods=len(bases))
        return [x for part in parts for x in part]

    def mulmod(self, a: Sequence[int], b: Sequence[int], modulus: int) -> list[int]:
        if self._native is None:
            return super().mulmod(a, b, modulus)
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"got {len(a)} and {len(b)} operands; they must pair up")
        t0 = time.perf_counter()
        work = 1.2 * _limbs(modulus) ** 2 * len(a)
        parts = self._run(
            lambda lo, hi: self._native.mulmod(a[lo:hi], b[lo:hi], modulus),
            self._split(len(a), work),
        )
        self._account(t0, mulmods=len(a))
        return [x for part in parts for x in part]

    def prodmod(self, values: Sequence[int], modulus: int) -> int:
        if self._native is None:
            return super().prodmod(values, modulus)
        values = list(values)
        t0 = time.perf_counter()
        work = 1.2 * _limbs(modulus) ** 2 * len(values)
        parts = self._run(
            lambda lo, hi: self._native.prodmod(values[lo:hi], modulus),
            self._split(len(values), work),
        )
        result = self._native.prodmod(parts, modulus) if len(parts) > 1 else parts[0]
        self._account(t0, mulmods=len(values))
        return result

    def group_prodmod(
        self, values: Sequence[int], groups: Sequence[int], n_groups: int, modulus: int
    ) -> list[int]:
        if self._native is None:
            return super().group_prodmod(values, groups, n_groups, modulus)
        t0 = time.perf_counter()
        order, starts = group_order(groups, len(values), n_groups)
        total = int(starts[-1])
        native = self._native

        def chunk(lo: int, hi: int) -> list[int]:
            # whole groups whose members start in [lo, hi) of the sorted order
            g0 = int(np.searchsorted(starts[:-1], lo, side="left"))
            g1 = int(np.searchsorted(starts[:-1], hi, side="left"))
            out = []
            for g in range(g0, g1):
                a, b = int(starts[g]), int(starts[g + 1])
                out.append(native.prodmod([values[i] for i in order[a:b]], modulus)
                           if b > a else 1)
            return out

        if n_groups == 0:
            return []
        work = 1.2 * _limbs(modulus) ** 2 * total
        bounds = self._split(total, work)
        # the last range also takes the empty groups at the end; the first starts at group 0
        bounds = [(0 if k == 0 else lo, hi if k < len(bounds) - 1 else total + 1)
                  for k, (lo, hi) in enumerate(bounds)]
        parts = self._run(chunk, bounds)
        self._account(t0, mulmods=total)
        return [x for part in parts for x in part]

    def fixed_base(self, base: int, modulus: int, max_bits: int) -> FixedBasePower:
        if self._native is None:
            if self.constant_time:
                return _SecretPowmodFixedBase(self, base, modulus, max_bits)
            return super().fixed_base(base, modulus, max_bits)
        return _NativeFixedBase(self, base, modulus, max_bits)

    def multiexp(
        self, bases: Sequence[int], exponents: Sequence[Sequence[int]], modulus: int
    ) -> list[int]:
        if self._native is None:
            return super().multiexp(bases, exponents, modulus)
        t0 = time.perf_counter()
        bases = list(bases)
        rows = [list(r) for r in exponents]
        for r, row in enumerate(rows):
            if len(row) != len(bases):
                raise ValueError(
                    f"exponent row {r} has {len(row)} entries but there are {len(bases)} bases"
                )
        if not rows:
            return []
        ebits = max((int(e).bit_length() for row in rows for e in row), default=1)
        work = 0.6 * len(rows) * len(bases) * max(ebits, 1) * _limbs(modulus) ** 2
        # Split the bases, not the rows: every slice shares its per-base powers among all rows,
        # and the partial products combine with one multiplication per row and slice.
        bounds = self._split(len(bases), work)
        if len(bounds) > 1 and min(hi - lo for lo, hi in bounds) < 32:
            bounds = [(0, len(bases))]
        parts = self._run(
            lambda lo, hi: self._native.multiexp(
                bases[lo:hi], [row[lo:hi] for row in rows], modulus
            ),
            bounds,
        )
        m = gmpy2.mpz(modulus)
        out = []
        for r in range(len(rows)):
            pos = gmpy2.mpz(1)
            neg = gmpy2.mpz(1)
            for p, n in parts:
                pos = pos * p[r] % m
                neg = neg * n[r] % m
            if neg != 1:
                try:
                    # the one inversion per output that negative plaintexts cost
                    pos = pos * gmpy2.invert(neg, m) % m
                except ZeroDivisionError:
                    raise ValueError(
                        "a base with a negative exponent has no inverse modulo the modulus"
                    ) from None
            out.append(int(pos % m))
        self._account(t0, multiexp_terms=len(rows) * len(bases))
        return out

    def submit(self, method: str, /, *args, **kwargs) -> concurrent.futures.Future:
        if self.workers > 1:
            return super().submit(method, *args, **kwargs)
        # one core: running it now keeps the "one core" promise and costs nothing
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(getattr(self, method)(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future

    def _account(self, t0: float, **counts: int) -> None:
        with self._pool_lock:
            self.stats.calls += 1
            self.stats.busy_seconds += time.perf_counter() - t0
            for k, v in counts.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def close(self) -> None:
        super().close()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class _NativeFixedBase(FixedBasePower):
    """A fixed-base table in C: ``ceil(max_bits / w) - 1`` multiplications a power."""

    def __init__(self, backend: CPUBackend, base: int, modulus: int, max_bits: int) -> None:
        self.backend, self.base, self.modulus, self.max_bits = backend, base, modulus, max_bits
        self.constant_time = backend.constant_time and modulus > 1
        choose = constant_time_window if self.constant_time else fixed_base_window
        self.window = choose(max_bits, modulus, backend.table_budget)
        self._table = backend._native.FixedBase(base, modulus, max_bits, self.window,
                                                self.constant_time)

    @property
    def counts(self) -> tuple[int, int]:
        """``(products, table entries read)`` by constant-time powers so far: ``windows - 1``
        and ``windows * 2**window`` a power, whatever its exponent."""
        return self._table.sec_counts

    @property
    def table_bytes(self) -> int:
        return self._table.table_bytes

    def pow(self, exponents: Sequence[int]) -> list[int]:
        exponents = list(exponents)
        check_fixed_base_exponents(exponents, self.max_bits)
        t0 = time.perf_counter()
        work = 1.2 * (self.max_bits / self.window) * _limbs(self.modulus) ** 2 * len(exponents)
        parts = self.backend._run(
            lambda lo, hi: self._table.pow(exponents[lo:hi]),
            self.backend._split(len(exponents), work),
        )
        self.backend._account(t0, fixed_base_powmods=len(exponents))
        return [x for part in parts for x in part]


def _powmod_sec(base: int, exponent: int, modulus) -> int:
    """``mpz_powm_sec`` through gmpy2 (odd modulus, positive exponent; a negative one inverts
    the base first, a zero one is 1)."""
    if exponent < 0:
        base, exponent = gmpy2.invert(base, modulus), -exponent
    if exponent == 0:
        return int(1 % modulus)
    return int(gmpy2.powmod_sec(base, exponent, modulus))


class _SecretPowmodFixedBase(FixedBasePower):
    """Without the kernels, constant-time fixed-base powers are gmpy2's ``powmod_sec``."""

    def __init__(self, backend: CPUBackend, base: int, modulus: int, max_bits: int) -> None:
        self.backend, self.base, self.modulus, self.max_bits = backend, base, modulus, max_bits

    def pow(self, exponents: Sequence[int]) -> list[int]:
        exponents = list(exponents)
        check_fixed_base_exponents(exponents, self.max_bits)
        self.backend.stats.fixed_base_powmods += len(exponents)
        return self.backend.powmod([self.base] * len(exponents), exponents, self.modulus,
                                   secret=True)
