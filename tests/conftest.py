import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

from montpipe.driver import paillier
from montpipe.driver.backends.cpu import CPUBackend

# Property tests run a few dozen examples each in `make test` (seconds in all); `make fuzz`
# runs them with --hypothesis-profile=fuzz for as long as one cares to wait.
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile("montpipe", max_examples=40, deadline=None,
                          suppress_health_check=_QUIET)
settings.register_profile("fuzz", max_examples=int(os.environ.get("MONTPIPE_FUZZ_EXAMPLES",
                                                                   "4000")), deadline=None,
                          suppress_health_check=_QUIET)
settings.load_profile("montpipe")


def _keypair(bits, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", paillier.SecurityWarning)
        return paillier.generate_paillier_keypair(n_length=bits, **kw)


@pytest.fixture(scope="session")
def keypair_factory():
    cache = {}

    def make(bits, **kw):
        key = (bits, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = _keypair(bits, **kw)
        return cache[key]

    return make


@pytest.fixture(scope="session", params=[256, 512, 1024])
def keypair(request, keypair_factory):
    """Small keys across sizes; the maths does not change with the size."""
    return keypair_factory(request.param)


@pytest.fixture(scope="session")
def keypair2048(keypair_factory):
    return keypair_factory(2048)


@pytest.fixture(scope="session")
def cpu2():
    """A two-thread CPU backend with the parallel split forced on for small batches."""
    backend = CPUBackend(workers=2)
    yield backend
    backend.close()
