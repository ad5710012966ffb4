"""Several lanes behind one pair of streams: requests dealt round-robin, results in order.

Request frame ``k`` goes to lane ``k mod P`` (waiting while that lane is still taking an
earlier frame), and results are taken from the lanes in the same order, so they leave in
request order with their tags whatever the lanes' individual times. Independent
exponentiations thus run on all lanes at once: this is the interleaving that keeps the
multipliers busy (``docs/gateware-plan.md``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .core import ModExpCore, request_layout, result_layout

__all__ = ["ModExpArray"]


class ModExpArray(wiring.Component):
    """``lanes`` :class:`~montpipe.hdl.core.ModExpCore` s sharing a request and a result stream.

    Raises
    ------
    ValueError
        ``lanes`` below 1.
    """

    def __init__(self, lanes: int = 2, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 64, *, ecp5_dsp: bool = False) -> None:
        if not isinstance(lanes, int) or lanes < 1:
            self._MustUse__silence = True
            raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
        self._lanes = lanes
        self.cores = [ModExpCore(width, max_words, window, max_windows, ecp5_dsp=ecp5_dsp)
                      for _ in range(lanes)]
        super().__init__({
            "i_req": In(stream.Signature(request_layout(width))),
            "o_res": Out(stream.Signature(result_layout(width))),
            "busy": Out(1),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        for i, core in enumerate(self.cores):
            m.submodules[f"lane{i}"] = core
        into = Signal(range(self._lanes))   # lane taking the current request frame
        out_of = Signal(range(self._lanes))  # lane whose result leaves next

        for i, core in enumerate(self.cores):
            with m.If(into == i):
                m.d.comb += [
                    core.i_req.valid.eq(self.i_req.valid),
                    core.i_req.payload.eq(self.i_req.payload),
                    self.i_req.ready.eq(core.i_req.ready),
                ]
            with m.If(out_of == i):
                m.d.comb += [
                    self.o_res.valid.eq(core.o_res.valid),
                    self.o_res.payload.eq(core.o_res.payload),
                    core.o_res.ready.eq(self.o_res.ready),
                ]

        with m.If(self.i_req.valid & self.i_req.ready & self.i_req.p.last):
            m.d.sync += into.eq(self._next(into))
        with m.If(self.o_res.valid & self.o_res.ready & self.o_res.p.last):
            m.d.sync += out_of.eq(self._next(out_of))
        busy = 0
        for core in self.cores:
            busy = busy | core.busy | core.o_res.valid
        m.d.comb += self.busy.eq(busy)
        return m

    def _next(self, pointer):
        return Mux(pointer == self._lanes - 1, 0, pointer + 1)
