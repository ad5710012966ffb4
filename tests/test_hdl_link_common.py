"""The link's shared pieces: the CRC-32 step against zlib and Amaranth's own CRC catalogue, and
the shift-add multiply."""

import random
import zlib

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth import Const, Module, Signal
from amaranth.lib import crc
from amaranth.sim import Simulator

from montpipe.hdl.link_common import FrameBufferSignature, crc32_update, times


def _evaluate(expr_of, *inputs):
    """The value of ``expr_of(*signals)`` with the signals set to ``inputs``."""
    signals = [Signal(32) for _ in inputs]
    m = Module()
    result = Signal(64)
    m.d.comb += result.eq(expr_of(*signals))
    out = {}

    async def bench(ctx):
        for sig, value in zip(signals, inputs):
            ctx.set(sig, value)
        out["value"] = ctx.get(result)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return out["value"]


def test_crc32_update_is_zlib_and_lib_crc_byte_by_byte():
    data = random.Random(1).randbytes(6)
    state = 0xFFFFFFFF
    for byte in data:
        state = _evaluate(crc32_update, state, byte)
    assert state ^ 0xFFFFFFFF == zlib.crc32(data) == crc.catalog.CRC32_ISO_HDLC(8).compute(data)


def test_times_is_multiplication():
    for value, constant in [(0, 1), (5, 2), (1234, 7), (65535, 32), (77, 255)]:
        assert _evaluate(lambda v, c=constant: times(v, c), value) == value * constant


@pytest.mark.parametrize("constant", [0, -3, 2.0])
def test_times_refuses_a_constant_that_is_not_a_positive_integer(constant):
    with pytest.raises(ValueError, match=repr(constant)):
        times(Const(3, 8), constant)


def test_frame_buffer_signature_names_its_size():
    assert FrameBufferSignature(40) == FrameBufferSignature(40) != FrameBufferSignature(41)
    with pytest.raises(ValueError, match=r"at least 3 bytes.*2"):
        FrameBufferSignature(2)
