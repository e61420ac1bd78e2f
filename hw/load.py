"""Load stage: DMA-reads one job's parameters, weights and input window into
input/weight bank `j % 2` while the compute stage works on the other bank."""

from amaranth import *
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from .jobs import LoadJob, DescLayout, window_size

__all__ = ["LoadStage"]


def _assemble(m, asm, full, word_idx, elem_words, elem, en):
    """Take one bus word into the element of `elem_words` words assembled in `asm`:
    `asm` becomes `full` (the word shifted in on top), and on the element's last
    word (`word_idx`) `en` pulses to write `full` at `elem`, which moves on."""
    m.d.sync += asm.eq(full)
    with m.If(word_idx == elem_words - 1):
        m.d.comb += en.eq(1)
        m.d.sync += [word_idx.eq(0), elem.eq(elem + 1)]
    with m.Else():
        m.d.sync += word_idx.eq(word_idx + 1)


class LoadStage(wiring.Component):
    """Members:

    job/job_valid/job_ready: jobs from the dispatcher.
    bank_free: bit b set when input/weight bank b may be overwritten.
    filled: one-cycle pulse on bit b when bank b holds a complete job.
    cmd/data: to and from the DMA read engine (`TransferLayout` commands).
    in_*, w_*: write ports of the selected bank's input and weight buffers.
    params_word/params_en: word w of the parameter element for bank b when bit
      `b * p_elem_words + w` of `params_en` is set, a cycle after it arrived
      (registered, and an enable a word: each reaches one word of the bank's
      parameter register, not all of its hundreds of flip-flops).
    bank: the bank being written.
    """

    def __init__(self, cfg, transfer_layout):
        self._cfg = cfg
        bus = cfg.axi_data_width
        super().__init__({
            "desc": In(DescLayout),
            "job": In(LoadJob(cfg)), "job_valid": In(1), "job_ready": Out(1),
            "bank_free": In(2), "filled": Out(2), "bank": Out(1),
            "cmd": Out(stream.Signature(transfer_layout)),
            "data": In(stream.Signature(bus)),
            "in_addr": Out(range(cfg.in_depth)), "in_data": Out(8 * cfg.rows), "in_en": Out(1),
            "w_addr": Out(range(cfg.kernel_max ** 2)), "w_data": Out(8 * cfg.pes), "w_en": Out(1),
            "params_word": Out(bus), "params_en": Out(2 * cfg.p_elem_words),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        bus = cfg.axi_data_width
        bus_bytes = cfg.bus_bytes
        d = self.desc
        job = Signal(LoadJob(cfg))
        bank = Signal()
        m.d.comb += self.bank.eq(bank)

        # Words of the job's stream still to come before its input window, and
        # which part the next word belongs to: registered flags, as they
        # enable hundreds of parameter and assembly registers.
        p_left = Signal(range(cfg.p_elem_words + 1))
        w_left = Signal(range(cfg.kernel_max ** 2 * cfg.w_elem_words + 1))
        param_word = Signal()
        weight_word = Signal()
        # The input window arrives row by row, ww elements each.
        in_col = Signal(window_size(cfg))
        in_rows_left = Signal(window_size(cfg))
        active = Signal()

        # Receive side: route each word by its position in the job's stream.
        word = self.data.p
        w_word_idx = Signal(range(cfg.w_elem_words))
        in_word_idx = Signal(range(cfg.in_elem_words))
        w_asm = Signal(cfg.w_elem_words * bus)
        in_asm = Signal(cfg.in_elem_words * bus)
        w_elem = Signal(range(cfg.kernel_max ** 2))
        in_elem = Signal(range(cfg.in_depth))
        with m.FSM():
            with m.State("IDLE"):
                free = Mux(bank, self.bank_free[1], self.bank_free[0])
                with m.If(self.job_valid & free):
                    m.d.comb += self.job_ready.eq(1)
                    m.d.sync += [
                        job.eq(self.job), active.eq(1),
                        w_word_idx.eq(0), in_word_idx.eq(0), w_elem.eq(0), in_elem.eq(0),
                        p_left.eq(Mux(self.job.first, cfg.p_elem_words, 0)),
                        w_left.eq(self.job.w_words),
                        param_word.eq(self.job.first),
                        weight_word.eq(~self.job.first & (self.job.w_words != 0)),
                        in_col.eq(0), in_rows_left.eq(Mux(self.job.ww == 0, 0, self.job.wh)),
                    ]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += [
                    self.cmd.p.addr.eq(job.p_addr),
                    self.cmd.p.elem_words.eq(cfg.p_elem_words),
                    self.cmd.p.n_elems.eq(1),
                    self.cmd.p.elem_pitch.eq(cfg.p_elem_words * bus_bytes),
                    self.cmd.p.n_rows.eq(1),
                    self.cmd.p.row_pitch.eq(0),
                    self.cmd.valid.eq(job.first),
                ]
                with m.If(~job.first | self.cmd.ready):
                    m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [
                    self.cmd.p.addr.eq(job.w_addr),
                    self.cmd.p.elem_words.eq(cfg.w_elem_words),
                    self.cmd.p.n_elems.eq(job.taps),
                    self.cmd.p.elem_pitch.eq(cfg.w_elem_words * bus_bytes),
                    self.cmd.p.n_rows.eq(1),
                    self.cmd.p.row_pitch.eq(0),
                    self.cmd.valid.eq(1),
                ]
                with m.If(self.cmd.ready):
                    m.next = "INPUT"
            with m.State("INPUT"):
                has_window = in_rows_left != 0
                m.d.comb += [
                    self.cmd.p.addr.eq(job.in_addr),
                    self.cmd.p.elem_words.eq(cfg.in_elem_words),
                    self.cmd.p.n_elems.eq(job.ww),
                    self.cmd.p.elem_pitch.eq(d.IN_ELEM_PITCH),
                    self.cmd.p.n_rows.eq(job.wh),
                    self.cmd.p.row_pitch.eq(d.IN_ROW_PITCH),
                    self.cmd.valid.eq(has_window),
                ]
                with m.If(~has_window | self.cmd.ready):
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~param_word & ~weight_word & (in_rows_left == 0)):
                    m.d.comb += self.filled.eq(Mux(bank, 0b10, 0b01))
                    m.d.sync += [bank.eq(~bank), active.eq(0)]
                    m.next = "IDLE"

        m.d.comb += [self.data.ready.eq(1), self.busy.eq(active)]
        m.d.sync += [self.params_word.eq(word), self.params_en.eq(0)]
        w_full = Cat(w_asm[bus:], word)
        in_full = Cat(in_asm[bus:], word)
        m.d.comb += [
            self.w_addr.eq(w_elem), self.w_data.eq(w_full[:8 * cfg.pes]),
            self.in_addr.eq(in_elem), self.in_data.eq(in_full[:8 * cfg.rows]),
        ]
        # The word's enable: bank b's word p_elem_words - p_left.
        param_bit = Signal(range(2 * cfg.p_elem_words))
        m.d.comb += param_bit.eq(Mux(bank, cfg.p_elem_words, 0) + cfg.p_elem_words - p_left)
        with m.If(self.data.valid):
            with m.If(param_word):
                m.d.sync += [p_left.eq(p_left - 1),
                             param_word.eq(p_left != 1),
                             weight_word.eq((p_left == 1) & (w_left != 0)),
                             self.params_en.eq(1 << param_bit)]
            with m.Elif(weight_word):
                m.d.sync += [w_left.eq(w_left - 1), weight_word.eq(w_left != 1)]
                _assemble(m, w_asm, w_full, w_word_idx, cfg.w_elem_words, w_elem, self.w_en)
            with m.Else():
                _assemble(m, in_asm, in_full, in_word_idx, cfg.in_elem_words, in_elem, self.in_en)
                with m.If(self.in_en):
                    with m.If(in_col == job.ww - 1):
                        m.d.sync += [in_col.eq(0), in_rows_left.eq(in_rows_left - 1)]
                    with m.Else():
                        m.d.sync += in_col.eq(in_col + 1)
        return m
