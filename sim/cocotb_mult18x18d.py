"""cocotb test of the ``MULT18X18D`` model (``sim/mult18x18d.v``) against the ECP5 sysDSP
documentation, written out independently here as :class:`Reference`.

The harness (:func:`montpipe.sim.gate.mult18x18d_harness`) holds one block per configuration
of the plan, all on the same pins. Every step sets random inputs (clock enables and resets
mostly on), checks the outputs before any clock edge (the unregistered paths, and an
asynchronous reset clearing at once), then raises a random subset of ``CLK0``–``CLK3`` and
checks again: each register stage loads on its own clock's rising edge only, holds while its
clock enable is low, clears while its reset is high (over the enable), and ``P`` follows the
inputs by exactly the number of stages on the path. Directed steps add the signed extremes.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import Timer

from . import _bench

MASK18, MASK36 = (1 << 18) - 1, (1 << 36) - 1


def _index(value: str) -> int | None:
    """``"CLK2"`` → 2, ``"NONE"`` → None."""
    return None if value == "NONE" else int(value[-1])


class _Stage:
    """One register stage as the guide describes it (``clk`` None: not registered)."""

    def __init__(self, config: dict, name: str) -> None:
        self.clk = _index(config.get(f"REG_{name}_CLK", "NONE"))
        self.ce = _index(config.get(f"REG_{name}_CE", "CE0"))
        self.rst = _index(config.get(f"REG_{name}_RST", "RST0"))
        self.value = 0

    def out(self, d: int) -> int:
        return d if self.clk is None else self.value


class Reference:
    """MULT18X18D per Lattice's ECP5 sysDSP usage guide, as a cycle model."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.a, self.b, self.c = (_Stage(config, n) for n in ("INPUTA", "INPUTB", "INPUTC"))
        self.a2 = _Stage(config, "INPUTA")          # the CAS_MATCH_REG second A register
        self.m, self.o = _Stage(config, "PIPELINE"), _Stage(config, "OUTPUT")
        self.stages = (self.a, self.a2, self.b, self.c, self.m, self.o)
        self.async_reset = config.get("RESETMODE", "SYNC") == "ASYNC"

    def _paths(self, pins: dict) -> dict:
        """Every stage's input and the outputs, from the stages' contents and the pins."""
        mode = self.config.get("SOURCEB_MODE", "B_SHIFT")
        c_q = self.c.out(pins["c"])
        a_src = pins["sria"] if pins["sourcea"] else pins["a"]
        if mode == "C_SHIFT":
            b_src = pins["srib"] if pins["sourceb"] else c_q
        elif mode == "B_C_DYNAMIC":
            b_src = c_q if pins["sourceb"] else pins["srib"]
        else:
            b_src = pins["srib"] if pins["sourceb"] else pins["b"]
        a_d = pins["signeda"] << 18 | a_src
        b_d = pins["signedb"] << 18 | b_src
        a_q, b_q = self.a.out(a_d), self.b.out(b_d)

        def value(q):
            v = q & MASK18
            return v - (1 << 18) if q >> 18 and v >> 17 else v

        product = (value(a_q) * value(b_q)) & MASK36
        m_d = ((a_q >> 18) | (b_q >> 18)) << 36 | product
        m_q = self.m.out(m_d)
        o_d = m_q & MASK36
        a2_d = a_q & MASK18
        sroa = self.a2.out(a2_d) if self.config.get("CAS_MATCH_REG") == "TRUE" else a_q & MASK18
        return {"d": {id(self.a): a_d, id(self.a2): a2_d, id(self.b): b_d,
                      id(self.c): pins["c"], id(self.m): m_d, id(self.o): o_d},
                "p": self.o.out(o_d), "signedp": m_q >> 36, "roa": a_q & MASK18,
                "rob": b_q & MASK18, "roc": c_q, "sroa": sroa, "srob": b_q & MASK18}

    def settle(self, pins: dict) -> dict:
        """The outputs with no clock edge (an asynchronous reset acts at once)."""
        if self.async_reset:
            for stage in self.stages:
                if stage.clk is not None and pins["rst"] >> stage.rst & 1:
                    stage.value = 0
        return self._paths(pins)

    def edge(self, pins: dict, clocks: int) -> dict:
        """Rising edges on the clocks set in ``clocks``: every stage samples, then loads."""
        d = self._paths(pins)["d"]
        for stage in self.stages:
            if stage.clk is None or not clocks >> stage.clk & 1:
                continue
            if pins["rst"] >> stage.rst & 1:
                stage.value = 0
            elif pins["ce"] >> stage.ce & 1:
                stage.value = d[id(stage)]
        return self.settle(pins)


def _random_pins(rng: random.Random) -> dict:
    def control():                      # mostly on, sometimes off
        return sum((rng.random() < 0.8) << k for k in range(4))

    return {"a": rng.getrandbits(18), "b": rng.getrandbits(18), "c": rng.getrandbits(18),
            "sria": rng.getrandbits(18), "srib": rng.getrandbits(18),
            "signeda": rng.getrandbits(1), "signedb": rng.getrandbits(1),
            "sourcea": int(rng.random() < 0.2), "sourceb": int(rng.random() < 0.3),
            "ce": control(), "rst": sum((rng.random() < 0.1) << k for k in range(4))}


def _directed() -> list[dict]:
    """The signed and unsigned extremes, enables on, resets off."""
    out = []
    for a, b in ((1 << 17, 1 << 17), (MASK18, MASK18), (MASK18, 1), (1 << 17, MASK18),
                 ((1 << 17) - 1, (1 << 17) - 1), (0, MASK18)):
        for sa, sb in ((0, 0), (1, 1), (1, 0), (0, 1)):
            out.append({"a": a, "b": b, "c": 0, "sria": 0, "srib": 0, "signeda": sa,
                        "signedb": sb, "sourcea": 0, "sourceb": 0, "ce": 15, "rst": 0})
    return out


@cocotb.test()
async def mult18x18d_against_the_guide(dut):
    plan = _bench.plan()
    configs = plan["configs"]
    refs = [Reference(c) for c in configs]
    rng = random.Random(plan["seed"])
    pins = {"a": 0, "b": 0, "c": 0, "sria": 0, "srib": 0, "signeda": 0, "signedb": 0,
            "sourcea": 0, "sourceb": 0, "ce": 0, "rst": 0}

    def drive(p: dict) -> None:
        for name, value in p.items():
            getattr(dut, name).value = value

    def check(k: int, got_from: str, expected: dict, step: int) -> None:
        for name, want in expected.items():
            if name == "d":
                continue
            got = int(getattr(dut, f"{name}_{k}").value)
            assert got == want, (f"step {step} ({got_from}), configuration {k} "
                                 f"{configs[k]}: {name} = {got:#x}, the guide says {want:#x}")

    dut.clk.value = 0
    drive(pins)
    # an initial reset of every stage, then directed and random steps
    steps = [{**pins, "rst": 15}] + _directed() + [_random_pins(rng)
                                                   for _ in range(plan["steps"])]
    checks = 0
    for step, p in enumerate(steps):
        drive(p)
        await Timer(1, unit="ns")
        for k, ref in enumerate(refs):
            check(k, "before the edge", ref.settle(p), step)
        clocks = 15 if step <= len(_directed()) else rng.randrange(16)
        dut.clk.value = clocks
        await Timer(1, unit="ns")
        for k, ref in enumerate(refs):
            check(k, f"after edges on {clocks:04b}", ref.edge(p, clocks), step)
        dut.clk.value = 0
        await Timer(1, unit="ns")
        checks += 2 * len(refs)
    _bench.checked(checks)
    _bench.flush("mult18x18d_against_the_guide")
