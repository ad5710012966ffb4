"""Several lanes behind one pair of streams: requests dealt round-robin, results in order.

Request frame ``k`` goes to lane ``k mod P`` and results are taken from the lanes in the same
order, so they leave in request order with their tags whatever the lanes' individual times.
Independent exponentiations thus run on all lanes at once: this is the interleaving that keeps
the multipliers busy (``docs/gateware-plan.md``).

The lanes sit on two chains of registers, not on a broadcast and a multiplexer: stage ``i`` of
the request chain hands a beat to lane ``i`` or to stage ``i + 1``, stage ``i`` of the result
chain takes a beat from lane ``i`` or from stage ``i + 1``, so every net runs between
neighbours however many lanes there are (a broadcast to every lane's memory and a
``P``-to-one result multiplexer across the die were what the full-size builds could not route,
``docs/gateware-plan.md``). A stage takes a beat only when empty: a beat moves one stage a
cycle, a chain carries a beat every two cycles, and no ``ready`` crosses more than one stage.
A lane takes a request frame at two cycles a beat (its own pace for the base), and sends its
result words at two cycles each, so the chains cost each frame ``P`` cycles of latency and no
throughput. Which frame is whose needs no lane number on the wire: stage ``i`` sees the frames
of lanes ``i .. P-1`` in turn, so it keeps one frame and passes ``P - 1 - i``.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._checked import Checked
from .core import ModExpCore, request_layout, result_layout
from .modexp import ModExpLane

__all__ = ["ModExpArray"]


class ModExpArray(Checked, wiring.Component):
    """``lanes`` :class:`~montpipe.hdl.core.ModExpCore` s sharing a request and a result stream.

    Raises
    ------
    ValueError
        ``lanes`` below 1.
    """

    @classmethod
    def check(cls, *, lanes, width, max_words, window, max_windows, **_) -> None:
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
        ModExpLane.check(width=width, max_words=max_words, window=window,
                         max_windows=max_windows)

    def __init__(self, lanes: int = 2, width: int = 16, max_words: int = 8, window: int = 2,
                 max_windows: int = 64, *, ecp5_dsp: bool = False) -> None:
        self._lanes, self._width = lanes, width
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

    def _turns(self, m, i, name, moved_last):
        """Whether stage ``i`` deals with its own lane's frame (else a farther lane's): its
        own frame, then ``P - 1 - i`` others, counted by ``moved_last`` (a frame's last beat
        went through the stage this cycle)."""
        others = self._lanes - 1 - i
        mine = Signal(init=1, name=f"{name}{i}_mine")
        if others == 0:
            return mine
        seen = Signal(range(others), name=f"{name}{i}_seen")
        with m.If(moved_last):
            with m.If(mine):
                m.d.sync += [mine.eq(0), seen.eq(0)]
            with m.Elif(seen == others - 1):
                m.d.sync += mine.eq(1)
            with m.Else():
                m.d.sync += seen.eq(seen + 1)
        return mine

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        for i, core in enumerate(self.cores):
            m.submodules[f"lane{i}"] = core

        # request chain: stage 0 takes from i_req; stage i gives to lane i or to stage i + 1
        rq_valid = [Signal(name=f"rq{i}_valid") for i in range(P)]
        rq = [Signal(request_layout(self._width), name=f"rq{i}") for i in range(P)]
        m.d.comb += self.i_req.ready.eq(~rq_valid[0])
        with m.If(self.i_req.valid & ~rq_valid[0]):
            m.d.sync += [rq_valid[0].eq(1), rq[0].eq(self.i_req.payload)]
        for i, core in enumerate(self.cores):
            to_lane = Signal(name=f"rq{i}_to_lane")
            to_next = Signal(name=f"rq{i}_to_next")
            mine = self._turns(m, i, "rq", (to_lane | to_next) & rq[i].last)
            m.d.comb += [
                core.i_req.valid.eq(rq_valid[i] & mine),
                core.i_req.payload.eq(rq[i]),
                to_lane.eq(rq_valid[i] & mine & core.i_req.ready),
            ]
            if i + 1 < P:
                m.d.comb += to_next.eq(rq_valid[i] & ~mine & ~rq_valid[i + 1])
                with m.If(to_next):
                    m.d.sync += [rq_valid[i + 1].eq(1), rq[i + 1].eq(rq[i])]
            with m.If(to_lane | to_next):
                m.d.sync += rq_valid[i].eq(0)

        # result chain: stage i takes from lane i or from stage i + 1; stage 0 is o_res
        rs_valid = [Signal(name=f"rs{i}_valid") for i in range(P)]
        rs = [Signal(result_layout(self._width), name=f"rs{i}") for i in range(P)]
        m.d.comb += [self.o_res.valid.eq(rs_valid[0]), self.o_res.payload.eq(rs[0])]
        with m.If(self.o_res.valid & self.o_res.ready):
            m.d.sync += rs_valid[0].eq(0)
        for i, core in enumerate(self.cores):
            from_lane = Signal(name=f"rs{i}_from_lane")
            from_prev = Signal(name=f"rs{i}_from_prev")
            moved = Signal(name=f"rs{i}_moved_last")
            mine = self._turns(m, i, "rs", moved)
            m.d.comb += [
                core.o_res.ready.eq(~rs_valid[i] & mine),
                from_lane.eq(core.o_res.valid & ~rs_valid[i] & mine),
            ]
            with m.If(from_lane):
                m.d.sync += [rs_valid[i].eq(1), rs[i].eq(core.o_res.payload)]
            if i + 1 < P:
                m.d.comb += from_prev.eq(rs_valid[i + 1] & ~rs_valid[i] & ~mine)
                with m.If(from_prev):
                    m.d.sync += [rs_valid[i].eq(1), rs[i].eq(rs[i + 1]),
                                 rs_valid[i + 1].eq(0)]
                m.d.comb += moved.eq((from_lane & core.o_res.p.last) |
                                     (from_prev & rs[i + 1].last))
            else:
                m.d.comb += moved.eq(from_lane & core.o_res.p.last)

        busy = 0
        for i, core in enumerate(self.cores):
            busy = busy | core.busy | core.o_res.valid | rq_valid[i] | rs_valid[i]
        m.d.comb += self.busy.eq(busy)
        return m
