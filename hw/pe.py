"""Processing elements: the R x C multipliers and the per-column adder trees.

`PEArray` computes, for each output channel c, `sum_r x[r] * w[r][c]` of one
input pixel per cycle, exactly (no wrap): the int32 accumulation happens
downstream.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig
from .dsp import ECP5_DSP_WIDTH, ecp5_multiplier

__all__ = ["PE", "PEArray"]


class PE(wiring.Component):
    """One signed multiplier with registered operands and product (latency 2).

    Ports: `w`, `x` signed(data_width) in; `product` signed(2 * data_width) out.

    The operand registers keep the logic that selects the operands (buffer
    banks, padding) off the multiplier's path. Elaborated for a platform whose
    `family` is "ecp5" (`hw.board.boards.Board`), the PE is one MULT18X18D
    with its own input and output registers, the same pipeline.

    Like every data register of the datapath (the adder trees, the
    requantiser's stages, the buffers' output registers), the operand
    registers are not reset: the valid bits beside them are, and nothing
    reads stale data. It keeps the reset net off thousands of flip-flops (on
    the ECP5 that net's routing limited the clock).
    """

    latency = 2

    def __init__(self, *, data_width=8):
        if isinstance(data_width, bool) or not isinstance(data_width, int) or data_width <= 0:
            raise TypeError(f"data_width must be a positive integer, not {data_width!r}")
        self.data_width = data_width
        super().__init__({
            "w": In(signed(data_width)),
            "x": In(signed(data_width)),
            "product": Out(signed(2 * data_width)),
        })

    def elaborate(self, platform):
        if getattr(platform, "family", None) == "ecp5" and self.data_width <= ECP5_DSP_WIDTH:
            return self._ecp5_dsp()
        m = Module()
        w = Signal.like(self.w, reset_less=True)
        x = Signal.like(self.x, reset_less=True)
        m.d.sync += [w.eq(self.w), x.eq(self.x), self.product.eq(w * x)]
        return m

    def _ecp5_dsp(self):
        m = Module()
        m.d.comb += self.product.eq(ecp5_multiplier(m, self.w, self.x, "dsp"))
        return m


# Array columns an input-pixel copy feeds (`PEArray.x`).
COLS_PER_X_COPY = 4

class PEArray(wiring.Component):
    """R x C multipliers and a pipelined adder tree per column.

    Ports (flat, lane i of `n`-bit lanes in bits `[n*i, n*i + n)`):

    - `x`: `x_copies` copies of R signed bytes, byte r of a copy = input
      channel r; copy g feeds columns `[g * COLS_PER_X_COPY, (g + 1) *
      COLS_PER_X_COPY)`. One register driving a byte into every column's DSP
      is a route over the whole array (on the ECP5 12x12 the critical path,
      12.9 ns of routing to 12 DSPs), so the compute stage registers a copy
      for each group of columns;
    - `w`: R*C signed bytes, byte `r*C + c` = weight from input channel r to
      output channel c (the layout of a weight element);
    - `valid`;
    - `sums`: C signed lanes of `sum_width` bits, lane c = `sum_r x[r] * w[r*C + c]`;
    - `valid_out`: `valid` delayed by `latency`.

    `sum_width = 2 * data_width + ceil(log2(R))` holds every possible sum. The
    operands and products are registered, then the first adder level (the
    products may come from DSPs far from the adders), every second level after
    it and the last one, so no path has more than two adders: with
    `L = ceil(log2(R))` adder levels, `latency = 2 + (L // 2 + 1 if L else 0)`.
    A new pixel can enter every cycle.
    """

    def __init__(self, cfg):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"cfg must be an AccelConfig, not {cfg!r}")
        self.cfg = cfg
        self.tree_levels = (cfg.rows - 1).bit_length()     # ceil(log2(R))
        self.product_width = 2 * cfg.data_width
        self.sum_width = self.product_width + self.tree_levels
        self.latency = PE.latency + (self.tree_levels // 2 + 1 if self.tree_levels else 0)
        self.x_copies = -(-cfg.cols // COLS_PER_X_COPY)
        super().__init__({
            "x": In(cfg.data_width * cfg.rows * self.x_copies),
            "w": In(cfg.data_width * cfg.rows * cfg.cols),
            "valid": In(1),
            "sums": Out(self.sum_width * cfg.cols),
            "valid_out": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, width = self.cfg.rows, self.cfg.cols, self.cfg.data_width
        x = data.View(data.ArrayLayout(data.ArrayLayout(signed(width), rows), self.x_copies),
                      self.x)
        w = data.View(data.ArrayLayout(signed(width), rows * cols), self.w)
        sums = data.View(data.ArrayLayout(signed(self.sum_width), cols), self.sums)

        for col in range(cols):
            terms = []
            for row in range(rows):
                pe = PE(data_width=width)
                m.submodules[f"pe_{row}_{col}"] = pe
                m.d.comb += [pe.x.eq(x[col // COLS_PER_X_COPY][row]), pe.w.eq(w[row * cols + col])]
                terms.append(pe.product)

            for level in range(1, self.tree_levels + 1):
                registered = level % 2 == 1 or level == self.tree_levels
                domain = m.d.sync if registered else m.d.comb
                level_width = self.product_width + level    # a sum of 2**level products
                next_terms = []
                for index in range(0, len(terms), 2):
                    pair = terms[index:index + 2]
                    term = Signal(signed(level_width), name=f"col{col}_level{level}_{index // 2}",
                                  reset_less=True)
                    # An odd term out passes through, registered like the sums
                    # beside it to stay aligned with them.
                    domain += term.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
                    next_terms.append(term)
                terms = next_terms
            m.d.comb += sums[col].eq(terms[0])

        valid = self.valid
        for stage in range(1, self.latency + 1):
            delayed = Signal(name=f"valid_{stage}")
            m.d.sync += delayed.eq(valid)
            valid = delayed
        m.d.comb += self.valid_out.eq(valid)

        return m
