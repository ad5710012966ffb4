"""The link's comb sequencer in front of the lanes, on Amaranth's simulator: its packet
streams give every job's power exactly, and the lanes take them in exactly the cycles the
model counts for those packets (``packet_cycles``)."""

import random

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from amaranth import Elaboratable, Module
from amaranth.lib.memory import Memory
from stream_drivers import monitor, simulate
from test_hdl_link import comb_digits, comb_table

from montpipe.device.model import Command, comb_commands, montgomery_words, mprime, packet_cycles
from montpipe.hdl.array import ModExpArray
from montpipe.hdl.core import Status
from montpipe.hdl.link_comb import DIGITS_OFFSET, CombSequencer

W, S = 16, 6


class Bench(Elaboratable):
    """The sequencer feeding an array, with the request buffer and the context's modulus as
    memories of their own (one cycle of latency, as the link's)."""

    def __init__(self, lanes, entries, body, modulus_words):
        self.seq = CombSequencer(width=W, max_words=S, lanes=lanes, table_entries=entries,
                                 buffer_bytes=len(body) + 1)
        self.array = ModExpArray(lanes, W, S, 2, 8)
        self.body, self.modulus_words = body, modulus_words

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq, m.submodules.array = seq, array = self.seq, self.array
        m.submodules.buf = buf = Memory(shape=8, depth=len(self.body), init=self.body)
        m.submodules.mod = mod = Memory(shape=W, depth=S, init=self.modulus_words)
        br, mr = buf.read_port(), mod.read_port()
        m.d.comb += [br.addr.eq(seq.buf_addr), seq.buf_data.eq(br.data),
                     mr.addr.eq(seq.m_addr), seq.m_data.eq(mr.data),
                     array.i_req.valid.eq(seq.o_req.valid),
                     array.i_req.payload.eq(seq.o_req.payload),
                     seq.o_req.ready.eq(array.i_req.ready),
                     array.o_res.ready.eq(1), seq.o_words.ready.eq(1)]
        return m


async def load_and_start(ctx, seq, table, **fields):
    """Write ``table`` (entries of ``fields["words"]`` words) into the sequencer a word a
    cycle, set the comb's ``fields`` and pulse ``start``."""
    for e, value in enumerate(table):
        for k in range(fields["words"]):
            ctx.set(seq.tw_en, 1)
            ctx.set(seq.tw_entry, e)
            ctx.set(seq.tw_word, k)
            ctx.set(seq.tw_data, (value >> (W * k)) & 0xFFFF)
            await ctx.tick()
    ctx.set(seq.tw_en, 0)
    for name, value in fields.items():
        ctx.set(getattr(seq, name), value)
    ctx.set(seq.start, 1)
    await ctx.tick()
    ctx.set(seq.start, 0)


@pytest.mark.parametrize("lanes, jobs, bits, tables, steps", [
    (1, 1, 2, 2, 3), (2, 2, 3, 1, 2), (3, 2, 2, 2, 2), (4, 4, 1, 3, 2)])
def test_comb_streams_are_exact(lanes, jobs, bits, tables, steps):
    rng = random.Random(lanes * 7 + jobs)
    mod = rng.getrandbits(70) | 1 | (1 << 69)
    s = montgomery_words(mod.bit_length(), W)
    g = rng.randrange(2, mod)
    e_bits = bits * tables * steps
    alphas = [rng.getrandbits(e_bits) for _ in range(jobs)]
    alphas[0] = 0
    digits = b"".join(comb_digits(a, bits, tables, steps) for a in alphas)
    body = bytes(DIGITS_OFFSET) + digits
    table = comb_table(g, mod, bits, tables, steps)
    dut = Bench(lanes, len(table), body, [(mod >> (W * k)) & 0xFFFF for k in range(S)])
    seq = dut.seq
    results, words, first, last = [], [], [], []
    current = []

    def taken_result(payload, tick):
        current.append(payload.data)
        if payload.last:
            results.append((payload.tag, payload.status, list(current)))
            current.clear()
            last.append(tick)

    def offered(payload, tick):
        if not first:
            first.append(tick)

    async def bench(ctx):
        await load_and_start(ctx, seq, table, tag=500, words=s, mprime=mprime(mod, W),
                             steps=steps, tables=tables, bits=bits, jobs=jobs,
                             job_bytes=steps * tables)
        n = 0
        while ctx.get(seq.busy) or ctx.get(dut.array.busy):
            if ctx.get(seq.o_words.valid):
                words.append((ctx.get(seq.o_words.payload.words),
                              ctx.get(seq.o_words.payload.comb)))
            await ctx.tick()
            n += 1
            assert n < 200_000, "the comb never finished"

    simulate(dut, bench, processes=[monitor(dut.array.o_res, taken_result),
                                    monitor(seq.o_req, offered)])
    commands = comb_commands(lanes, jobs, steps, tables)
    assert len(results) == len(commands)
    outs = [r for r in results if len(r[2]) > 1]
    assert [t for t, _, _ in outs] == [500 + j for j in range(jobs)]
    assert [sum(w << (W * k) for k, w in enumerate(ws)) for _, _, ws in outs] == \
        [pow(g, a, mod) for a in alphas]
    assert all(r[2] == [0] and r[1] == Status.OK for r in results if len(r[2]) == 1)
    assert words == [(s, 1)] * jobs
    assert last[-1] - first[0] + 1 == packet_cycles(lanes, s, commands, W)


class StallBench(Elaboratable):
    """The sequencer alone, its packets taken by a testbench at random."""

    def __init__(self, lanes, entries, body, modulus_words):
        self.seq = CombSequencer(width=W, max_words=S, lanes=lanes, table_entries=entries,
                                 buffer_bytes=len(body) + 1)
        self.body, self.modulus_words = body, modulus_words

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.seq
        m.submodules.buf = buf = Memory(shape=8, depth=len(self.body), init=self.body)
        m.submodules.mod = mod = Memory(shape=W, depth=S, init=self.modulus_words)
        br, mr = buf.read_port(), mod.read_port()
        m.d.comb += [br.addr.eq(seq.buf_addr), seq.buf_data.eq(br.data),
                     mr.addr.eq(seq.m_addr), seq.m_data.eq(mr.data)]
        return m


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_operands_survive_a_stalling_chain(seed):
    """However the chain stalls — on a header beat, on an operand word, many cycles or none —
    every packet carries its table entry or the modulus word for word: the word read ahead of
    the one on offer is the one the packet wants next. (The lanes' own chain stalls only in
    the pattern the exactness test above sees; this sink stalls at random.)"""
    rng = random.Random(seed)
    lanes, jobs, bits, tables, steps = 2, 2, 2, 2, 2
    mod = rng.getrandbits(80) | 1 | (1 << 79)
    table = [rng.getrandbits(W * S) for _ in range(tables << bits)]
    job_digits = [bytes(rng.randrange(1 << bits) for _ in range(steps * tables))
                  for _ in range(jobs)]
    body = bytes(DIGITS_OFFSET) + b"".join(job_digits)
    mod_words = [(mod >> (W * k)) & 0xFFFF for k in range(S)]
    dut = StallBench(lanes, len(table), body, mod_words)
    seq = dut.seq
    beats = []

    async def bench(ctx):
        ctx.set(seq.o_words.ready, 1)
        await load_and_start(ctx, seq, table, tag=7, words=S, mprime=1, steps=steps,
                             tables=tables, bits=bits, jobs=jobs, job_bytes=steps * tables)
        n = 0
        while ctx.get(seq.busy):
            stall = rng.random() < 0.6
            ctx.set(seq.o_req.ready, 0 if stall else 1)
            if ctx.get(seq.o_req.valid) and not stall:
                beats.append((ctx.get(seq.o_req.payload.data), ctx.get(seq.o_req.payload.last)))
            await ctx.tick()
            n += 1
            assert n < 100_000, "the comb never finished"

    simulate(dut, bench)
    packets, current = [], []
    for data, last in beats:
        current.append(data)
        if last:
            packets.append(current)
            current = []
    assert not current
    commands = comb_commands(lanes, jobs, steps, tables)
    assert len(packets) == len(commands)
    used = [0] * jobs            # digits each job's packets have used: step down, table 0 first
    for packet, command in zip(packets, commands, strict=True):
        kind = Command(packet[3] >> 1)
        assert kind == command
        operand = packet[5:]
        if kind == Command.BEGIN:
            assert operand == mod_words
        elif kind in (Command.LOAD, Command.MUL):
            job = packet[0] - 7
            index = used[job]
            used[job] += 1
            digit = job_digits[job][index]
            t = index % tables
            value = table[(t << bits) | digit]
            assert operand == [(value >> (W * k)) & 0xFFFF for k in range(S)], (kind, job)
        else:
            assert operand == []
    assert used == [steps * tables] * jobs
