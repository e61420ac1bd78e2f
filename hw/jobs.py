"""Job records and the dispatcher that walks a descriptor's job loop.

A job is one (output tile, output-channel block `cob`, input-channel block
`cib`), visited in the order `for ty: for tx: for cob: for cib:`. The
dispatcher computes everything a stage needs about a job once (tile bounds,
the clipped input window, DMA addresses) and hands each stage its own record
through its own FIFO, so the stages never repeat address arithmetic.

The dispatcher has no wide multiplier. At `start` it computes the products a
descriptor needs once (`PREP_PRODUCTS`) with a shift-and-add multiplier; the
job loop then moves every address by additions only, and the two products
that depend on a tile's clipped window are multiplied again per tile. Clock
speed and area on FPGAs were the reason: one cycle of chained 32-bit products
capped the ECP5 at about 30 MHz. A product takes `bit_length(a) + 2` cycles
(`a` is its smaller factor), which the stages never wait for after the first
tile: a job lasts tens of cycles and the FIFOs hold several.
"""

import operator
from functools import reduce

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import DESC_FIELDS, PREP_PRODUCTS
from .fifo import RegisteredFIFO

__all__ = ["DescLayout", "LoadJob", "ComputeJob", "StoreJob", "SerialMultiplier",
           "Dispatcher", "desc_signed"]

DescLayout = data.StructLayout({name: 32 for name, _, _ in DESC_FIELDS})

# Sizes of the dispatcher's loop coordinates and of what its records carry.
# The job loop runs only after the descriptor checks passed, so every size
# here may rely on them: the stages count in as few bits as their buffers
# need.


def input_coord(cfg):
    """An input row or column of a tile's window, before or after clipping:
    `oy0 * SH - PAD_T` plus at most the window's span, with `oy0 < OUT_H <
    2**16`, `SH <= stride_max`, `|PAD_T| <= 2**15` and a span of at most
    in_depth inputs (ERROR["WINDOW"])."""
    bound = 0xFFFF * cfg.stride_max + 0x8000 + cfg.kernel_max + cfg.in_depth
    return signed(bound.bit_length() + 1)


def tile_size(cfg):
    """A tile's height or width: TILE_H, TILE_W <= acc_depth (ERROR["TILE"])."""
    return range(cfg.acc_depth + 1)


def window_size(cfg):
    """A clipped window's height or width: at most the full tile's window
    span, and span_h * span_w <= in_depth (ERROR["WINDOW"])."""
    return range(cfg.in_depth + 1)


def window_coord(cfg):
    """A row or column of a tile's input relative to its clipped window, as
    the compute stage walks it: in (-span, span), so within +-in_depth,
    whenever the window is not empty (it starts at or after the span's start
    and ends before the span's end). When it is empty the record's value is
    the wide one truncated, and no input is inside."""
    return signed(cfg.in_depth.bit_length() + 1)


def buffer_offset(cfg):
    """An input-buffer address or step, modulo the buffer's address space:
    the compute stage only uses the low bits of their sums."""
    return (cfg.in_depth - 1).bit_length()


def LoadJob(cfg):
    """What the load stage reads about a job."""
    return data.StructLayout({
        "first": 1,                                  # cib == 0: load the parameters too
        "taps": range(cfg.kernel_max ** 2 + 1),      # KH * KW weight elements
        "w_words": range(cfg.kernel_max ** 2 * cfg.w_elem_words + 1),
        "wh": window_size(cfg), "ww": window_size(cfg),   # clipped input window (0 when empty)
        # DMA byte addresses, modulo the bus's address space like every address.
        "p_addr": cfg.axi_addr_width, "w_addr": cfg.axi_addr_width,
        "in_addr": cfg.axi_addr_width,
    })


def ComputeJob(cfg):
    """What the compute stage reads about a job."""
    return data.StructLayout({
        "first": 1,                 # cib == 0: accumulators start from the bias
        "last": 1,                  # cib == CI_BLOCKS - 1: the tile-cob is complete
        "th": tile_size(cfg), "tw": tile_size(cfg),         # tile size in output pixels
        "wh": window_size(cfg), "ww": window_size(cfg),     # clipped input window (0 when empty)
        "lrow0": window_coord(cfg),     # first tile row's input row minus window top
        "lcol0": window_coord(cfg),     # first tile column's input column minus window left
        "base0": buffer_offset(cfg),    # lrow0 * ww: input-buffer address of (lrow0, 0)
        "row_step": buffer_offset(cfg), # SH * ww: input-buffer step between tile rows
    })


def StoreJob(cfg):
    """What the store stage reads about a tile-cob."""
    return data.StructLayout({
        "th": tile_size(cfg), "tw": tile_size(cfg),
        "out_addr": cfg.axi_addr_width,
    })


def desc_signed(desc, name, bits):
    """Field `name` of a descriptor view as a signed value of `bits` bits."""
    return desc[name][:bits].as_signed()


class SerialMultiplier(wiring.Component):
    """`product = (-1 if negate else 1) * a * b` by shift and add.

    `load` takes the operands; then one bit of `a` per cycle, ending as soon as
    the remaining bits of `a` are zero. `busy` is high while it steps, so the
    product is valid `a.bit_length()` cycles after `load`, when `busy` is low.
    The product is taken modulo `2**product_width`, two's complement.
    """

    def __init__(self, a_width, b_width, product_width):
        for name, value in (("a_width", a_width), ("b_width", b_width),
                            ("product_width", product_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self._product_width = product_width
        super().__init__({
            "load": In(1), "a": In(a_width), "b": In(b_width), "negate": In(1),
            "busy": Out(1), "product": Out(product_width),
        })

    def elaborate(self, platform):
        m = Module()
        width = self._product_width
        a = Signal.like(self.a)
        b = Signal(width)
        total = Signal(width)
        negate = Signal()
        m.d.comb += [self.busy.eq(a != 0), self.product.eq(Mux(negate, -total, total))]
        with m.If(self.load):
            m.d.sync += [a.eq(self.a), b.eq(self.b), total.eq(0), negate.eq(self.negate)]
        with m.Elif(a != 0):
            m.d.sync += [a.eq(a >> 1), b.eq(b << 1)]
            with m.If(a[0]):
                m.d.sync += total.eq(total + b)
        return m


class Dispatcher(wiring.Component):
    """Generates job records into three FIFOs (load, compute, store).

    `start` computes the descriptor's products; `prepared` then stays high
    with `tile_pixels` (TILE_H * TILE_W) and `window_elems` (the input window
    of a full tile) valid for the descriptor checks, until `run` walks the job
    loop or `start` begins again. The store FIFO only receives the last job of
    each tile-cob. A job is pushed at most every other cycle (PUSH, then
    ADVANCE moves the loop on). `done` rises once every job has been pushed.
    """

    def __init__(self, cfg, fifo_depth=4):
        self._cfg = cfg
        self._fifo_depth = fifo_depth
        self._layouts = {"load": LoadJob(cfg), "comp": ComputeJob(cfg), "store": StoreJob(cfg)}
        members = {
            "desc": In(DescLayout),
            "start": In(1), "prepared": Out(1), "run": In(1), "done": Out(1),
            "tile_pixels": Out(34), "window_elems": Out(42),
        }
        for name, layout in self._layouts.items():
            members.update({f"{name}_job": Out(layout), f"{name}_valid": Out(1),
                            f"{name}_ready": In(1)})
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        d = self.desc

        fifos = {}
        for name, layout in self._layouts.items():
            # Registered outputs: a stage's start decision fans out to most of its registers.
            fifo = fifos[name] = RegisteredFIFO(width=layout.size, depth=self._fifo_depth)
            m.submodules[f"{name}_fifo"] = fifo
            m.d.comb += [
                getattr(self, f"{name}_job").eq(fifo.r_data),
                getattr(self, f"{name}_valid").eq(fifo.r_rdy),
                fifo.r_en.eq(getattr(self, f"{name}_ready")),
            ]

        # The second factors are at most 21 bits (span_w) except the pitches,
        # whose products are kept modulo the address space.
        mul_b_width = max(21, cfg.axi_addr_width)
        m.submodules.multiplier = mul = SerialMultiplier(24, mul_b_width, 44)

        coord = input_coord(cfg)
        pad_t = desc_signed(d, "PAD_T", 16)
        pad_l = desc_signed(d, "PAD_L", 16)
        kh, kw, sh, sw = d.KH[:8], d.KW[:8], d.SH[:8], d.SW[:8]
        tile_h, tile_w = d.TILE_H[:16], d.TILE_W[:16]

        # Addresses are computed modulo the bus's address space: only their low
        # `axi_addr_width` bits reach the bus, and sums and products of the low
        # bits of their terms give exactly those.
        addr = cfg.axi_addr_width

        # Results of the per-descriptor products.
        prep = {
            "taps": Signal(16), "w_words": Signal(24),
            "ty_step": Signal(24), "tx_step": Signal(24),
            "in_row_start": Signal(addr), "in_col_start": Signal(addr),
            "in_row_step": Signal(addr), "in_col_step": Signal(addr),
            "out_row_step": Signal(addr), "out_col_step": Signal(addr),
            "last_y": Signal(24), "last_x": Signal(24),
            "tile_pixels": Signal(34), "window_elems": Signal(42),
        }
        # Spans of a full tile's input window, in inputs: (TILE - 1) * S + K.
        span_h = Signal(21)
        span_w = Signal(21)
        factors = {
            "KH": kh, "KW": kw, "SH": sh, "SW": sw, "TILE_H": tile_h, "TILE_W": tile_w,
            "PAD_T": Mux(pad_t < 0, -pad_t, pad_t), "PAD_L": Mux(pad_l < 0, -pad_l, pad_l),
            "IN_ROW_PITCH": d.IN_ROW_PITCH, "IN_ELEM_PITCH": d.IN_ELEM_PITCH,
            "OUT_ROW_PITCH": d.OUT_ROW_PITCH, "OUT_ELEM_PITCH": d.OUT_ELEM_PITCH,
            "OUT_H_M1": d.OUT_H[:16] - 1, "OUT_W_M1": d.OUT_W[:16] - 1,
            "ELEM_WORDS": C(cfg.w_elem_words), "span_h": span_h, "span_w": span_w,
            **prep,
        }
        # Products of a negative value are negated; PAD_T > 0 gives -PAD_T < 0.
        signs = {"PAD_T": pad_t > 0, "PAD_L": pad_l > 0}
        m.d.comb += [self.tile_pixels.eq(prep["tile_pixels"]),
                     self.window_elems.eq(prep["window_elems"])]

        # Loop position and the running values the loop moves by additions.
        oy0 = Signal(16)
        ox0 = Signal(16)
        cob = Signal(16)
        cib = Signal(16)
        lo_y = Signal(coord)   # oy0 * SH - PAD_T: the tile's first input row
        lo_x = Signal(coord)
        in_row_off = Signal(addr)         # lo_y * IN_ROW_PITCH (modulo the address space)
        in_col_off = Signal(addr)         # lo_x * IN_ELEM_PITCH
        out_row = Signal(addr)            # OUT_BASE + oy0 * OUT_ROW_PITCH
        out_tile = Signal(addr)           # out_row + ox0 * OUT_ELEM_PITCH
        in_tile = Signal(addr)            # IN_BASE + wy0 * IN_ROW_PITCH + wx0 * IN_ELEM_PITCH
        in_yx = Signal(addr)
        last_y_hi = Signal(coord)   # last input row of the last tile row
        last_x_hi = Signal(coord)
        span_y = Signal(coord)   # first to last input row of a full tile: span_h - 1
        span_x = Signal(coord)
        # These follow the products they derive from, which are final well
        # before they are read (window_elems is computed two products after
        # last_x, and the others are read from the first tile on).
        m.d.sync += [
            span_h.eq(prep["ty_step"] - sh + kh), span_w.eq(prep["tx_step"] - sw + kw),
            span_y.eq(span_h - 1), span_x.eq(span_w - 1),
            last_y_hi.eq(prep["last_y"] - pad_t + kh - 1),
            last_x_hi.eq(prep["last_x"] - pad_l + kw - 1),
        ]

        # The current tile and the job's running addresses.
        th = Signal(tile_size(cfg))
        tw = Signal(tile_size(cfg))
        iy_lo = Signal(coord)
        ix_lo = Signal(coord)
        iy_hi = Signal(coord)
        ix_hi = Signal(coord)
        wh = Signal(window_size(cfg))
        ww = Signal(window_size(cfg))
        lrow0 = Signal(coord)
        lcol0 = Signal(coord)
        base0 = Signal(buffer_offset(cfg))
        row_step = Signal(buffer_offset(cfg))
        in_addr = Signal(addr)
        w_addr = Signal(addr)
        p_addr = Signal(addr)
        out_addr = Signal(addr)

        # The job is the last of its tile-cob / tile: registers set one step
        # ahead, as they gate the FIFO writes (hundreds of enables).
        last_cib = Signal()
        last_cob = Signal()
        ci_blocks_m2 = Signal(16)
        co_blocks_m2 = Signal(16)
        single_cib = Signal()
        single_cob = Signal()
        m.d.sync += [
            ci_blocks_m2.eq(d.CI_BLOCKS[:16] - 2), co_blocks_m2.eq(d.CO_BLOCKS[:16] - 2),
            single_cib.eq(d.CI_BLOCKS[:16] == 1), single_cob.eq(d.CO_BLOCKS[:16] == 1),
        ]
        last_tx = Signal()              # the tile is the last of its row / column
        last_ty = Signal()
        # The window clipped to the input: first and last input, minus one and inclusive.
        first_y_m1 = Signal(coord)
        first_x_m1 = Signal(coord)
        clip_y = Signal(coord)
        clip_x = Signal(coord)
        w_step = prep["w_words"] << (cfg.bus_bytes.bit_length() - 1)   # bus_bytes: a power of 2
        p_step = cfg.p_elem_words * cfg.bus_bytes

        in_h_m1 = Signal(17)
        in_w_m1 = Signal(17)
        m.d.sync += [in_h_m1.eq(d.IN_H[:16] - 1), in_w_m1.eq(d.IN_W[:16] - 1)]

        first_cib = [cib.eq(0), last_cib.eq(single_cib)]
        first_cob = [cob.eq(0), last_cob.eq(single_cob)]
        advance = Signal()
        m.d.sync += advance.eq(0)
        with m.If(advance):
            # Weights are stored per (cob, cib) in loop order: one step a job.
            m.d.sync += w_addr.eq(w_addr + w_step)
            with m.If(~last_cib):
                m.d.sync += [cib.eq(cib + 1), last_cib.eq(cib == ci_blocks_m2),
                             in_addr.eq(in_addr + d.IN_BLK_PITCH)]
            with m.Elif(~last_cob):
                m.d.sync += [*first_cib, cob.eq(cob + 1), last_cob.eq(cob == co_blocks_m2),
                             in_addr.eq(in_tile),
                             p_addr.eq(p_addr + p_step),
                             out_addr.eq(out_addr + d.OUT_BLK_PITCH)]
            with m.Elif(~last_tx):
                m.d.sync += [
                    *first_cib, *first_cob, ox0.eq(ox0 + tile_w),
                    lo_x.eq(lo_x + prep["tx_step"]),
                    in_col_off.eq(in_col_off + prep["in_col_step"]),
                    out_tile.eq(out_tile + prep["out_col_step"]),
                ]
            with m.Elif(~last_ty):
                m.d.sync += [
                    *first_cib, *first_cob, ox0.eq(0), oy0.eq(oy0 + tile_h),
                    lo_x.eq(-pad_l), in_col_off.eq(prep["in_col_start"]),
                    lo_y.eq(lo_y + prep["ty_step"]),
                    in_row_off.eq(in_row_off + prep["in_row_step"]),
                    out_row.eq(out_row + prep["out_row_step"]),
                    out_tile.eq(out_row + prep["out_row_step"]),
                ]

        # The multiply states: the descriptor's products, then a tile's two.
        # Each is a state `name` (the multiplier loads) and `name`_WAIT (the
        # product is stored, then `next`).
        waiting = Signal()      # high in every cycle the FSM is in PREPARED
        products = []
        for index, (result, a, b, negate) in enumerate(PREP_PRODUCTS):
            last = index + 1 == len(PREP_PRODUCTS)
            store = prep[result].eq
            if last:
                store = lambda product, store=store: [store(product), waiting.eq(1)]
            products.append((f"PREP_{index}", factors[a], factors[b],
                             signs[a] if negate else C(0), store,
                             "PREPARED" if last else f"PREP_{index + 1}"))
        products += [("ROW_STEP", sh, ww, C(0), row_step.eq, "BASE"),
                     ("BASE", -lrow0, ww, lrow0 < 0, base0.eq, "PUSH")]
        # The multiplier's operands are picked by a one-hot register set on
        # the way into each multiply state, and its load is a register too:
        # the state decode in front of the operands' multiplexers (sixteen
        # ways) was the board top's critical path.
        product_index = {name: index for index, (name, *_) in enumerate(products)}
        operands = Signal(len(products))
        mul_load = Signal()
        m.d.sync += mul_load.eq(0)

        def pick(values):
            return reduce(operator.or_, (Mux(operands[index], value, 0)
                                         for index, value in enumerate(values)))

        m.d.comb += [mul.load.eq(mul_load),
                     mul.a.eq(pick(a for _, a, *_ in products)),
                     mul.b.eq(pick(b for _, _, b, *_ in products)),
                     mul.negate.eq(pick(negate for _, _, _, negate, *_ in products))]

        def goto(state):
            m.next = state
            if state in product_index:
                m.d.sync += [operands.eq(1 << product_index[state]), mul_load.eq(1)]

        # The loop's first position is loaded in every cycle the FSM waits in
        # PREPARED, enabled by a register that is high exactly then: what it
        # holds when `run` comes is what loading it on `run` would give, and
        # the loop registers' input multiplexers see no state decode and no
        # `run` (that path was the board top's critical one).
        with m.If(waiting):
            m.d.sync += [
                oy0.eq(0), ox0.eq(0), *first_cob, *first_cib,
                lo_y.eq(-pad_t), lo_x.eq(-pad_l),
                in_row_off.eq(prep["in_row_start"]), in_col_off.eq(prep["in_col_start"]),
                out_row.eq(d.OUT_BASE), out_tile.eq(d.OUT_BASE),
            ]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    goto("PREP_0")

            for name, _, _, _, store, next_state in products:
                with m.State(name):
                    m.next = f"{name}_WAIT"
                with m.State(f"{name}_WAIT"):
                    with m.If(~mul.busy):
                        m.d.sync += store(mul.product)
                        goto(next_state)
            with m.State("PREPARED"):
                m.d.comb += self.prepared.eq(1)
                with m.If(self.start):
                    m.d.sync += waiting.eq(0)
                    goto("PREP_0")
                with m.Elif(self.run):
                    m.d.sync += waiting.eq(0)
                    m.next = "BOUNDS"

            # A tile's bounds and window, one carry chain a state.
            with m.State("BOUNDS"):
                rows_left = d.OUT_H[:16] - oy0
                cols_left = d.OUT_W[:16] - ox0
                m.d.sync += [
                    th.eq(Mux(tile_h < rows_left, tile_h, rows_left)),
                    tw.eq(Mux(tile_w < cols_left, tile_w, cols_left)),
                    last_ty.eq(oy0 + tile_h >= d.OUT_H[:16]),
                    last_tx.eq(ox0 + tile_w >= d.OUT_W[:16]),
                    iy_lo.eq(lo_y), ix_lo.eq(lo_x),
                    # The window starts at the clipped first row and column.
                    in_yx.eq(Mux(lo_y < 0, 0, in_row_off) + Mux(lo_x < 0, 0, in_col_off)),
                ]
                m.next = "SPAN"
            with m.State("SPAN"):
                m.d.sync += [
                    iy_hi.eq(Mux(last_ty, last_y_hi, iy_lo + span_y)),
                    ix_hi.eq(Mux(last_tx, last_x_hi, ix_lo + span_x)),
                    in_tile.eq(d.IN_BASE + in_yx), in_addr.eq(d.IN_BASE + in_yx),
                    w_addr.eq(d.W_BASE), p_addr.eq(d.P_BASE), out_addr.eq(out_tile),
                ]
                m.next = "CLIP"
            with m.State("CLIP"):
                m.d.sync += [
                    first_y_m1.eq(Mux(iy_lo < 0, 0, iy_lo) - 1),
                    first_x_m1.eq(Mux(ix_lo < 0, 0, ix_lo) - 1),
                    clip_y.eq(Mux(iy_hi > in_h_m1, in_h_m1, iy_hi)),
                    clip_x.eq(Mux(ix_hi > in_w_m1, in_w_m1, ix_hi)),
                    lrow0.eq(Mux(iy_lo < 0, iy_lo, 0)),
                    lcol0.eq(Mux(ix_lo < 0, ix_lo, 0)),
                ]
                m.next = "LENGTH"
            with m.State("LENGTH"):
                m.d.sync += [
                    wh.eq(Mux(clip_y > first_y_m1, clip_y - first_y_m1, 0)),
                    ww.eq(Mux(clip_x > first_x_m1, clip_x - first_x_m1, 0)),
                ]
                goto("ROW_STEP")
            # PUSH writes the job into the FIFOs; the cycle after it (ADVANCE)
            # moves the loop on. The moves are enabled by the registered
            # `advance` and the registered last_* flags alone, not by the FIFO
            # levels and the state decode: they reach hundreds of registers.
            with m.State("PUSH"):
                store_ok = fifos["store"].w_rdy | ~last_cib
                with m.If(fifos["load"].w_rdy & fifos["comp"].w_rdy & store_ok):
                    m.d.comb += [
                        fifos["load"].w_en.eq(1),
                        fifos["comp"].w_en.eq(1),
                        fifos["store"].w_en.eq(last_cib),
                    ]
                    m.d.sync += advance.eq(1)
                    m.next = "ADVANCE"
            with m.State("ADVANCE"):
                m.next = "BOUNDS"
                with m.If(~last_cib | ~last_cob):
                    m.next = "PUSH"
                with m.Elif(last_tx & last_ty):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    goto("PREP_0")

        records = {
            "load": {"first": cib == 0, "taps": prep["taps"], "w_words": prep["w_words"],
                     "wh": wh, "ww": ww, "p_addr": p_addr, "w_addr": w_addr,
                     "in_addr": in_addr},
            "comp": {"first": cib == 0, "last": last_cib, "th": th, "tw": tw, "wh": wh,
                     "ww": ww, "lrow0": lrow0, "lcol0": lcol0, "base0": base0,
                     "row_step": row_step},
            "store": {"th": th, "tw": tw, "out_addr": out_addr},
        }
        for name, fields in records.items():
            record = Signal(self._layouts[name], name=f"{name}_record")
            m.d.comb += [record[field].eq(value) for field, value in fields.items()]
            m.d.comb += fifos[name].w_data.eq(record)
        return m
