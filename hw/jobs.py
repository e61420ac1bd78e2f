"""Job records and the dispatcher that walks a descriptor's job loop.

A job is one (output tile, output-channel block `cob`, input-channel block
`cib`), visited in the order `for ty: for tx: for cob: for cib:`. The
dispatcher computes everything a stage needs about a job once (tile bounds,
the clipped input window, DMA addresses) and hands the record to the load,
compute and store stages through one FIFO each, so the stages never repeat
address arithmetic.
"""

from amaranth import *
from amaranth.lib import data, wiring, enum
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .config import DESC_FIELDS

__all__ = ["DescLayout", "JobLayout", "Dispatcher", "desc_signed"]

DescLayout = data.StructLayout({name: 32 for name, _, _ in DESC_FIELDS})

# Sizes of job fields. Coordinates fit 16 bits (IN_H etc. are refused above);
# window origins relative to a tile can be negative, and may be far off the
# input when the padding is large, hence the generous signed widths.
COORD = 17
SCOORD = signed(26)
LOCAL = signed(44)

JobLayout = data.StructLayout({
    "cob": 16, "cib": 16,
    "first": 1,                 # cib == 0: accumulators start from the bias
    "last": 1,                  # cib == CI_BLOCKS - 1: the tile-cob is complete
    "th": COORD, "tw": COORD,   # tile size in output pixels
    "wh": COORD, "ww": COORD,   # clipped input window size (0 when empty)
    "lrow0": SCOORD,            # first tile row's input row minus window top
    "lcol0": SCOORD,            # first tile column's input column minus window left
    "base0": LOCAL,             # lrow0 * ww: input-buffer address of (lrow0, 0)
    "row_step": LOCAL,          # SH * ww: input-buffer step between tile rows
    "in_addr": 32, "w_addr": 32, "p_addr": 32, "out_addr": 32,
})


def desc_signed(desc, name, bits):
    """Field `name` of a descriptor view as a signed value of `bits` bits."""
    return desc[name][:bits].as_signed()


class Dispatcher(wiring.Component):
    """Generates job records into three FIFOs (load, compute, store).

    The store FIFO only receives the last job of each tile-cob. `done` rises
    once every job has been pushed.
    """

    def __init__(self, cfg, fifo_depth=4):
        self._cfg = cfg
        self._fifo_depth = fifo_depth
        super().__init__({
            "desc": In(DescLayout),
            "start": In(1),
            "done": Out(1),
            "load_job": Out(JobLayout), "load_valid": Out(1), "load_ready": In(1),
            "comp_job": Out(JobLayout), "comp_valid": Out(1), "comp_ready": In(1),
            "store_job": Out(JobLayout), "store_valid": Out(1), "store_ready": In(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        d = self.desc
        bus_bytes = cfg.bus_bytes

        fifos = {}
        for name in ("load", "comp", "store"):
            fifo = fifos[name] = SyncFIFO(width=JobLayout.size, depth=self._fifo_depth)
            m.submodules[f"{name}_fifo"] = fifo
            m.d.comb += [
                getattr(self, f"{name}_job").eq(fifo.r_data),
                getattr(self, f"{name}_valid").eq(fifo.r_rdy),
                fifo.r_en.eq(getattr(self, f"{name}_ready")),
            ]

        pad_t = desc_signed(d, "PAD_T", 16)
        pad_l = desc_signed(d, "PAD_L", 16)
        oy0 = Signal(16)
        ox0 = Signal(16)
        cob = Signal(16)
        cib = Signal(16)
        job = Signal(JobLayout)

        # Stage 1: tile bounds and the unclipped input span.
        th = Signal(COORD)
        tw = Signal(COORD)
        iy_lo = Signal(SCOORD)
        ix_lo = Signal(SCOORD)
        iy_hi = Signal(SCOORD)
        ix_hi = Signal(SCOORD)
        # Stage 2: the window clipped to the input.
        wy0 = Signal(COORD)
        wx0 = Signal(COORD)
        wh = Signal(COORD)
        ww = Signal(COORD)

        def clip(lo, hi, size, origin, length):
            first = Mux(lo < 0, 0, lo)
            last = Mux(hi > size - 1, size - 1, hi)
            return [origin.eq(first), length.eq(Mux(last >= first, last - first + 1, 0))]

        last_cib = cib == d.CI_BLOCKS[:16] - 1
        last_cob = cob == d.CO_BLOCKS[:16] - 1
        last_tx = ox0 + d.TILE_W[:16] >= d.OUT_W[:16]
        last_ty = oy0 + d.TILE_H[:16] >= d.OUT_H[:16]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [oy0.eq(0), ox0.eq(0), cob.eq(0), cib.eq(0)]
                    m.next = "BOUNDS"
            with m.State("BOUNDS"):
                rows_left = d.OUT_H[:16] - oy0
                cols_left = d.OUT_W[:16] - ox0
                next_th = Mux(d.TILE_H[:16] < rows_left, d.TILE_H[:16], rows_left)
                next_tw = Mux(d.TILE_W[:16] < cols_left, d.TILE_W[:16], cols_left)
                lo_y = oy0 * d.SH[:8] - pad_t
                lo_x = ox0 * d.SW[:8] - pad_l
                m.d.sync += [
                    th.eq(next_th), tw.eq(next_tw),
                    iy_lo.eq(lo_y), ix_lo.eq(lo_x),
                    iy_hi.eq(lo_y + (next_th - 1) * d.SH[:8] + d.KH[:8] - 1),
                    ix_hi.eq(lo_x + (next_tw - 1) * d.SW[:8] + d.KW[:8] - 1),
                ]
                m.next = "WINDOW"
            with m.State("WINDOW"):
                m.d.sync += clip(iy_lo, iy_hi, d.IN_H[:16], wy0, wh)
                m.d.sync += clip(ix_lo, ix_hi, d.IN_W[:16], wx0, ww)
                m.next = "RECORD"
            with m.State("RECORD"):
                w_elem_bytes = cfg.w_elem_words * bus_bytes
                m.d.sync += [
                    job.cob.eq(cob), job.cib.eq(cib),
                    job.first.eq(cib == 0), job.last.eq(last_cib),
                    job.th.eq(th), job.tw.eq(tw), job.wh.eq(wh), job.ww.eq(ww),
                    job.lrow0.eq(iy_lo - wy0), job.lcol0.eq(ix_lo - wx0),
                    job.base0.eq((iy_lo - wy0) * ww),
                    job.row_step.eq(d.SH[:8] * ww),
                    job.in_addr.eq(d.IN_BASE + cib * d.IN_BLK_PITCH
                                   + wy0 * d.IN_ROW_PITCH + wx0 * d.IN_ELEM_PITCH),
                    job.w_addr.eq(d.W_BASE + (cob * d.CI_BLOCKS[:16] + cib)
                                  * (d.KH[:8] * d.KW[:8]) * w_elem_bytes),
                    job.p_addr.eq(d.P_BASE + cob * (cfg.p_elem_words * bus_bytes)),
                    job.out_addr.eq(d.OUT_BASE + cob * d.OUT_BLK_PITCH
                                    + oy0 * d.OUT_ROW_PITCH + ox0 * d.OUT_ELEM_PITCH),
                ]
                m.next = "PUSH"
            with m.State("PUSH"):
                store_ok = fifos["store"].w_rdy | ~job.last
                with m.If(fifos["load"].w_rdy & fifos["comp"].w_rdy & store_ok):
                    m.d.comb += [
                        fifos["load"].w_en.eq(1),
                        fifos["comp"].w_en.eq(1),
                        fifos["store"].w_en.eq(job.last),
                    ]
                    m.next = "BOUNDS"
                    with m.If(~last_cib):
                        m.d.sync += cib.eq(cib + 1)
                        # Same tile: bounds and window are unchanged.
                        m.next = "RECORD"
                    with m.Elif(~last_cob):
                        m.d.sync += [cib.eq(0), cob.eq(cob + 1)]
                        m.next = "RECORD"
                    with m.Elif(~last_tx):
                        m.d.sync += [cib.eq(0), cob.eq(0), ox0.eq(ox0 + d.TILE_W[:16])]
                    with m.Elif(~last_ty):
                        m.d.sync += [cib.eq(0), cob.eq(0), ox0.eq(0),
                                     oy0.eq(oy0 + d.TILE_H[:16])]
                    with m.Else():
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.d.sync += [oy0.eq(0), ox0.eq(0), cob.eq(0), cib.eq(0)]
                    m.next = "BOUNDS"

        for fifo in fifos.values():
            m.d.comb += fifo.w_data.eq(job)
        return m
