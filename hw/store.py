"""Store stage: reads a finished accumulator bank one pixel every
`cfg.requant_groups` cycles, adds nothing (the bias is already in),
requantises or passes the int32 values through, and DMA-writes the tile's
output elements.

The requantiser has `cfg.requant_lane_count` lanes and a pixel's C channels
go through them in `requant_groups` cycles. By default there are as many
lanes as int8 outputs fit a bus word, so that is the time the bus takes to
write the pixel's int8 element and having fewer lanes than channels costs no
speed; fewer lanes still (DSP blocks on an FPGA) slow only layers whose
pixels take fewer compute cycles than that."""

import functools
import operator

from amaranth import *
from amaranth.lib import data, wiring, stream
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .fanout import registered_copies
from .jobs import StoreJob, DescLayout, desc_signed, tile_size

__all__ = ["StoreStage"]


class StoreStage(wiring.Component):
    def __init__(self, cfg, requantizer, transfer_layout, fifo_depth=16):
        self._cfg = cfg
        self._requant = requantizer
        self._fifo_depth = fifo_depth
        C = cfg.cols
        super().__init__({
            "desc": In(DescLayout),
            "job": In(StoreJob(cfg)), "job_valid": In(1), "job_ready": Out(1),
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

        job = Signal(StoreJob(cfg))
        bank = Signal()
        # Pixels are read in order, tw per tile row.
        issued = Signal(range(cfg.acc_depth + 1))
        col = Signal(tile_size(cfg))
        rows_left = Signal(tile_size(cfg))
        outstanding = Signal(range(self._fifo_depth + 1))
        reading = Signal()
        cmd_pending = Signal()

        # Output elements between the requantiser and the bus, in block RAM
        # (a buffered FIFO reads its memory synchronously).
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=words_int32 * bus,
                                                    depth=self._fifo_depth)

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

        groups = cfg.requant_groups
        lanes = rq.lanes
        # Cycles until the next pixel may be read: one pixel per `groups` cycles.
        gap = Signal(range(groups))
        read = reading & (rows_left != 0) & (outstanding < self._fifo_depth) & (gap == 0)
        m.d.comb += [self.acc_rd_addr.eq(issued), self.acc_rd_bank.eq(bank)]
        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(read):
            m.d.sync += [issued.eq(issued + 1), gap.eq(groups - 1)]
            with m.If(col == job.tw - 1):
                m.d.sync += [col.eq(0), rows_left.eq(rows_left - 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
        # The bank is handed back once the requantiser has taken the last pixel
        # and its parameters, so the compute stage may then overwrite both.
        release_delay = rq.latency + 3 + groups - 1
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
        # most of a cycle on FPGAs. The registers hold the pixel while its
        # channel groups go through the lanes, group g in the cycle `feed[g]`.
        # Each group of each register loads on its own copy of the read's
        # valid and bank (one register for the 3 x 32 x C flip-flops and
        # their bank multiplexers was the 12x12 top's critical path).
        width = lanes * 32
        padded = groups * width
        acc = Signal(padded, reset_less=True)
        mult = Signal(padded, reset_less=True)
        shift = Signal(padded, reset_less=True)
        parts = [(target, source, g) for target, source in
                 ((acc, self.acc_rd_data), (mult, self.mult), (shift, self.shift))
                 for g in range(groups)]
        read_valid = registered_copies(m, read, len(parts), "read_valid")
        read_bank = registered_copies(m, bank, len(parts), "read_bank")
        for index, (target, source, g) in enumerate(parts):
            with m.If(read_valid[index]):
                m.d.sync += target.word_select(g, width).eq(
                    Mux(read_bank[index], source[1], source[0])[g * width:(g + 1) * width])
        feed = Signal(groups)
        feed_next = Cat(read_valid[0], feed[:-1])
        m.d.sync += feed.eq(feed_next)
        # The same one-hot group select again for each lane (one register a
        # group drove about 210 multiplexers on the 12x12 top).
        lane_feeds = registered_copies(m, feed_next, lanes, "lane_feed")

        def in_its_cycle(value):
            """The lanes' words of `value`: group g's while feed[g] (a one-hot AND-OR)."""
            if groups == 1:
                return value
            return Cat(functools.reduce(operator.or_, (
                Mux(lane_feed[g], value.word_select(g * lanes + lane, 32), 0)
                for g in range(groups))) for lane, lane_feed in enumerate(lane_feeds))

        m.d.comb += [rq.acc.eq(in_its_cycle(acc)), rq.mult.eq(in_its_cycle(mult)),
                     rq.shift.eq(in_its_cycle(shift))]
        m.d.comb += [
            rq.valid.eq(feed.any()),
            rq.zero_point.eq(desc_signed(d, "OUT_ZP", 8)),
            rq.act_min.eq(desc_signed(d, "ACT_MIN", 8)),
            rq.act_max.eq(desc_signed(d, "ACT_MAX", 8)),
        ]

        # The groups' results, gathered into the pixel's element; the FIFO
        # takes it with the last group.
        result = rq.result
        raw = rq.raw
        if groups > 1:
            # A shift register of the earlier groups' results, each group on
            # its own copy of the requantiser's valid.
            out_group = Signal(range(groups))
            earlier_results = Signal((groups - 1) * lanes * 8, reset_less=True)
            earlier_raw = Signal((groups - 1) * lanes * 32, reset_less=True)
            with m.If(rq.valid_out_copies[-1]):
                m.d.sync += out_group.eq(Mux(out_group == groups - 1, 0, out_group + 1))
            for g in range(groups - 1):
                results_in = Cat(earlier_results, rq.result).word_select(g + 1, lanes * 8)
                raw_in = Cat(earlier_raw, rq.raw).word_select(g + 1, lanes * 32)
                with m.If(rq.valid_out_copies[g]):
                    m.d.sync += [earlier_results.word_select(g, lanes * 8).eq(results_in),
                                 earlier_raw.word_select(g, lanes * 32).eq(raw_in)]
            result = Cat(earlier_results, rq.result)
            raw = Cat(earlier_raw, rq.raw)
            last_group = out_group == groups - 1
        else:
            last_group = Const(1)
        # The output mode picks int8 or int32 a channel, each channel on its
        # own copy of MODE (a cycle late; it is fixed while the accelerator runs).
        mode_copies = registered_copies(m, requant_mode, C, "requant_mode")
        int8 = Cat(result[:C * 8], Const(0, 24 * C))
        m.d.comb += [
            fifo.w_data.eq(Cat(Mux(mode_copies[c], int8.word_select(c, 32), raw.word_select(c, 32))
                               for c in range(C))),
            fifo.w_en.eq(rq.valid_out & last_group),
        ]

        # Serialise elements into bus words.
        element = Signal(words_int32 * bus, reset_less=True)
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
