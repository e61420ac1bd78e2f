"""Compute stage: streams each job's tile through the PE array, one pixel per
cycle per kernel tap, accumulating into accumulator bank `t % 2`.

The input and weight buffers hold both banks, the bank being the top
address bit, so no multiplexer follows them. Pipeline, with `t` the cycle a
pixel is issued and `LA` the array latency (at least 2):

    t        input and weight buffer addresses presented
    t+1      buffer data out, registered
    t+2      pixel (masked to zero when outside the input) into the array
    t+LA     accumulator read address presented
    t+1+LA   accumulator data out, registered
    t+2+LA   column sums out; bias or old accumulator plus sums written back

The registers after the buffers keep the block RAMs' clock-to-output time
off the paths into the array and the adders. A kernel-tap pass lasts at
least PASS_MIN cycles so a pixel's accumulator is never read before the
previous pass wrote it: pass p + 1 reads pixel i at t + PASS_MIN + LA, after
the write at t + 2 + LA.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .fanout import registered_copies
from .jobs import ComputeJob, DescLayout, buffer_offset, tile_size, window_coord

__all__ = ["ComputeStage", "PASS_MIN"]

PASS_MIN = 3


class ComputeStage(wiring.Component):
    def __init__(self, cfg, array):
        self._cfg = cfg
        self._array = array
        R, C = cfg.rows, cfg.cols
        super().__init__({
            "desc": In(DescLayout),
            "job": In(ComputeJob(cfg)), "job_valid": In(1), "job_ready": Out(1),
            "in_full": In(2), "release": Out(2),
            "acc_free": In(2), "acc_filled": Out(2),
            "copy_params": Out(1), "copy_from": Out(1), "copy_to": Out(1),
            "in_rd_addr": Out(range(cfg.in_depth)), "w_rd_addr": Out(range(cfg.kernel_max ** 2)),
            "rd_bank": Out(1),
            "in_rd_data": In(8 * R), "w_rd_data": In(8 * R * C),
            "acc_rd_addr": Out(range(cfg.acc_depth)), "acc_rd_bank": Out(1),
            "acc_rd_data": In(data.ArrayLayout(32 * C, 2)),
            "bias": In(data.ArrayLayout(32 * C, 2)),
            "acc_wr_addr": Out(range(cfg.acc_depth)), "acc_wr_bank": Out(1),
            "acc_wr_data": Out(32 * C), "acc_wr_en": Out(1),
            "active": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        R, C = cfg.rows, cfg.cols
        m = Module()
        m.submodules.array = array = self._array
        d = self.desc

        job = Signal(ComputeJob(cfg))
        in_bank = Signal()   # input/weight bank of the current job
        acc_bank = Signal()  # accumulator bank of the current tile-cob

        # Position of the pixel being issued.
        kh = Signal(range(cfg.kernel_max))
        kw = Signal(range(cfg.kernel_max))
        tap = Signal(range(cfg.kernel_max ** 2))
        y = Signal(tile_size(cfg))
        x = Signal(tile_size(cfg))
        pixel = Signal(range(cfg.acc_depth))
        pass_cycle = Signal(range(PASS_MIN))  # saturates at PASS_MIN - 1
        pixels_done = Signal()
        # Input-window coordinates of the pixel (row, column); the *_pass
        # values are those of the pass's first pixel.
        lrow = Signal(window_coord(cfg))
        lcol = Signal(window_coord(cfg))
        lrow_pass = Signal(window_coord(cfg))
        lcol_pass = Signal(window_coord(cfg))
        # The pixel's input-buffer address, a register (an add in front of the
        # buffer's address was the 12x12 top's critical path), moved by
        # additions like the coordinates, from the addresses of the first
        # pixel of its tile row, of its pass, and of its kernel row's first pass.
        addr = Signal(buffer_offset(cfg))
        row_addr = Signal(buffer_offset(cfg))
        pass_addr = Signal(buffer_offset(cfg))
        kh_addr = Signal(buffer_offset(cfg))

        ctrl_layout = data.StructLayout({
            "valid": 1, "inside": 1, "addr": range(cfg.acc_depth),
            "from_bias": 1, "tile_end": 1, "bank": 1,
        })
        issue = Signal(ctrl_layout)

        running = Signal()
        m.d.comb += self.busy.eq(running)
        # The pixel is the last of its row / of the tile: registers set one
        # pixel ahead, as the end of a pass enables many registers.
        last_x = Signal()
        last_y = Signal()
        single_col = Signal()      # job.tw == 1, job.th == 1
        single_row = Signal()
        # job.tw - 2, job.th - 2 (modulo their width: all ones, which x and y
        # never reach, when the tile is a single column or row)
        col_before_last = Signal(tile_size(cfg))
        row_before_last = Signal(tile_size(cfg))
        first_x = [x.eq(0), last_x.eq(single_col)]
        first_y = [y.eq(0), last_y.eq(single_row)]
        last_kw = kw == d.KW[:8] - 1
        last_kh = kh == d.KH[:8] - 1
        pass_ends = (pixels_done | last_x & last_y) & (pass_cycle >= PASS_MIN - 1)
        job_ends = pass_ends & last_kw & last_kh

        with m.If(~running):
            can_start = self.job_valid & self.in_full.bit_select(in_bank, 1) & \
                (~self.job.first | self.acc_free.bit_select(acc_bank, 1))
            with m.If(can_start):
                j = self.job
                m.d.comb += [
                    self.job_ready.eq(1),
                    self.copy_params.eq(j.first),
                    self.copy_from.eq(in_bank), self.copy_to.eq(acc_bank),
                ]
                m.d.sync += [
                    job.eq(j), running.eq(1),
                    single_col.eq(j.tw == 1), single_row.eq(j.th == 1),
                    col_before_last.eq(j.tw - 2), row_before_last.eq(j.th - 2),
                    x.eq(0), last_x.eq(j.tw == 1), y.eq(0), last_y.eq(j.th == 1),
                    kh.eq(0), kw.eq(0), tap.eq(0), pixel.eq(0),
                    pass_cycle.eq(0), pixels_done.eq(0),
                    lrow.eq(j.lrow0), lcol.eq(j.lcol0),
                    lrow_pass.eq(j.lrow0), lcol_pass.eq(j.lcol0),
                    *(a.eq(j.base0 + j.lcol0) for a in (addr, row_addr, pass_addr, kh_addr)),
                ]
        with m.Else():
            m.d.comb += [
                issue.valid.eq(~pixels_done),
                issue.inside.eq((lrow >= 0) & (lrow < job.wh) & (lcol >= 0) & (lcol < job.ww)),
                issue.addr.eq(pixel),
                issue.from_bias.eq(job.first & (tap == 0)),
                issue.tile_end.eq(job.last & job_ends),
                issue.bank.eq(acc_bank),
                self.active.eq(~pixels_done),
            ]
            with m.If(pass_cycle < PASS_MIN - 1):
                m.d.sync += pass_cycle.eq(pass_cycle + 1)
            with m.If(~pixels_done):
                m.d.sync += pixel.eq(pixel + 1)
                with m.If(~last_x):
                    m.d.sync += [x.eq(x + 1), last_x.eq(x == col_before_last),
                                 lcol.eq(lcol + d.SW[:8]), addr.eq(addr + d.SW[:8])]
                with m.Elif(~last_y):
                    m.d.sync += [*first_x, y.eq(y + 1), last_y.eq(y == row_before_last),
                                 lcol.eq(lcol_pass), lrow.eq(lrow + d.SH[:8]),
                                 *(a.eq(row_addr + job.row_step) for a in (addr, row_addr))]
                with m.Else():
                    m.d.sync += pixels_done.eq(1)
            with m.If(pass_ends):
                m.d.sync += [*first_x, *first_y, pixel.eq(0), pass_cycle.eq(0),
                             pixels_done.eq(0), tap.eq(tap + 1)]
                with m.If(~last_kw):
                    m.d.sync += [kw.eq(kw + 1), lcol_pass.eq(lcol_pass + 1), lcol.eq(lcol_pass + 1),
                                 lrow.eq(lrow_pass),
                                 *(a.eq(pass_addr + 1) for a in (addr, row_addr, pass_addr))]
                with m.Else():
                    m.d.sync += [kw.eq(0), kh.eq(kh + 1), lcol_pass.eq(job.lcol0), lcol.eq(job.lcol0),
                                 lrow_pass.eq(lrow_pass + 1), lrow.eq(lrow_pass + 1),
                                 *(a.eq(kh_addr + job.ww)
                                   for a in (addr, row_addr, pass_addr, kh_addr))]
            with m.If(job_ends):
                m.d.comb += self.release.eq(Mux(in_bank, 0b10, 0b01))
                m.d.sync += [running.eq(0), in_bank.eq(~in_bank)]
                with m.If(job.last):
                    m.d.sync += acc_bank.eq(~acc_bank)

        m.d.comb += [
            self.in_rd_addr.eq(addr),
            self.w_rd_addr.eq(tap),
            self.rd_bank.eq(in_bank),
        ]

        # Delay line of the control bits alongside the data path.
        la = array.latency
        stages = [Signal(ctrl_layout, name=f"ctrl{i}") for i in range(la + 3)]
        m.d.comb += stages[0].eq(issue)
        for prev, cur in zip(stages, stages[1:]):
            m.d.sync += cur.eq(prev)
        s_in, s_read, s_data, s_write = stages[2], stages[la], stages[la + 1], stages[la + 2]
        s_buffer = stages[1]   # the buffers' data is out

        # The pixel is masked to zero outside the input as it is registered
        # (the mask in front of the DSPs was the ECP5 12x12's critical path),
        # into one copy a group of array columns (`PEArray.x`).
        in_data = registered_copies(m, Mux(s_buffer.inside, self.in_rd_data, 0),
                                    array.x_copies, "in_data", reset_less=True)
        w_data = Signal.like(self.w_rd_data, reset_less=True)
        m.d.sync += w_data.eq(self.w_rd_data)
        m.d.comb += [
            array.x.eq(Cat(*in_data)),
            array.w.eq(w_data),
            array.valid.eq(s_in.valid),
            self.acc_rd_addr.eq(s_read.addr),
            self.acc_rd_bank.eq(s_read.bank),
        ]

        # Each column's old value and bias are selected by its own copies of
        # the stage's bank and from_bias bits (one register for all 32 x C
        # multiplexers was a long route on the 12x12 top).
        sw = array.sum_width
        old = Signal(32 * C, reset_less=True)
        data_bank = registered_copies(m, s_read.bank, C, "data_bank")        # s_data.bank
        write_bank = registered_copies(m, s_data.bank, C, "write_bank")      # s_write.bank
        from_bias = registered_copies(m, s_data.from_bias, C, "from_bias")  # s_write.from_bias
        m.d.comb += [
            self.acc_wr_addr.eq(s_write.addr),
            self.acc_wr_bank.eq(s_write.bank),
            self.acc_wr_en.eq(s_write.valid),
        ]
        for c in range(C):
            column_bits = slice(32 * c, 32 * (c + 1))
            m.d.sync += old[column_bits].eq(
                Mux(data_bank[c], self.acc_rd_data[1][column_bits],
                    self.acc_rd_data[0][column_bits]))
            bias = Mux(write_bank[c], self.bias[1][column_bits], self.bias[0][column_bits])
            start = Mux(from_bias[c], bias, old[column_bits])
            column = array.sums[sw * c:sw * (c + 1)].as_signed()
            m.d.comb += self.acc_wr_data[32 * c:32 * (c + 1)].eq(start.as_signed() + column)
        with m.If(s_write.tile_end):
            m.d.comb += self.acc_filled.eq(Mux(s_write.bank, 0b10, 0b01))
        return m
