"""One lane of the Montgomery array: a pipelined word-serial FIOS multiplier on two multipliers.

The lane computes ``a·b·R⁻¹`` modulo an odd ``m`` with ``R = 2^(W·s)``, for a word count
``s <= max_words`` chosen at run time (see ``docs/gateware-plan.md``). Operands are loaded word
by word into slots through the write port, the result is read back from its slot through
``rd_slot``/``rd_addr``/``rd_data``. The cycle model is
:func:`montpipe.device.model.montmul_cycles`, exact.

Pipeline of word ``j`` of row ``i`` (stage ``k`` = ``k`` cycles after its reads issue):

* 0: read ``t_j``, ``b_j`` from the slot memory (``a_i`` was read through the ``t`` port in
  the gap before its row, so the slots need two read ports, not three);
* 1, 2: two fabric registers after the block-RAM outputs (row 0's ``t`` is zeroed at stage 4);
* 3: multiplier **A**'s input registers (``a_i``, ``b_j``); 4: its output register;
* 4: read ``m_j``; 5: for word 0 the quotient's input ``(t_0 + a_i·b_0) mod 2^W`` goes into
  multiplier **B**'s input registers with ``m'``; 7: ``q_i`` is out of B, ``q_i·m_0`` goes in;
* 7: ``m_j`` registered; B's inputs take ``(q_i, m_j)``; 9: ``q_i·m_j`` is out of B;
* 9: the three-input sum ``t_j + a_i·b_j + q_i·m_j`` is registered;
* 10: the carry loop ``(C, t_{j−1}) = sum + C`` — the only add in the loop (carry-select,
  split at W bits); 11: the write;
* 11 (last word only): ``(t_s, t_{s−1}) = t_s + C``, written at 12.

Every multiplier has registered inputs and outputs and nothing but two registers sit after a
block-RAM read. Rows issue every ``max(s + 2, ROW_GAP)`` cycles: B is busy ``s + 1`` cycles a
row (the digit and ``s`` products) and idles one waiting for the digit; a short row also waits
until the previous row has written the words it reads.

That is the table for W ≤ 18, where a multiplier is one ``MULT18X18D`` (latency ``L = 2``).
Above 18 bits each multiplier is four blocks and three more register stages (``L = 5``: a
fabric register in front of the blocks, two summing the partial products;
:func:`montpipe.device.model.pipeline`): A's product, the quotient's input and B's first input sit
at stage ``3 + L``, the digit and B's second input at ``3 + 2L``, ``q_i·m_j`` and the sum at
``3 + 3L``, the carry loop at ``4 + 3L``; rows last ``max(s + L, row_gap)`` cycles.
"""

from __future__ import annotations

from amaranth import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..device.model import MAX_WIDTH, pipeline
from ._checked import Checked

__all__ = ["MontMulLane"]


class MontMulLane(Checked, wiring.Component):
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
    ecp5_dsp:
        Instantiate ``MULT18X18D`` blocks with their input and output registers (synthesis for
        ECP5); the default builds the same timing from fabric registers (simulation).

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

    @classmethod
    def check(cls, *, width, max_words, slots, **_) -> None:
        if not isinstance(width, int) or not 2 <= width <= MAX_WIDTH:
            raise ValueError(f"Word width must be an integer from 2 to {MAX_WIDTH}, "
                             f"not {width!r}")
        if not isinstance(max_words, int) or max_words < 3:
            raise ValueError(f"Word count must be an integer of at least 3, not {max_words!r}")
        if not isinstance(slots, int) or slots < 3:
            raise ValueError(f"Slot count must be an integer of at least 3, not {slots!r}")

    def __init__(self, width: int = 16, max_words: int = 8, slots: int = 3, *,
                 ecp5_dsp: bool = False) -> None:
        self._width = width
        self._max_words = max_words
        self._slots = slots
        self._ecp5_dsp = ecp5_dsp
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

    @property
    def stride(self) -> int:
        """Words from one slot's start to the next's: ``max_words`` rounded up to a power of
        two when that costs no block RAM (all slots within one 1 024-deep column, as at
        W = 36: 8 slots of 114 words, 128 apart), else ``max_words``. At a power of two a slot
        address is the slot's bits above the word's, an OR, where an add would sit in front of
        every block-RAM address."""
        pow2 = 1 << (self._max_words - 1).bit_length()
        return pow2 if self._slots * pow2 <= 1024 else self._max_words

    def _multiplier(self, m: Module, name: str, a, b):
        """``a × b`` with registered inputs and a registered output, ``pipeline(W).latency``
        cycles: two for W ≤ 18, five above (a fabric register in front of the blocks, so the
        selects and adds that make the operands never share a path with the route to a DSP
        row; four 18 × 18 partial products; their middle pair summed and registered; the three
        combined and registered).

        With ``ecp5_dsp`` ``MULT18X18D`` blocks with their own input and output registers
        (yosys does not pull fabric registers into the DSP); otherwise the same timing in
        fabric registers around a behavioural multiplier, for simulation and other targets.
        """
        W = self._width
        product = Signal(2 * W, name=f"{name}_p", reset_less=True)
        if not self._ecp5_dsp:
            ra = Signal(W, name=f"{name}_a", reset_less=True)
            rb = Signal(W, name=f"{name}_b", reset_less=True)
            if W <= 18:
                m.d.sync += [ra.eq(a), rb.eq(b), product.eq(ra * rb)]
            else:
                fa = Signal(W, name=f"{name}_fa", reset_less=True)
                fb = Signal(W, name=f"{name}_fb", reset_less=True)
                p2 = Signal(2 * W, name=f"{name}_p2", reset_less=True)
                p3 = Signal(2 * W, name=f"{name}_p3", reset_less=True)
                m.d.sync += [fa.eq(a), fb.eq(b), ra.eq(fa), rb.eq(fb), p2.eq(ra * rb),
                             p3.eq(p2), product.eq(p3)]
            return product
        if W <= 18:
            m.d.comb += product.eq(self._mult18(m, name, a, b))
            return product
        fa = Signal(W, name=f"{name}_fa", reset_less=True)
        fb = Signal(W, name=f"{name}_fb", reset_less=True)
        m.d.sync += [fa.eq(a), fb.eq(b)]
        a_lo, a_hi, b_lo, b_hi = fa[:18], fa[18:W], fb[:18], fb[18:W]
        lo = Signal(36, name=f"{name}_lo", reset_less=True)
        hi = Signal(36, name=f"{name}_hi", reset_less=True)
        mid = Signal(37, name=f"{name}_mid", reset_less=True)
        m.d.sync += [
            lo.eq(self._mult18(m, f"{name}_ll", a_lo, b_lo)),
            hi.eq(self._mult18(m, f"{name}_hh", a_hi, b_hi)),
            mid.eq(self._mult18(m, f"{name}_lh", a_lo, b_hi) +
                   self._mult18(m, f"{name}_hl", a_hi, b_lo)),
            product.eq(Cat(lo, hi) + (mid << 18)),
        ]
        return product

    def _mult18(self, m: Module, name: str, a, b):
        """One ``MULT18X18D``, unsigned, input and output registers: ``a × b`` two cycles on."""
        a18, b18, p36 = Signal(18, name=f"{name}_a18"), Signal(18, name=f"{name}_b18"), \
            Signal(36, name=f"{name}_p36")
        m.d.comb += [a18.eq(a), b18.eq(b)]
        ports = {f"i_A{k}": a18[k] for k in range(18)}
        ports.update({f"i_B{k}": b18[k] for k in range(18)})
        ports.update({f"i_C{k}": 0 for k in range(18)})
        ports.update({f"o_P{k}": p36[k] for k in range(36)})
        for k in range(4):
            ports[f"i_CLK{k}"] = ClockSignal() if k == 0 else 0
            ports[f"i_CE{k}"] = 1 if k == 0 else 0
            ports[f"i_RST{k}"] = 0
        ports.update(i_SIGNEDA=0, i_SIGNEDB=0, i_SOURCEA=0, i_SOURCEB=0)
        m.submodules[name] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_CAS_MATCH_REG="FALSE", p_MULT_BYPASS="DISABLED", p_GSR="DISABLED",
            p_RESETMODE="SYNC",
            **ports,
        )
        return p36

    def elaborate(self, platform):
        m = Module()
        W, S = self._width, self._max_words
        P = pipeline(W)
        L, DRAIN = P.latency, P.drain
        # stages (cycles after a word's reads issue): A's product, the quotient's input and
        # B's first input; B's output (the digit); B's product q_i·m_j (the three-input sum)
        QI, QO, PB = 3 + L, 3 + 2 * L, 3 + 3 * L
        N, stride = self._slots, self.stride
        pow2 = stride & (stride - 1) == 0

        def at(base, word):
            """The address of ``word`` in the slot starting at ``base``."""
            return base | word if pow2 else base + word

        vec = Memory(shape=W, depth=N * stride, init=[])
        mod = Memory(shape=W, depth=S, init=[])
        m.submodules.vec = vec
        m.submodules.mod = mod
        # two read ports on the slots (yosys serves each read port with its own copy of the
        # block RAM): ``a_i``, needed once a row, is read through the ``t`` port in a cycle
        # where no word issues
        rd = {"b": vec.read_port(), "t": vec.read_port(), "m": mod.read_port()}
        wr_v, wr_m = vec.write_port(), mod.write_port()

        # the slots' first words: a table of constants, not a multiplier (yosys would spend a
        # MULT18X18D on each slot * stride)
        slot_base = Array(Const(k * stride, range(N * stride)) for k in range(N))
        a_base = Signal(range(N * stride))
        b_base = Signal(range(N * stride))
        t_base = Signal(range(N * stride))
        m.d.comb += [
            wr_m.addr.eq(self.wr_addr), wr_m.data.eq(self.wr_data),
            wr_m.en.eq(self.wr_en & self.wr_mod & ~self.busy),
        ]

        s = Signal(range(S + 1))
        mprime = Signal(W)
        period = Signal(range(P.row_period(S) + 1))
        # issue counters: row i, cycle c within the row (words issue at c < s)
        row = Signal(range(S + 1))
        c = Signal(range(P.row_period(S) + 1))
        issuing = Signal()

        # Only control registers (valid bits, busy, done, enables) are reset: the data path's
        # registers are reset-less, which keeps the reset net off most of the flip-flops and
        # lets the packer share slices among them.
        # control tokens travel with the data: stage k holds the word issued k cycles ago
        depth = DRAIN + 2
        tok_valid = [Signal(name=f"tv{k}") for k in range(depth)]
        tok_word = [Signal(range(S), name=f"tw{k}", reset_less=True) for k in range(depth)]
        tok_first = [Signal(name=f"tf{k}", reset_less=True) for k in range(depth)]  # t = 0
        tok_last = [Signal(name=f"tl{k}", reset_less=True) for k in range(depth)]  # s - 1
        # a valid word 0 (the row's head): a register at every stage, so the selects in front of
        # the multipliers' input registers are not a compare of the word index
        tok_head = [Signal(name=f"th{k}") for k in range(depth)]
        m.d.comb += [
            tok_valid[0].eq(issuing), tok_word[0].eq(c), tok_first[0].eq(row == 0),
            tok_last[0].eq(c == s - 1), tok_head[0].eq(issuing & (c == 0)),
        ]
        for k in range(1, depth):
            m.d.sync += [tok_valid[k].eq(tok_valid[k - 1]), tok_word[k].eq(tok_word[k - 1]),
                         tok_first[k].eq(tok_first[k - 1]), tok_last[k].eq(tok_last[k - 1]),
                         tok_head[k].eq(tok_head[k - 1])]

        # a_0 is fetched in the cycle that takes ``start``, a_{i+1} at cycle s + 1 of row i (rows
        # last at least s + 2 cycles); it lands in a_next three cycles later, before word 0 of
        # its row needs it at stage 3 and after word 0 of the previous row took its own
        # (decided and addressed a cycle ahead, in registers, so no compare sits in front of
        # the block-RAM address)
        fetch_a = Signal()
        a_addr = Signal(range(N * stride), reset_less=True)
        fetched_a, fetched_a2 = Signal(), Signal()
        m.d.sync += [fetch_a.eq(0), fetched_a.eq(fetch_a | (~self.busy & self.start)),
                     fetched_a2.eq(fetched_a)]
        with m.If(tok_valid[1] & tok_last[1]):   # c = s: fetch at s + 1, the row's last cycle
            m.d.sync += [fetch_a.eq(row + 1 < s), a_addr.eq(at(a_base, row + 1))]
        with m.If(self.busy):
            m.d.comb += [
                rd["t"].addr.eq(at(t_base, c)), rd["b"].addr.eq(at(b_base, c)),
                rd["m"].addr.eq(tok_word[QO - 3]),
            ]
            with m.If(fetch_a):
                m.d.comb += rd["t"].addr.eq(a_addr)
        with m.Elif(self.start):
            m.d.comb += rd["t"].addr.eq(slot_base[self.a_slot])
        with m.Else():
            m.d.comb += [
                rd["t"].addr.eq(at(slot_base[self.rd_slot], self.rd_addr)),
                rd["m"].addr.eq(self.rd_addr),
            ]
        m.d.comb += [self.rd_data.eq(rd["t"].data), self.rd_mod_data.eq(rd["m"].data)]

        # stages 1 and 2: two fabric registers after every block-RAM read, the first with the
        # block RAM's output as its only load, so it can sit beside the block: the block's slow
        # clock-to-out and the route across the lane to registers with many loads then fall in
        # different cycles
        t0, b0, m0 = (Signal(W, reset_less=True) for _ in range(3))
        t1, b1, a_next, m1 = (Signal(W, reset_less=True) for _ in range(4))
        m.d.sync += [t0.eq(rd["t"].data), b0.eq(rd["b"].data), m0.eq(rd["m"].data),
                     t1.eq(t0), b1.eq(b0), m1.eq(m0)]   # m_j read at stage QO - 3, here at QO
        with m.If(fetched_a2):
            m.d.sync += a_next.eq(t0)
        # stage 3: multiplier A's input registers (a_i held for the row); 4: its output register
        a_i = Signal(W, reset_less=True)
        a_now = Mux(tok_head[3], a_next, a_i)
        with m.If(tok_head[3]):
            m.d.sync += a_i.eq(a_next)
        pa = self._multiplier(m, "mult_a", a_now, b1)
        # t_j and a_i*b_j wait for q_i*m_j: delay lines; t_at[k] / pa_at[k] hold the word that
        # is at stage k
        t_at = {3: t1}
        for k in range(4, PB + 1):
            t_at[k] = Signal(W, name=f"t_at{k}", reset_less=True)
            m.d.sync += t_at[k].eq(t_at[k - 1])
        # row 0 reads t as 0: zeroed a stage later, so nothing but registers follow the RAM
        with m.If(tok_first[3]):
            m.d.sync += t_at[4].eq(0)
        pa_at = {QI: pa}
        for k in range(QI + 1, PB + 1):
            pa_at[k] = Signal(2 * W, name=f"pa_at{k}", reset_less=True)
            m.d.sync += pa_at[k].eq(pa_at[k - 1])
        # stage QI = 5 (word 0): q's input; multiplier B takes (q_in, m') at stage 5 -> 6, its
        # product at QO = 7; then (q_i, m_j) at stage 7 -> 8, product at PB = 9 (for L = 2)
        q_in = Signal(W)
        m.d.comb += q_in.eq((t_at[QI] + pa_at[QI])[:W])
        q = Signal(W, reset_less=True)
        digit_in, digit_out = tok_head[QI], tok_head[QO]
        pb = Signal(2 * W)
        # q_i * m_0 goes in the cycle the digit comes out, straight from B's output
        pb_out = self._multiplier(m, "mult_b", Mux(digit_in, q_in, Mux(digit_out, pb[:W], q)),
                                  Mux(digit_in, mprime, m1))
        m.d.comb += pb.eq(pb_out)
        with m.If(digit_out):
            m.d.sync += q.eq(pb[:W])
        # stage PB: the three-input sum, registered
        x = Signal(2 * W + 2, reset_less=True)
        m.d.sync += x.eq(t_at[PB] + pa_at[PB] + pb)
        # stage PB + 1: the carry loop, and the write of t_{j-1}
        # The loop is a register and an add, split at W bits and carry-selected: the word's
        # low half and both versions of its high half (carry in 0 and 1) are computed at
        # once, so the longest carry chain is W + 2 bits, not 2W + 2. A row's carry is zeroed
        # in the cycle that closes the previous row (word 0 comes L + 1 cycles after the last
        # word), not by a select in front of the add.
        carry = Signal(W + 2)
        t_top = Signal(W + 2)
        m.d.comb += self.top.eq(t_top)
        y_lo = Signal(W + 1)
        y_hi0, y_hi1 = Signal(W + 2), Signal(W + 2)
        m.d.comb += [y_lo.eq(x[:W] + carry[:W]),
                     y_hi0.eq(x[W:] + carry[W:]), y_hi1.eq(x[W:] + carry[W:] + 1)]
        y = Cat(y_lo[:W], Mux(y_lo[W], y_hi1, y_hi0))
        close = Signal()
        # the result words go through a register on their way into the block RAM, so the
        # address add and the carry-select sum fall in different cycles: t_{j-1} lands at stage
        # PB + 2, word s at PB + 3
        w_addr = Signal(range(N * stride), reset_less=True)
        w_data = Signal(W, reset_less=True)
        w_en = Signal()
        m.d.sync += [close.eq(0), w_en.eq(0)]
        with m.If(tok_valid[DRAIN - 1]):
            m.d.sync += carry.eq(y[W:])
            with m.If(tok_word[DRAIN - 1] != 0):
                m.d.sync += [w_addr.eq(at(t_base, tok_word[DRAIN - 1] - 1)), w_data.eq(y[:W]),
                             w_en.eq(1)]
            with m.If(tok_last[DRAIN - 1]):
                m.d.sync += close.eq(1)
        # stage PB + 2: close word s of the row
        x_top = t_top + carry
        with m.If(close):
            m.d.sync += [w_addr.eq(at(t_base, s - 1)), w_data.eq(x_top[:W]), w_en.eq(1),
                         t_top.eq(x_top[W:]), carry.eq(0)]

        # a load into a slot is written a cycle after it is offered, from registers, so the
        # slot's address add does not follow the loader's state decode in one cycle; it
        # goes first should the lane have started meanwhile (its own writes come ~10 cycles in)
        ld_en = Signal()
        ld_addr, ld_data = Signal(range(N * stride), reset_less=True), Signal(W, reset_less=True)
        m.d.sync += [ld_en.eq(self.wr_en & ~self.wr_mod & ~self.busy),
                     ld_addr.eq(at(slot_base[self.wr_slot], self.wr_addr)),
                     ld_data.eq(self.wr_data)]
        m.d.sync += self.done.eq(0)
        with m.If(ld_en):
            m.d.comb += [wr_v.addr.eq(ld_addr), wr_v.data.eq(ld_data), wr_v.en.eq(1)]
        with m.Elif(self.busy):
            m.d.comb += [wr_v.addr.eq(w_addr), wr_v.data.eq(w_data), wr_v.en.eq(w_en)]

        drain = Signal(range(DRAIN + 2))
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    s.eq(self.words), mprime.eq(self.mprime),
                    period.eq(Mux(self.words + L > P.row_gap, self.words + L, P.row_gap)),
                    a_base.eq(slot_base[self.a_slot]), b_base.eq(slot_base[self.b_slot]),
                    t_base.eq(slot_base[self.t_slot]),
                    row.eq(0), c.eq(0), t_top.eq(0), carry.eq(0), drain.eq(0),
                    self.busy.eq(1),
                ]
        with m.Else():
            m.d.comb += issuing.eq((row < s) & (c < s))
            with m.If(row < s):
                with m.If(c == period - 1):
                    m.d.sync += [c.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += c.eq(c + 1)
            with m.Else():
                # the last row drains through the pipeline, then its word s closes
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == DRAIN + 1):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
