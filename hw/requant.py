"""Requantisation of int32 accumulators to int8, bit exact with `sw_driver.quant`.

    result = clamp(rdivpot(srdhm(acc, mult), shift) + zero_point, act_min, act_max)

`RequantLane` does one channel, `Requantizer` `cfg.requant_lane_count` channels
(the store stage feeds it a pixel's C channels in `cfg.requant_groups`
cycles). Both take a new input every cycle and have no stall: results come
out `latency` cycles later, flagged by `valid_out`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import AccelConfig
from .dsp import ecp5_multiplier
from .fanout import registered_copies

__all__ = ["RequantLane", "Requantizer"]

INT32_MAX = (1 << 31) - 1


class LaneParams(data.Struct):
    """Per-input parameters that travel down the pipeline beside their accumulator."""
    shift: unsigned(5)
    zero_point: signed(8)
    act_min: signed(8)
    act_max: signed(8)


class RequantLane(wiring.Component):
    """One requantisation lane, eleven registered stages of at most one carry
    chain, one digit product or one barrel shifter each, so that it clocks
    like the PE array. Stage 0 registers the inputs (they come through the
    store stage's channel-group multiplexer, and on the ECP5 12x12 top the
    route from it into the first carry chain was the critical path). Stages
    1-5 compute the exact 64-bit product `acc * mult` from digits of
    `digit_bits` bits:

    - 8 (LUT logic): 1. the sixteen 8 x 8 digit products (the top digits
      signed); 2-5. their sum, one adder level a stage;
    - 16 (DSP blocks): 1. the magnitudes of `acc` and `mult`; 2. the four
      unsigned 16 x 16 digit products, each a DSP block's multiplier with its
      input and output registers; 3-4. their sum; 5. the sign.

    Then:

    6. srdhm: nudge, truncating divide by 2**31, saturation;
    7. rounding divide by `2**shift`: the shifted value, remainder and threshold;
    8. the rounding bit (remainder above threshold);
    9. plus the rounding bit and the zero point;
    10. clamp to `act_min..act_max`.

    With `act_min > act_max` (refused by the driver and the descriptor checks)
    the result is `act_max`, as `min(max(x, act_min), act_max)` gives.
    """

    latency = 11
    PRODUCT_STAGE = 5           # counted from the registered inputs (stage 0)

    def __init__(self, digit_bits=8):
        if digit_bits not in (8, 16):
            raise ValueError(f"digit_bits must be 8 or 16, not {digit_bits!r}")
        self.digit_bits = digit_bits
        super().__init__({
            "acc": In(signed(32)),
            "mult": In(signed(32)),
            "shift": In(unsigned(5)),
            "zero_point": In(signed(8)),
            "act_min": In(signed(8)),
            "act_max": In(signed(8)),
            "valid": In(1),
            "result": Out(signed(8)),
            "valid_out": Out(1),
            "valid_early": Out(1),      # valid_out one cycle ahead
        })

    def elaborate(self, platform):
        m = Module()

        # Stage 0: the inputs, registered.
        acc = Signal(signed(32), name="acc_in", reset_less=True)
        mult = Signal(signed(32), name="mult_in", reset_less=True)
        m.d.sync += [acc.eq(self.acc), mult.eq(self.mult)]
        # params[k] is the registered parameters delayed by k more cycles:
        # stage s, which reads the values registered by stage s - 1, uses
        # params[s - 1].
        params = [Signal(LaneParams, name=f"params_{k}", reset_less=True)
                  for k in range(self.latency - 1)]
        m.d.sync += [
            params[0].shift.eq(self.shift),
            params[0].zero_point.eq(self.zero_point),
            params[0].act_min.eq(self.act_min),
            params[0].act_max.eq(self.act_max),
        ]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(params, params[1:])]

        valids = [self.valid]
        for stage in range(self.latency):
            valids.append(Signal(name=f"valid_{stage}"))
            m.d.sync += valids[-1].eq(valids[-2])
        m.d.comb += [self.valid_early.eq(valids[-2]), self.valid_out.eq(valids[-1])]

        # |acc * mult| <= 2**62, so the 64-bit product and its partial sums never wrap.
        if self.digit_bits == 8:
            product = self._signed_digit_product(m, acc, mult)
        else:
            product = self._magnitude_product(m, acc, mult, platform)
        product_stage = self.PRODUCT_STAGE

        # Stage 6: gemmlowp adds 2**30 (product >= 0) or 1 - 2**30 (product < 0)
        # and divides by 2**31 truncating toward zero. For a negative product
        # that is ceil((p + 1 - 2**30) / 2**31) = floor((p + 2**30) / 2**31), the
        # same formula as for p >= 0, so both are one add and an arithmetic
        # shift. The quotient lies in -2**31 + 1 .. 2**31 and reaches 2**31 only
        # for INT32_MIN * INT32_MIN (product 2**62): that one case saturates.
        nudged = Signal(signed(65))
        m.d.comb += nudged.eq(product + (1 << 30))
        high = Signal(signed(32), reset_less=True)
        m.d.sync += high.eq(Mux(product == (1 << 62), INT32_MAX, nudged[31:63].as_signed()))

        # Stages 7-8: gemmlowp RoundingDivideByPOT, written as in the C code.
        # The mask 2**shift - 1 is registered beside stage 6, from the same
        # shift, so stage 7 starts from registers only.
        shift = params[product_stage + 1].shift
        mask = Signal(unsigned(31), reset_less=True)
        m.d.sync += mask.eq((Const(1, 32) << params[product_stage].shift) - 1)
        shifted = Signal(signed(32), reset_less=True)
        remainder = Signal(unsigned(31), reset_less=True)
        threshold = Signal(unsigned(31), reset_less=True)
        m.d.sync += [shifted.eq(high >> shift), remainder.eq(high[:31] & mask),
                     threshold.eq((mask >> 1) + high[31])]
        shifted_8 = Signal(signed(32), reset_less=True)
        round_up = Signal(reset_less=True)
        m.d.sync += [shifted_8.eq(shifted), round_up.eq(remainder > threshold)]

        # Stage 9: the rounded quotient plus the zero point. The quotient cannot
        # overflow 32 bits: for shift >= 1, |high >> shift| + 1 <= 2**30; for
        # shift 0 the mask is 0 and nothing is added.
        biased = Signal(signed(34), reset_less=True)
        m.d.sync += biased.eq(shifted_8 + round_up + params[product_stage + 3].zero_point)

        # Stage 10: the clamp in TFLite's order (max, then min): above act_max
        # gives act_max, below act_min gives min(act_min, act_max).
        act_min, act_max = params[product_stage + 4].act_min, params[product_stage + 4].act_max
        floor = Mux(act_min > act_max, act_max, act_min)
        # After the clamp the value is within int8, so 8 bits hold it.
        m.d.sync += self.result.eq(Mux(biased > act_max, act_max,
                                       Mux(biased < act_min, floor, biased[:8].as_signed())))

        return m

    @staticmethod
    def _sum_tree(m, terms, shape, prefix):
        """Sum of `terms` [(signal, weight exponent)] sorted by exponent, one
        registered adder level a cycle; returns (sum, levels)."""
        level = 0
        while len(terms) > 1:
            level += 1
            pairs = []
            for index in range(0, len(terms), 2):
                (low, low_exp), (high, high_exp) = terms[index], terms[index + 1]
                total = Signal(shape, name=f"{prefix}_{level}_{index // 2}", reset_less=True)
                m.d.sync += total.eq(low + (high << (high_exp - low_exp)))
                pairs.append((total, low_exp))
            terms = pairs
        return terms[0][0], level

    def _signed_digit_product(self, m, acc, mult):
        """Stages 1-5 for 8-bit digits: a = sum_k a_k * 2**(8k) with the top
        digit signed, 16 digit products and a tree of adders. An 8 x 8 product
        is a few LUT levels where no DSP is left for it."""
        def digits(value):
            return [value[8 * k:8 * k + 8].as_signed() if k == 3 else value[8 * k:8 * k + 8]
                    for k in range(4)]
        terms = []
        for k, acc_digit in enumerate(digits(acc)):
            for j, mult_digit in enumerate(digits(mult)):
                partial = Signal(signed(17), name=f"partial_{k}_{j}", reset_less=True)
                m.d.sync += partial.eq(acc_digit * mult_digit)
                terms.append((partial, 8 * (k + j)))
        terms.sort(key=lambda term: term[1])
        product, levels = self._sum_tree(m, terms, signed(64), "sum")
        assert 1 + levels == self.PRODUCT_STAGE
        return product

    def _magnitude_product(self, m, acc, mult, platform):
        """Stages 1-5 for 16-bit digits: unsigned digits of the magnitudes, so
        that each product is one unsigned 16 x 16 multiplier (an SB_MAC16 or a
        MULT18X18D) with registered operands and product."""
        # On the ECP5 the magnitudes and the digit products are registered in
        # the MULT18X18Ds themselves (`hw.dsp`): yosys would leave both
        # registers in the fabric, a route into the DSP and one out of it on
        # one path (on the 6x6 and 10x10 ULX3S tops at 100 MHz the critical
        # path). yosys' SB_MAC16 mapping takes the registers in by itself.
        in_dsp = getattr(platform, "family", None) == "ecp5"
        magnitudes = []
        for name, value in (("acc", acc), ("mult", mult)):
            magnitude = Signal(32, name=f"{name}_magnitude", reset_less=True)   # 2**31 fits
            domain = m.d.comb if in_dsp else m.d.sync
            domain += magnitude.eq(Mux(value < 0, -value, value))
            magnitudes.append(magnitude)
        negative = [Signal(name=f"negative_{stage}", reset_less=True)
                    for stage in range(1, self.PRODUCT_STAGE)]
        m.d.sync += negative[0].eq(acc[31] ^ mult[31])
        m.d.sync += [later.eq(earlier) for earlier, later in zip(negative, negative[1:])]
        acc_magnitude, mult_magnitude = magnitudes
        terms = []
        for k in range(2):
            for j in range(2):
                acc_digit = acc_magnitude.word_select(k, 16)
                mult_digit = mult_magnitude.word_select(j, 16)
                if in_dsp:
                    partial = ecp5_multiplier(m, acc_digit, mult_digit, f"partial_{k}_{j}")
                else:
                    partial = Signal(32, name=f"partial_{k}_{j}", reset_less=True)
                    m.d.sync += partial.eq(acc_digit * mult_digit)
                terms.append((partial, 16 * (k + j)))
        terms.sort(key=lambda term: term[1])
        magnitude, levels = self._sum_tree(m, terms, unsigned(64), "sum")
        assert 2 + levels + 1 == self.PRODUCT_STAGE
        product = Signal(signed(64), reset_less=True)
        m.d.sync += product.eq(Mux(negative[-1], -magnitude, magnitude))
        return product


class Requantizer(wiring.Component):
    """`lanes` (= `cfg.requant_lane_count`) requantisation lanes with
    `cfg.requant_digit_bits` digits, and the raw
    accumulators beside them.

    Flat ports, lane c of a port `w` bits per lane in bits `[w*c, w*c + w)`:
    `acc`, `mult` and `shift` are `lanes` x 32 bits, so consecutive int32 words
    of the params element (`mult[C]`, `shift[C]`) connect unchanged; only the
    low 5 bits of each shift are used (shift taken modulo 32). `zero_point`,
    `act_min` and `act_max` are shared by all lanes. `result` is `lanes` x 8
    bits (int8) and `raw` is `acc` delayed by the same `latency`, so one mux
    picks the output mode. `valid_out_copies` are `cfg.requant_groups`
    registered copies of `valid_out`, one for each channel group's part of
    its fan-out.
    """

    def __init__(self, cfg):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"cfg must be an AccelConfig, not {cfg!r}")
        self.cfg = cfg
        self.latency = RequantLane.latency
        self.lanes = lanes = cfg.requant_lane_count
        super().__init__({
            "acc": In(32 * lanes),
            "mult": In(32 * lanes),
            "shift": In(32 * lanes),
            "zero_point": In(signed(8)),
            "act_min": In(signed(8)),
            "act_max": In(signed(8)),
            "valid": In(1),
            "result": Out(8 * lanes),
            "raw": Out(32 * lanes),
            "valid_out": Out(1),
            "valid_out_copies": Out(cfg.requant_groups),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        words = data.ArrayLayout(signed(32), lanes)
        acc = data.View(words, self.acc)
        mult = data.View(words, self.mult)
        shift = data.View(words, self.shift)
        result = data.View(data.ArrayLayout(signed(8), lanes), self.result)

        lane_units = [RequantLane(self.cfg.requant_digit_bits) for _ in range(lanes)]
        for index, lane in enumerate(lane_units):
            m.submodules[f"lane_{index}"] = lane
            m.d.comb += [
                lane.acc.eq(acc[index]),
                lane.mult.eq(mult[index]),
                lane.shift.eq(shift[index][:5]),
                lane.zero_point.eq(self.zero_point),
                lane.act_min.eq(self.act_min),
                lane.act_max.eq(self.act_max),
                lane.valid.eq(self.valid),
                result[index].eq(lane.result),
            ]
        # Every lane has the same latency; lane 0's flag stands for all. Its
        # registered copies, one for each of the store stage's channel groups,
        # are the same flag (on the 12x12 the one register drove 363 enables).
        m.d.comb += self.valid_out.eq(lane_units[0].valid_out)
        copies = registered_copies(m, lane_units[0].valid_early, self.cfg.requant_groups,
                                   "valid_out_copy")
        m.d.comb += self.valid_out_copies.eq(Cat(copies))

        # The raw accumulators wait `latency` cycles in a circular buffer
        # (a block or LUT RAM, not latency x 32 flip-flops a lane): written
        # at `slot`, read back latency - 1 slots later into the read port's
        # register. Written every cycle, as the lanes take an input every
        # cycle; never read where it is being written (`no_rw_check`, see
        # `hw.accel`).
        depth = 1 << self.latency.bit_length()
        m.submodules.raw_delay = delay = Memory(shape=32 * lanes, depth=depth, init=[],
                                                attrs={"no_rw_check": 1})
        write = delay.write_port()
        read = delay.read_port()
        slot = Signal(range(depth))
        m.d.sync += slot.eq(slot + 1)
        m.d.comb += [
            write.addr.eq(slot), write.data.eq(self.acc), write.en.eq(1),
            read.addr.eq(slot - (self.latency - 1)),
            self.raw.eq(read.data),
        ]

        return m
