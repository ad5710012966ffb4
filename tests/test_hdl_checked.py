"""Refused gateware parameters raise, and leave no half-made component behind to warn about."""

import gc
import warnings

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth.hdl import Fragment

from montpipe.device.config import DeviceConfig
from montpipe.hdl.array import ModExpArray
from montpipe.hdl.board import BoardTop
from montpipe.hdl.core import ModExpCore
from montpipe.hdl.modexp import ModExpLane
from montpipe.hdl.montmul import MontMulLane
from montpipe.hdl.uart import UARTRx, UARTTx

REFUSED = [
    (lambda: MontMulLane(width=37), "Word width must be an integer from 2 to 36, not 37"),
    (lambda: ModExpLane(16, 8, window=7), "Window must be an integer from 1 to 6 bits, not 7"),
    (lambda: ModExpLane(16, 2), "Word count must be an integer of at least 3, not 2"),
    (lambda: ModExpCore(max_windows=0), "Exponent length must be at least 1 window, not 0"),
    (lambda: ModExpArray(lanes=0), "Lane count must be a positive integer, not 0"),
    (lambda: ModExpArray(2, width=1), "Word width must be an integer from 2 to 36, not 1"),
    (lambda: UARTRx(3), "UART divisor must be an integer of at least 4, not 3"),
    (lambda: UARTTx(divisor=1.5), "UART divisor must be an integer of at least 4, not 1.5"),
    (lambda: BoardTop("de10", DeviceConfig()), "unknown board 'de10'"),
    (lambda: BoardTop("ulx3s-85f", DeviceConfig(clock_mhz=12.5, baud=4_000_000)),
     "4000000 baud needs at least 4 cycles a bit"),
]


@pytest.fixture(autouse=True)
def _warnings_on():
    """Amaranth keeps the unused-elaboratable warning silent until something is elaborated
    (a script that crashed before would otherwise drown its error in warnings)."""
    Fragment.get(UARTRx(4), None)


@pytest.mark.parametrize("make, message", REFUSED)
def test_refused_parameters_raise_without_an_unused_elaboratable(make, message):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=message):
            make()
        gc.collect()
    assert not [w for w in caught if "never used" in str(w.message)], \
        [str(w.message) for w in caught]


def test_a_component_made_and_dropped_still_draws_the_warning():
    """The check above can fail: Amaranth's warning reaches this test's recorder."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MontMulLane(16, 8)
        gc.collect()
    assert any("never used" in str(w.message) for w in caught)
