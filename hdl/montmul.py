"""One lane of the Montgomery array: a word-serial FIOS multiplier on two hard multipliers.

This is the first brick of the gateware (see ``docs/gateware-plan.md``): the lane computes
``a·b·R⁻¹`` modulo an odd ``m`` with ``R = 2^(W·s)``, for a word count ``s <= max_words`` chosen
at run time. Operands are loaded word by word through the write port, the result is read
back through ``rd_addr``/``rd_data``. The datapath is not yet pipelined for clock rate
(the multipliers are behavioural and combinational); the schedule is what the cycle model
(:func:`montpipe.hdl.model.montmul_cycles`) counts, exactly.

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

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["MontMulLane", "Operand"]


class Operand:
    """``wr_sel`` values: which memory a write goes to."""

    A, B, M = 0, 1, 2


class MontMulLane(wiring.Component):
    """Word-serial FIOS Montgomery multiplier (one lane).

    Parameters
    ----------
    width:
        Word width W in bits (the hard multipliers' operand width: 16, 17 or 18 on ECP5).
    max_words:
        Largest run-time word count ``s`` (memory depth).

    Attributes
    ----------
    start, words, mprime:
        Pulse ``start`` for one cycle while idle with ``words`` = ``s`` (3 <= s <= max_words)
        and ``mprime`` = ``-m⁻¹ mod 2^W``.
    busy, done:
        ``busy`` from the cycle after ``start`` until ``done``, a one-cycle pulse.
    wr_en, wr_sel, wr_addr, wr_data:
        Operand load (while idle): ``wr_sel`` is :class:`Operand` ``A``, ``B`` or ``M``.
    rd_addr, rd_data, top:
        Result read (while idle, one cycle latency) and the word above it (0 for inputs
        below ``2m`` with ``R > 4m``).

    Raises
    ------
    ValueError
        ``width`` outside 2..18 or ``max_words`` below 3.
    """

    def __init__(self, width: int = 16, max_words: int = 8) -> None:
        if not isinstance(width, int) or not 2 <= width <= 18:
            self._MustUse__silence = True  # never built, so no "unused elaboratable" warning
            raise ValueError(f"Word width must be an integer from 2 to 18, not {width!r}")
        if not isinstance(max_words, int) or max_words < 3:
            self._MustUse__silence = True
            raise ValueError(f"Word count must be an integer of at least 3, not {max_words!r}")
        self._width = width
        self._max_words = max_words
        super().__init__({
            "start": In(1),
            "words": In(range(max_words + 1)),
            "mprime": In(width),
            "busy": Out(1),
            "done": Out(1),
            "wr_en": In(1),
            "wr_sel": In(2),
            "wr_addr": In(range(max_words)),
            "wr_data": In(width),
            "rd_addr": In(range(max_words)),
            "rd_data": Out(width),
            "top": Out(width + 2),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def max_words(self) -> int:
        return self._max_words

    def elaborate(self, platform):
        m = Module()
        W, S = self._width, self._max_words

        mems = {}
        for name in ("a", "b", "m", "t"):
            mems[name] = Memory(shape=W, depth=S, init=[])
            m.submodules[f"mem_{name}"] = mems[name]
        rd = {k: v.read_port() for k, v in mems.items()}
        wr = {k: v.write_port() for k, v in mems.items()}

        for sel, name in ((Operand.A, "a"), (Operand.B, "b"), (Operand.M, "m")):
            m.d.comb += [
                wr[name].addr.eq(self.wr_addr),
                wr[name].data.eq(self.wr_data),
                wr[name].en.eq(self.wr_en & ~self.busy & (self.wr_sel == sel)),
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
                rd["t"].addr.eq(c), rd["b"].addr.eq(c), rd["m"].addr.eq(c - 1),
                rd["a"].addr.eq(row),
            ]
        with m.Else():
            m.d.comb += rd["t"].addr.eq(self.rd_addr)
        m.d.comb += self.rd_data.eq(rd["t"].data)

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
        m.d.comb += wr["t"].en.eq(0)

        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    s.eq(self.words), mprime.eq(self.mprime),
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
                        wr["t"].addr.eq(b_word - 1), wr["t"].data.eq(x[:W]),
                        wr["t"].en.eq(1),
                    ]
            # closing word s (adder only; B and the write port are free in this cycle)
            with m.If(close):
                m.d.comb += [
                    wr["t"].addr.eq(s - 1), wr["t"].data.eq(x_top[:W]), wr["t"].en.eq(1),
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
