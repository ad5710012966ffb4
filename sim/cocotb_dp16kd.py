"""cocotb test of the ``DP16KD`` model (``sim/dp16kd.v``) against the ECP5 memory usage guide as
Yosys maps memories onto the block (``share/lattice/brams_map_16kd.v``), written out here as
:class:`Reference`: widths 1 to 36 (36: port A writes, port B reads, data on both buses), the
write modes, the output register, the byte enables, chip selects, clock enables and resets.

Each block of the harness (:func:`montpipe.sim.gate.dp16kd_harness`) gets its own random
stimulus each step; addresses are drawn from a small window so reads meet written words.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import Timer

from . import _bench


class Reference:
    """DP16KD as 2048 nine-bit units (see ``sim/dp16kd.v`` for the mapping)."""

    def __init__(self, config: dict) -> None:
        self.c = config
        self.mem = [0] * 2048
        self.latch = {"A": 0, "B": 0}
        self.out = {"A": 0, "B": 0}

    def width(self, x: str) -> int:
        return int(self.c.get(f"DATA_WIDTH_{x}", 18))

    def read(self, ad: int, w: int) -> int:
        unit = self.mem[ad >> 3]
        if w == 1:
            return unit >> (ad & 7) & 1
        if w == 2:
            return unit >> (ad & 6) & 3
        if w == 4:
            return unit >> (ad & 4) & 15
        if w == 9:
            return unit
        if w == 18:
            return self.mem[(ad >> 4) << 1 | 1] << 9 | self.mem[(ad >> 4) << 1]
        base = (ad >> 5) << 2
        return sum(self.mem[base + k] << (9 * k) for k in range(4))

    def write(self, ad: int, w: int, di: int) -> None:
        u = ad >> 3
        if w in (1, 2, 4):
            shift = ad & {1: 7, 2: 6, 4: 4}[w]
            mask = ((1 << w) - 1) << shift
            self.mem[u] = self.mem[u] & ~mask | (di << shift) & mask
        elif w == 9:
            self.mem[u] = di & 511
        else:
            units = w // 9
            base = (ad >> (4 if w == 18 else 5)) * units
            for k in range(units):
                if ad >> k & 1:
                    self.mem[base + k] = di >> (9 * k) & 511

    def merged(self, ad: int, w: int, di: int) -> int:
        if w < 18:
            return di & ((1 << w) - 1)
        old = self.read(ad, w)
        for k in range(w // 9):
            if ad >> k & 1:
                old = old & ~(511 << 9 * k) | (di >> 9 * k & 511) << 9 * k
        return old

    def q(self, x: str) -> int:
        return self.out[x] if self.c.get(f"REGMODE_{x}", "NOREG") == "OUTREG" else self.latch[x]

    def outputs(self) -> dict:
        if self.width("B") == 36:
            q = self.q("B")
            return {"doa": q & 0x3FFFF, "dob": q >> 18}
        return {"doa": self.q("A") & 0x3FFFF, "dob": self.q("B") & 0x3FFFF}

    def settle(self, pins: dict) -> dict:
        if self.c.get("RESETMODE", "SYNC") == "ASYNC":
            for x in "AB":
                if pins[f"rst{x.lower()}"]:
                    self.latch[x] = self.out[x] = 0
        return self.outputs()

    def edge(self, pins: dict, clocks: dict) -> dict:
        sync = self.c.get("RESETMODE", "SYNC") == "SYNC"
        writes = []
        for x in "AB":
            if not clocks[x]:
                continue
            p = {k[:-1]: v for k, v in pins.items() if k.endswith(x.lower())}
            w = self.width(x)
            di = pins["dib"] << 18 | pins["dia"] if w == 36 else p["di"]
            cs = int(self.c.get(f"CSDECODE_{x}", "0b000")[2:], 2)
            if p["rst"]:
                self.latch[x] = self.out[x] = 0
                if not sync:              # held in reset: the port does nothing else
                    continue
            elif p["oce"]:
                self.out[x] = self.latch[x]
            if p["ce"] and p["cs"] == cs:
                if not p["rst"]:
                    mode = self.c.get(f"WRITEMODE_{x}", "NORMAL")
                    if not p["we"] or mode == "READBEFOREWRITE":
                        self.latch[x] = self.read(p["ad"], w)
                    elif mode == "WRITETHROUGH":
                        self.latch[x] = self.merged(p["ad"], w, di)
                if p["we"]:
                    writes.append((p["ad"], w, di))
        for write in writes:
            self.write(*write)
        return self.settle(pins)


def _pins(rng: random.Random, config: dict) -> dict:
    pins = {}
    for x in "ab":
        w = int(config.get(f"DATA_WIDTH_{x.upper()}", 18))
        # a window of addresses: the unit bits shared by both ports, the rest random
        ad = rng.randrange(1 << 14) & 0x00FF | 0x0100
        pins.update({f"ad{x}": ad, f"di{x}": rng.getrandbits(18),
                     f"ce{x}": int(rng.random() < 0.85), f"oce{x}": int(rng.random() < 0.8),
                     f"we{x}": int(rng.random() < 0.4), f"rst{x}": int(rng.random() < 0.05),
                     f"cs{x}": int(config.get(f"CSDECODE_{x.upper()}", "0b000")[2:], 2)
                     if rng.random() < 0.9 else rng.randrange(8)})
        if w == 36 and x == "b":
            pins["web"] = 0
    # never both ports writing at once: two writes to one word are undefined on the silicon
    if pins["wea"]:
        pins["web"] = 0
    return pins


@cocotb.test()
async def dp16kd_against_the_guide(dut):
    plan = _bench.plan()
    configs = plan["configs"]
    refs = [Reference(c) for c in configs]
    rng = random.Random(plan["seed"])
    checks = 0
    for k in range(len(configs)):
        getattr(dut, f"clka_{k}").value = 0
        getattr(dut, f"clkb_{k}").value = 0
    for step in range(plan["steps"]):
        stimuli = [_pins(rng, c) for c in configs]
        clocks = [{"A": rng.random() < 0.7, "B": rng.random() < 0.7} for _ in configs]
        for k, pins in enumerate(stimuli):
            for name, value in pins.items():
                getattr(dut, f"{name}_{k}").value = value
        await Timer(1, unit="ns")
        for k, ref in enumerate(refs):
            want = ref.settle(stimuli[k])
            for name, value in want.items():
                got = int(getattr(dut, f"{name}_{k}").value)
                assert got == value, (f"step {step} before the edge, configuration {k} "
                                      f"{configs[k]}: {name} = {got:#x}, expected {value:#x}")
        for k in range(len(configs)):
            getattr(dut, f"clka_{k}").value = int(clocks[k]["A"])
            getattr(dut, f"clkb_{k}").value = int(clocks[k]["B"])
        await Timer(1, unit="ns")
        for k, ref in enumerate(refs):
            want = ref.edge(stimuli[k], clocks[k])
            for name, value in want.items():
                got = int(getattr(dut, f"{name}_{k}").value)
                assert got == value, (f"step {step} after the edge ({clocks[k]}), "
                                      f"configuration {k} {configs[k]}: {name} = {got:#x}, "
                                      f"expected {value:#x}")
        for k in range(len(configs)):
            getattr(dut, f"clka_{k}").value = 0
            getattr(dut, f"clkb_{k}").value = 0
        await Timer(1, unit="ns")
        checks += 2 * len(configs)
    _bench.checked(checks)
    _bench.flush("dp16kd_against_the_guide")
