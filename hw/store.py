"""Store stage: reads a finished accumulator bank one pixel per cycle, adds
nothing (the bias is already in), requantises or passes the int32 values
through, and DMA-writes the tile's output elements."""

from amaranth import *
from amaranth.lib import data, wiring, stream
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .jobs import COORD, StoreJob, DescLayout, desc_signed

__all__ = ["StoreStage"]


class StoreStage(wiring.Component):
    def __init__(self, cfg, requantizer, transfer_layout, fifo_depth=16):
        self._cfg = cfg
        self._requant = requantizer
        self._fifo_depth = fifo_depth
        C = cfg.cols
        super().__init__({
            "desc": In(DescLayout),
            "job": In(StoreJob), "job_valid": In(1), "job_ready": Out(1),
            "acc_full": In(2), "release": Out(2),
            "acc_rd_addr": Out(range(cfg.acc_depth)), "acc_rd_bank": Out(1),
            "acc_rd_data": In(data.ArrayLayout(32 * C, 2)),
            "mult": In(data.ArrayLayout(32 * C, 2)),
            "shift": In(data.ArrayLayout(32 * C, 2)),
            "cmd": Out(stream.Signature(transfer_layout)),
            "data": Out(stream.Signature(cfg.axi_data_width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        C = cfg.cols
        bus = cfg.axi_data_width
        m = Module()
        m.submodules.requant = rq = self._requant
        d = self.desc
        requant_mode = d.MODE[0]
        words_int8 = cfg.out_elem_words(True)
        words_int32 = cfg.out_elem_words(False)

        job = Signal(StoreJob)
        bank = Signal()
        # Pixels are read in order, tw per tile row.
        issued = Signal(range(cfg.acc_depth + 1))
        col = Signal(COORD)
        rows_left = Signal(COORD)
        outstanding = Signal(range(self._fifo_depth + 1))
        reading = Signal()
        cmd_pending = Signal()

        m.submodules.fifo = fifo = SyncFIFO(width=words_int32 * bus, depth=self._fifo_depth)

        # Accept a tile-cob, queue its write command, then read its pixels.
        start = ~reading & ~cmd_pending & self.job_valid & self.acc_full.bit_select(bank, 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += cmd_pending.eq(0)
        with m.If(start):
            m.d.comb += self.job_ready.eq(1)
            m.d.sync += [job.eq(self.job), reading.eq(1), cmd_pending.eq(1), issued.eq(0),
                         col.eq(0), rows_left.eq(self.job.th)]
        m.d.comb += [
            self.cmd.p.addr.eq(job.out_addr),
            self.cmd.p.elem_words.eq(Mux(requant_mode, words_int8, words_int32)),
            self.cmd.p.n_elems.eq(job.tw),
            self.cmd.p.elem_pitch.eq(d.OUT_ELEM_PITCH),
            self.cmd.p.n_rows.eq(job.th),
            self.cmd.p.row_pitch.eq(d.OUT_ROW_PITCH),
            self.cmd.valid.eq(cmd_pending),
        ]

        read = reading & (rows_left != 0) & (outstanding < self._fifo_depth)
        m.d.comb += [self.acc_rd_addr.eq(issued), self.acc_rd_bank.eq(bank)]
        with m.If(read):
            m.d.sync += issued.eq(issued + 1)
            with m.If(col == job.tw - 1):
                m.d.sync += [col.eq(0), rows_left.eq(rows_left - 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
        # The bank is handed back once the requantiser has taken the last pixel
        # and its parameters, so the compute stage may then overwrite both.
        release_delay = rq.latency + 3
        released = Signal(release_delay)
        finishing = reading & (rows_left == 0)
        with m.If(finishing):
            m.d.sync += [reading.eq(0), bank.eq(~bank)]
        m.d.sync += released.eq(Cat(finishing, released[:-1]))
        release_bank = Signal(release_delay)
        m.d.sync += release_bank.eq(Cat(bank, release_bank[:-1]))
        with m.If(released[-1]):
            m.d.comb += self.release.eq(Mux(release_bank[-1], 0b10, 0b01))

        # The accumulator buffer's output is registered (with its bank's
        # parameters) before the requantiser: block RAM clock-to-output is
        # most of a cycle on FPGAs.
        read_valid = Signal()
        read_bank = Signal()
        m.d.sync += [read_valid.eq(read), read_bank.eq(bank)]
        acc = Signal.like(self.acc_rd_data[0])
        mult = Signal.like(self.mult[0])
        shift = Signal.like(self.shift[0])
        acc_valid = Signal()
        m.d.sync += [acc.eq(self.acc_rd_data[read_bank]), mult.eq(self.mult[read_bank]),
                     shift.eq(self.shift[read_bank]), acc_valid.eq(read_valid)]
        m.d.comb += [
            rq.acc.eq(acc),
            rq.mult.eq(mult),
            rq.valid.eq(acc_valid),
            rq.zero_point.eq(desc_signed(d, "OUT_ZP", 8)),
            rq.act_min.eq(desc_signed(d, "ACT_MIN", 8)),
            rq.act_max.eq(desc_signed(d, "ACT_MAX", 8)),
        ]
        m.d.comb += rq.shift.eq(shift)
        m.d.comb += [
            fifo.w_data.eq(Mux(requant_mode, rq.result, rq.raw)),
            fifo.w_en.eq(rq.valid_out),
        ]

        # Serialise elements into bus words.
        element = Signal(words_int32 * bus)
        word_index = Signal(range(words_int32))
        holding = Signal()
        last_word = word_index == Mux(requant_mode, words_int8 - 1, words_int32 - 1)
        m.d.comb += [
            self.data.p.eq(element.word_select(word_index, bus)),
            self.data.valid.eq(holding),
        ]
        take = (~holding | self.data.ready & last_word) & fifo.r_rdy
        with m.If(holding & self.data.ready):
            m.d.sync += word_index.eq(word_index + 1)
            with m.If(last_word):
                m.d.sync += [holding.eq(0), word_index.eq(0)]
        with m.If(take):
            m.d.comb += fifo.r_en.eq(1)
            m.d.sync += [element.eq(fifo.r_data), holding.eq(1), word_index.eq(0)]
        m.d.sync += outstanding.eq(outstanding + read - take)
        m.d.comb += self.busy.eq(reading | cmd_pending | (outstanding != 0) | holding
                                 | released.any())
        return m
