"""One lane of the Montgomery array: a word-serial FIOS multiplier on two hard multipliers.

This is the first brick of the gateware (see ``docs/gateware-plan.md``): the lane computes
``a·b·R⁻¹`` modulo an odd ``m`` with ``R = 2^(W·s)``, for a word count ``s <= max_words`` chosen
at run time. Operands are loaded word by word into slots through the write port, the result is
read back from its slot through ``rd_slot``/``rd_addr``/``rd_data``. The datapath is not yet
pipelined for clock rate (the multipliers are behavioural and combinational); the schedule is
what the cycle model (:func:`montpipe.hdl.model.montmul_cycles`) counts, exactly.

Two multipliers, and both do useful work nearly every cycle: **A** forms ``a_i·b_j`` and
**B** forms the row's quotient digit and then ``q_i·m_j``, one cycle behind A. Row ``i`` takes
``s + 1`` cycles (``c`` counts them from 0):

* ``c = 0 .. s−1`` issue the reads of ``t_c``, ``b_c`` (and ``a_i`` at ``c = 0``); ``m`` is read
  one cycle later (``m_{c−1}``);
* ``c = 1 .. s`` (A, word ``j = c − 1``) ``a_i·b_j`` and ``t_j`` are registered for B;
  at ``c = 1`` B forms ``q_i = ((t_0 + a_i·b_0) mod 2^W)·m' mod 2^W``;
* one cycle after A (B, word ``j``) ``(C, t_{j−1}) = t_j + a_i·b_j + q_i·m_j + C``: for the
  last word this falls on the next row's ``c = 0``;
* the next row's ``c = 1`` closes word ``s``: ``(t_s, t_{s−1}) = t_s + C`` (no multiplier).

B is busy ``s + 1`` cycles a row (``q_i`` and ``s`` products), exactly the ``2s² + s``
products of the issue's bound over two multipliers. Row 0 reads ``t`` as zero, so ``t`` needs
no clearing between multiplications.
"""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["MontMulLane"]


class MontMulLane(wiring.Component):
    """Word-serial FIOS Montgomery multiplier (one lane) over a memory of operand slots.

    Operands live in ``slots`` vectors of ``max_words`` words; a multiplication names the slots
    of ``a``, ``b`` and the result ``t`` (``t`` must differ from both), so an exponentiation
    sequencer chains products without copying. The modulus has a memory of its own.

    Parameters
    ----------
    width:
        Word width W in bits (the hard multipliers' operand width: 16, 17 or 18 on ECP5).
    max_words:
        Largest run-time word count ``s`` (words per slot).
    slots:
        Number of operand vectors.

    Attributes
    ----------
    start, words, mprime, a_slot, b_slot, t_slot:
        Pulse ``start`` for one cycle while idle with ``words`` = ``s``
        (3 <= s <= max_words), ``mprime`` = ``-m⁻¹ mod 2^W`` and the three slots.
    busy, done:
        ``busy`` from the cycle after ``start`` until ``done``, a one-cycle pulse.
    wr_en, wr_mod, wr_slot, wr_addr, wr_data:
        Load a word while idle: into the modulus memory with ``wr_mod``, else into a slot.
    rd_slot, rd_addr, rd_data, rd_mod_data, top:
        Read a slot word and the modulus word at ``rd_addr`` while idle (one cycle latency);
        ``top`` is the word above the last result (0 for inputs below ``2m``).

    Raises
    ------
    ValueError
        ``width`` outside 2..18, ``max_words`` below 3 or ``slots`` below 3.
    """

    def __init__(self, width: int = 16, max_words: int = 8, slots: int = 3) -> None:
        if not isinstance(width, int) or not 2 <= width <= 18:
            self._MustUse__silence = True  # never built, so no "unused elaboratable" warning
            raise ValueError(f"Word width must be an integer from 2 to 18, not {width!r}")
        if not isinstance(max_words, int) or max_words < 3:
            self._MustUse__silence = True
            raise ValueError(f"Word count must be an integer of at least 3, not {max_words!r}")
        if not isinstance(slots, int) or slots < 3:
            self._MustUse__silence = True
            raise ValueError(f"Slot count must be an integer of at least 3, not {slots!r}")
        self._width = width
        self._max_words = max_words
        self._slots = slots
        super().__init__({
            "start": In(1),
            "words": In(range(max_words + 1)),
            "mprime": In(width),
            "a_slot": In(range(slots)),
            "b_slot": In(range(slots)),
            "t_slot": In(range(slots)),
            "busy": Out(1),
            "done": Out(1),
            "wr_en": In(1),
            "wr_mod": In(1),
            "wr_slot": In(range(slots)),
            "wr_addr": In(range(max_words)),
            "wr_data": In(width),
            "rd_slot": In(range(slots)),
            "rd_addr": In(range(max_words)),
            "rd_data": Out(width),
            "rd_mod_data": Out(width),
            "top": Out(width + 2),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def max_words(self) -> int:
        return self._max_words

    @property
    def slots(self) -> int:
        return self._slots

    def elaborate(self, platform):
        m = Module()
        W, S = self._width, self._max_words

        N = self._slots
        vec = Memory(shape=W, depth=N * S, init=[])
        mod = Memory(shape=W, depth=S, init=[])
        m.submodules.vec = vec
        m.submodules.mod = mod
        rd = {"a": vec.read_port(), "b": vec.read_port(), "t": vec.read_port(),
              "m": mod.read_port()}
        wr_v, wr_m = vec.write_port(), mod.write_port()

        # slot k starts at word k*S: a table of constants, not a multiplier (yosys would spend
        # a MULT18X18D on each slot * S)
        slot_base = Array(Const(k * S, range(N * S)) for k in range(N))
        a_base = Signal(range(N * S))
        b_base = Signal(range(N * S))
        t_base = Signal(range(N * S))
        m.d.comb += [
            wr_m.addr.eq(self.wr_addr), wr_m.data.eq(self.wr_data),
            wr_m.en.eq(self.wr_en & self.wr_mod & ~self.busy),
        ]

        s = Signal(range(S + 1))
        mprime = Signal(W)
        row = Signal(range(S + 1))      # i; == s during the two closing cycles
        c = Signal(range(S + 2))        # cycle within the row
        first_row = Signal()
        a_i = Signal(W)
        q = Signal(W)
        carry = Signal(W + 2)
        t_top = Signal(W + 2)
        # A -> B stage: word index, t_j and a_i*b_j, one cycle old
        b_valid = Signal()
        b_word = Signal(range(S))
        b_t = Signal(W)
        b_pa = Signal(2 * W)
        close = Signal()                # word s of the row B just finished is due
        m.d.comb += self.top.eq(t_top)

        with m.If(self.busy):
            m.d.comb += [
                rd["t"].addr.eq(t_base + c), rd["b"].addr.eq(b_base + c),
                rd["m"].addr.eq(c - 1), rd["a"].addr.eq(a_base + row),
            ]
        with m.Else():
            m.d.comb += [
                rd["t"].addr.eq(slot_base[self.rd_slot] + self.rd_addr),
                rd["m"].addr.eq(self.rd_addr),
            ]
        m.d.comb += [self.rd_data.eq(rd["t"].data), self.rd_mod_data.eq(rd["m"].data)]

        in_row = (row < s) & (c >= 1) & (c <= s)
        t_j = Mux(first_row, 0, rd["t"].data)
        a_now = Mux(c == 1, rd["a"].data, a_i)
        prod_a = a_now * rd["b"].data                          # multiplier A
        q_in = Signal(W)
        m.d.comb += q_in.eq((t_j + prod_a)[:W])
        # multiplier B: the quotient digit at c == 1, q_i * m_j otherwise
        b_lhs = Mux(in_row & (c == 1), q_in, q)
        b_rhs = Mux(in_row & (c == 1), mprime, rd["m"].data)
        prod_b = Signal(2 * W)
        m.d.comb += prod_b.eq(b_lhs * b_rhs)
        x = b_t + b_pa + prod_b + carry
        x_top = t_top + carry

        m.d.sync += self.done.eq(0)
        # the slot memory's one write port: loads while idle, t while busy
        with m.If(~self.busy):
            m.d.comb += [
                wr_v.addr.eq(slot_base[self.wr_slot] + self.wr_addr), wr_v.data.eq(self.wr_data),
                wr_v.en.eq(self.wr_en & ~self.wr_mod),
            ]

        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    s.eq(self.words), mprime.eq(self.mprime),
                    a_base.eq(slot_base[self.a_slot]), b_base.eq(slot_base[self.b_slot]),
                    t_base.eq(slot_base[self.t_slot]),
                    row.eq(0), c.eq(0), first_row.eq(1),
                    t_top.eq(0), carry.eq(0), b_valid.eq(0), close.eq(0),
                    self.busy.eq(1),
                ]
        with m.Else():
            # stage A
            m.d.sync += b_valid.eq(in_row)
            with m.If(in_row):
                m.d.sync += [b_word.eq(c - 1), b_t.eq(t_j), b_pa.eq(prod_a)]
                with m.If(c == 1):
                    m.d.sync += [a_i.eq(rd["a"].data), q.eq(prod_b[:W])]
            # stage B (one cycle behind A)
            m.d.sync += close.eq(b_valid & (b_word == s - 1))
            with m.If(b_valid):
                m.d.sync += carry.eq(x[W:])
                with m.If(b_word != 0):
                    m.d.comb += [
                        wr_v.addr.eq(t_base + b_word - 1), wr_v.data.eq(x[:W]),
                        wr_v.en.eq(1),
                    ]
            # closing word s (adder only; B and the write port are free in this cycle)
            with m.If(close):
                m.d.comb += [
                    wr_v.addr.eq(t_base + s - 1), wr_v.data.eq(x_top[:W]), wr_v.en.eq(1),
                ]
                m.d.sync += t_top.eq(x_top[W:])
            # advance: s rows of s + 1 cycles, then two closing cycles
            with m.If(row == s):
                with m.If(c == 1):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                with m.Else():
                    m.d.sync += c.eq(c + 1)
            with m.Elif(c == s):
                m.d.sync += [c.eq(0), row.eq(row + 1)]
                with m.If(row == 0):
                    m.d.sync += first_row.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + 1)
        return m
