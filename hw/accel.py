"""Top level of the convolution accelerator: registers, descriptor checks,
performance counters, on-chip buffers and the load / compute / store stages.

The hardware knows convolution only; other operators reach it as ordinary
convolution descriptors built by the host driver.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import AXI4ReadSignature, AXI4WriteSignature, AXI4LiteSignature, \
    flat_members, connect_flat
from .axil import AXILiteSlave
from .compute import ComputeStage
from .config import (AccelConfig, DESC_FIELDS, COUNTERS, ERROR, REG, CTRL_START, CTRL_CLEAR,
                     identification)
from .dma import ReadEngine, WriteEngine, TransferLayout
from .fanout import registered_copies
from .jobs import Dispatcher, DescLayout
from .load import LoadStage
from .pe import PEArray
from .requant import Requantizer
from .store import StoreStage

__all__ = ["ConvAccel", "AXIL_ADDR_WIDTH"]

AXIL_ADDR_WIDTH = 12


class ConvAccel(wiring.Component):
    """The accelerator with flat `s_axil_*`, `m_axi_*` and `irq` ports."""

    def __init__(self, cfg=None):
        if cfg is None:
            cfg = AccelConfig()
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"cfg must be an AccelConfig, not {cfg!r}")
        self.cfg = cfg
        members = {"irq": Out(1)}
        members.update(flat_members("s_axil_", AXI4LiteSignature(addr_width=AXIL_ADDR_WIDTH),
                                    flipped=True))
        for signature in (AXI4ReadSignature, AXI4WriteSignature):
            members.update(flat_members("m_axi_", signature(addr_width=cfg.axi_addr_width,
                                                             data_width=cfg.axi_data_width)))
        super().__init__(members)

    def _checks(self, desc, beyond, dispatcher):
        """[(error name, failed)] of the descriptor checks, in ERROR's order.

        The first failure names the error. `desc` holds the kept bits of each
        field, `beyond[name]` says the register was written with a value
        beyond them: the checks see the whole 32-bit register, as if it were
        kept (an unsigned field beyond its bits is above every limit and not
        0). The products come from the dispatcher's preparation; each check
        may assume the earlier ones passed, which keeps those products exact.
        """
        cfg = self.cfg
        d = desc
        align_mask = cfg.bus_bytes - 1

        def above(name, high):
            return (d[name] > high) | beyond[name]

        def outside(name, low, high):
            return (d[name] < low) | above(name, high)

        def zero(*names):
            return Cat((d[name] == 0) & ~beyond[name] for name in names).any()

        aligned_fields = ("IN_BASE", "IN_ELEM_PITCH", "IN_ROW_PITCH", "IN_BLK_PITCH",
                          "OUT_BASE", "OUT_ELEM_PITCH", "OUT_ROW_PITCH", "OUT_BLK_PITCH",
                          "W_BASE", "P_BASE")
        checks = [
            ("KERNEL", outside("KH", 1, cfg.kernel_max) | outside("KW", 1, cfg.kernel_max)),
            ("STRIDE", outside("SH", 1, cfg.stride_max) | outside("SW", 1, cfg.stride_max)),
            ("SHAPE", zero("IN_H", "IN_W", "OUT_H", "OUT_W")),
            ("BLOCKS", zero("CI_BLOCKS", "CO_BLOCKS")),
            ("TILE", zero("TILE_H", "TILE_W") | above("TILE_H", cfg.acc_depth)
                     | above("TILE_W", cfg.acc_depth)
                     | (dispatcher.tile_pixels > cfg.acc_depth)),
            ("WINDOW", dispatcher.window_elems > cfg.in_depth),
            ("ALIGN", Cat((d[name] & align_mask) != 0 for name in aligned_fields).any()),
            ("RANGE", Cat(beyond.values()).any()),
            ("ACT", d.ACT_MIN[:8].as_signed() > d.ACT_MAX[:8].as_signed()),
        ]
        return checks

    @staticmethod
    def _desc_registers(m, desc, write, wdata, wstrb):
        """The descriptor registers: each field keeps its `bits` (stored
        sign- or zero-extended in `desc`, so a register reads back the value
        the hardware uses) and, for the byte lanes above them, flags saying
        whether the last write there left them as the kept value's extension.
        Returns {name: the register holds a value beyond the field} for the
        fields narrower than 32 bits (ERROR["RANGE"]). `write[name]` enables
        a write of `wdata` to the field's register, one enable a byte lane."""
        beyond = {}
        for name, bits, signed in DESC_FIELDS:
            kept = Signal(bits, name=f"desc_{name.lower()}")
            m.d.comb += desc[name].eq(kept.as_signed() if signed else kept)
            for lane in range(-(-bits // 8)):
                part = slice(8 * lane, min(8 * lane + 8, bits))
                with m.If(write[name] & wstrb[lane]):
                    m.d.sync += kept[part].eq(wdata[part])
            if bits == 32:
                continue
            # The register bits above the field, a byte lane at a time: all
            # zero, and (signed fields) all one.
            lanes = range(bits // 8, 4)
            zeros = Signal(len(lanes), name=f"desc_{name.lower()}_zeros", init=-1)
            ones = Signal(len(lanes), name=f"desc_{name.lower()}_ones")
            for index, lane in enumerate(lanes):
                upper = wdata.word_select(lane, 8)[bits - 8 * lane if lane == bits // 8 else 0:]
                with m.If(write[name] & wstrb[lane]):
                    m.d.sync += zeros[index].eq(upper == 0)
                    if signed:
                        m.d.sync += ones[index].eq(upper == (1 << len(upper)) - 1)
            if signed:
                sign = kept[bits - 1]
                beyond[name] = Mux(sign, ~ones.all(), ~zeros.all())
            else:
                beyond[name] = ~zeros.all()
        return beyond

    @staticmethod
    def _read_mux(m, axil, readable):
        """The register read data, in two registered halves (the slave's read
        latency is 2): in the cycle after `read` each group of eight registers
        is multiplexed into a register next to them, in the cycle after that
        the addressed group is selected. Unmapped addresses read 0."""
        group_words = 8
        low = slice(2, 2 + (group_words - 1).bit_length())
        high = slice(low.stop, None)
        read_addr = Signal.like(axil.addr)
        with m.If(axil.read):
            m.d.sync += read_addr.eq(axil.addr)
        groups = {}
        for offset, value in readable.items():
            groups.setdefault(offset >> low.stop, {})[offset >> low.start & (group_words - 1)] = value
        group_data = {}
        for group, members in groups.items():
            group_data[group] = Signal(32, name=f"read_group_{group}")
            with m.Switch(read_addr[low]):
                for index, value in members.items():
                    with m.Case(index):
                        m.d.sync += group_data[group].eq(value)
                with m.Default():
                    m.d.sync += group_data[group].eq(0)
        rdata = Signal(32)
        with m.Switch(read_addr[high]):
            for group, value in group_data.items():
                with m.Case(group):
                    m.d.comb += rdata.eq(value)
        return rdata

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()

        m.submodules.axil = axil = AXILiteSlave(AXIL_ADDR_WIDTH, read_latency=2)
        m.submodules.reader = reader = ReadEngine(cfg)
        m.submodules.writer = writer = WriteEngine(cfg)
        connect_flat(m, self, "s_axil_", axil.axil)
        connect_flat(m, self, "m_axi_", reader.axi)
        connect_flat(m, self, "m_axi_", writer.axi)

        transfer = TransferLayout(cfg)
        m.submodules.dispatcher = dispatcher = Dispatcher(cfg)
        m.submodules.load = load = LoadStage(cfg, transfer)
        m.submodules.compute = compute = ComputeStage(cfg, PEArray(cfg))
        m.submodules.store = store = StoreStage(cfg, Requantizer(cfg), transfer)

        # Registers.
        desc = Signal(DescLayout)
        busy = Signal()
        done = Signal()
        error = Signal()
        error_code = Signal(8)
        irq_enable = Signal()
        counters = {name: Signal(cfg.counter_width, name=f"count_{name.lower()}")
                    for name in COUNTERS}
        for stage in (dispatcher, load, compute, store):
            m.d.comb += stage.desc.eq(desc)

        # Register writes take effect a cycle after the slave's strobe, from
        # registers: `start` resets the counters and starts the dispatcher, a
        # fan-out that should not begin at the slave's address multiplexer.
        # The write's response comes no earlier, so a read after it sees it.
        reg_write = Signal()
        reg_addr = Signal.like(axil.addr)
        reg_wdata = Signal.like(axil.wdata)
        reg_wstrb = Signal.like(axil.wstrb)
        m.d.sync += [reg_write.eq(axil.write), reg_addr.eq(axil.addr),
                     reg_wdata.eq(axil.wdata), reg_wstrb.eq(axil.wstrb)]
        # CTRL's bits are decoded into registers beside them: `start` reaches
        # the dispatcher's loop registers (from the address compare it was the
        # 12x12 top's critical path with the PLL at 100 MHz).
        ctrl_write = axil.write & (axil.addr == REG["CTRL"]) & axil.wstrb[0]
        reg_start = Signal()
        reg_clear = Signal()
        m.d.sync += [reg_start.eq(ctrl_write & axil.wdata[0]),
                     reg_clear.eq(ctrl_write & axil.wdata[1])]
        # One enable a byte lane: the data goes straight to the flip-flops.
        desc_write = {name: reg_write & (reg_addr == REG["DESC"] + 4 * index) & ~busy
                      for index, (name, _, _) in enumerate(DESC_FIELDS)}
        beyond = self._desc_registers(m, desc, desc_write, reg_wdata, reg_wstrb)
        with m.If(reg_write & (reg_addr == REG["IRQ_ENABLE"])):
            m.d.sync += irq_enable.eq(reg_wdata[0])

        readable = identification(cfg)
        readable[REG["STATUS"]] = Cat(busy, done, error, C(0, 5), error_code)
        readable[REG["IRQ_ENABLE"]] = irq_enable
        for index, (name, _, _) in enumerate(DESC_FIELDS):
            readable[REG["DESC"] + 4 * index] = desc[name]
        for index, name in enumerate(COUNTERS):
            readable[REG["COUNTERS"] + 8 * index] = counters[name][:32]
            readable[REG["COUNTERS"] + 8 * index + 4] = counters[name][32:]
        m.d.comb += [axil.rdata.eq(self._read_mux(m, axil, readable)),
                     self.irq.eq(done & irq_enable)]

        # Bank ownership flags between the stages.
        in_full = Signal(2)
        acc_full = Signal(2)
        m.d.sync += [
            in_full.eq((in_full | load.filled) & ~compute.release),
            acc_full.eq((acc_full | compute.acc_filled) & ~store.release),
        ]
        m.d.comb += [
            load.bank_free.eq(~in_full), compute.in_full.eq(in_full),
            compute.acc_free.eq(~acc_full), store.acc_full.eq(acc_full),
        ]

        # Job queues and DMA streams.
        for stage, prefix in ((load, "load"), (compute, "comp"), (store, "store")):
            m.d.comb += [
                stage.job.eq(getattr(dispatcher, f"{prefix}_job")),
                stage.job_valid.eq(getattr(dispatcher, f"{prefix}_valid")),
                getattr(dispatcher, f"{prefix}_ready").eq(stage.job_ready),
            ]
        wiring.connect(m, load.cmd, reader.cmd)
        wiring.connect(m, reader.data, load.data)
        wiring.connect(m, store.cmd, writer.cmd)
        wiring.connect(m, store.data, writer.data)

        # Buffers, two banks each.
        params = [Signal(cfg.p_elem_words * cfg.bus_bytes * 8, name=f"params{b}") for b in range(2)]
        acc_params = [Signal(3 * 32 * cfg.cols, name=f"acc_params{b}") for b in range(2)]
        lane_bits = 32 * cfg.cols
        # A tile's parameters are copied from its input bank's parameter
        # register to its accumulator bank's a cycle after the compute stage
        # starts it, from registers: an enable and a source select for each
        # bus word's worth of parameters (one register for thousands of
        # flip-flops was the 12x12 top's critical path, 20.8 ns of routing).
        # Neither register changes meanwhile: the input bank stays full until
        # the job ends, the accumulator bank's parameters are read only after
        # its first column sums, LA + 2 cycles later.
        chunk = cfg.axi_data_width
        chunks = -(-3 * lane_bits // chunk)
        copy_to = [registered_copies(m, compute.copy_params & (compute.copy_to == b), chunks,
                                     f"copy_to{b}") for b in range(2)]
        copy_from = registered_copies(m, compute.copy_from, chunks, "copy_from")
        # Input and weight buffers: both banks in one memory, the bank is the
        # top address bit (load writes one bank while compute reads the other;
        # bank 1 starts at the next power of two). The weight buffer is shallow
        # and R*C bytes wide: as distributed RAM (yosys' choice on the ECP5)
        # its read address fans out to hundreds of LUT RAMs over the chip,
        # the 12x12 top's critical path (19.4 ns of routing); block RAM
        # takes a few dozen.
        # No buffer is ever read at an address in the cycle it is written
        # there (the banks' ownership; for the accumulators, PASS_MIN), so
        # synthesis need not emulate what a read returns then (`no_rw_check`:
        # yosys would add a register and a multiplexer a data bit, and a
        # select that fans out to all of them).
        no_collisions = {"no_rw_check": 1}
        for name, depth, (addr, wdata, en), (rd_addr, rd_data), attrs in (
                ("in_mem", cfg.in_depth, (load.in_addr, load.in_data, load.in_en),
                 (compute.in_rd_addr, compute.in_rd_data), no_collisions),
                ("w_mem", cfg.kernel_max ** 2, (load.w_addr, load.w_data, load.w_en),
                 (compute.w_rd_addr, compute.w_rd_data), {**no_collisions, "ram_style": "block"})):
            m.submodules[name] = mem = Memory(shape=len(wdata), depth=(1 << len(addr)) + depth,
                                              init=[], attrs=attrs)
            write = mem.write_port()
            read = mem.read_port()
            m.d.comb += [
                write.addr.eq(Cat(addr, load.bank)), write.data.eq(wdata), write.en.eq(en),
                read.addr.eq(Cat(rd_addr, compute.rd_bank)), rd_data.eq(read.data),
            ]
        for b in range(2):
            acc_mem = Memory(shape=32 * cfg.cols, depth=cfg.acc_depth, init=[],
                             attrs=no_collisions)
            m.submodules[f"acc_mem{b}"] = acc_mem
            acc_write = acc_mem.write_port()
            acc_read = acc_mem.read_port()
            m.d.comb += [
                acc_write.addr.eq(compute.acc_wr_addr), acc_write.data.eq(compute.acc_wr_data),
                acc_write.en.eq(compute.acc_wr_en & (compute.acc_wr_bank == b)),
                acc_read.addr.eq(Mux(acc_full[b], store.acc_rd_addr, compute.acc_rd_addr)),
                compute.acc_rd_data[b].eq(acc_read.data),
                store.acc_rd_data[b].eq(acc_read.data),
            ]
            # Each bank's words come from its own copy of the load stage's
            # word, a cycle later (the words of a bank sit beside its
            # consumers across the chip: the one register's route to the far
            # bank was the 12x12 top's critical path, 15.1 ns). The parameters
            # arrive before the job's weights and input words, so they are in
            # place cycles before the bank is filled.
            (params_word,) = registered_copies(m, load.params_word, 1, f"params_word{b}",
                                               reset_less=True)
            bank_words = slice(b * cfg.p_elem_words, (b + 1) * cfg.p_elem_words)
            (params_en,) = registered_copies(m, load.params_en[bank_words], 1, f"params_en{b}")
            for word in range(cfg.p_elem_words):
                with m.If(params_en[word]):
                    m.d.sync += params[b].word_select(word, len(params_word)).eq(params_word)
            for index in range(chunks):
                part = slice(index * chunk, min((index + 1) * chunk, 3 * lane_bits))
                with m.If(copy_to[b][index]):
                    m.d.sync += acc_params[b][part].eq(
                        Mux(copy_from[index], params[1][part], params[0][part]))
            m.d.comb += [
                compute.bias[b].eq(acc_params[b][:lane_bits]),
                store.mult[b].eq(acc_params[b][lane_bits:2 * lane_bits]),
                store.shift[b].eq(acc_params[b][2 * lane_bits:]),
            ]

        # Control.
        start = reg_start & ~busy
        clear = reg_clear & ~busy
        # The checks are registered, then the first failure picks the code.
        # `passed` is the dispatcher's `run` straight from a register (it
        # starts hundreds of the dispatcher's registers): set for the CHECK
        # cycle alone, while the dispatcher waits in PREPARED.
        checks = self._checks(desc, beyond, dispatcher)
        failures = Signal(len(checks))
        passed = Signal()
        m.d.comb += dispatcher.run.eq(passed)
        code = C(0, 8)
        for index, (name, _) in reversed(list(enumerate(checks))):
            code = Mux(failures[index], ERROR[name], code)
        stages_idle = ~(load.busy | compute.busy | store.busy | load.job_valid
                        | compute.job_valid | store.job_valid) & reader.idle & writer.idle
        # The counters count their events a cycle late, from registers: a
        # beat is an AXI handshake, whose ready may come from far away (the
        # board's memory and UART bridge). So does their enable, `busy`, from
        # one registered copy a counter (the one register drove 382 of the
        # 12x12 top's flip-flop enables). Nothing is lost at either end: no
        # event happens while idle, and the last one is many cycles before
        # the run ends (the write response, the stages' pipelines). Written
        # before the control below, so that the reset at start has priority
        # over the last count of the run before.
        active = Signal()
        read_beat = Signal()
        write_beat = Signal()
        m.d.sync += [active.eq(compute.active), read_beat.eq(reader.beats),
                     write_beat.eq(writer.beats)]
        counting = dict(zip(COUNTERS, registered_copies(m, busy, len(COUNTERS), "counting")))
        events = {
            "CYCLES": 1, "ACTIVE": active, "MACS": Mux(active, cfg.pes, 0),
            "BYTES_RD": Mux(read_beat, cfg.bus_bytes, 0),
            "BYTES_WR": Mux(write_beat, cfg.bus_bytes, 0), "STALL": ~active,
        }
        for name, counter in counters.items():
            with m.If(counting[name]):
                m.d.sync += counter.eq(counter + events[name])

        with m.If(clear):
            m.d.sync += [done.eq(0), error.eq(0), error_code.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [busy.eq(1), done.eq(0), error.eq(0), error_code.eq(0)]
                    m.d.sync += [counter.eq(0) for counter in counters.values()]
                    m.d.comb += dispatcher.start.eq(1)
                    m.next = "PREPARE"
            with m.State("PREPARE"):
                with m.If(dispatcher.prepared):
                    failed = Cat(failed for _, failed in checks)
                    m.d.sync += [failures.eq(failed), passed.eq(~failed.any())]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += passed.eq(0)
                with m.If(passed):
                    m.next = "RUN"
                with m.Else():
                    m.d.sync += [busy.eq(0), done.eq(1), error.eq(1), error_code.eq(code)]
                    m.next = "IDLE"
            with m.State("RUN"):
                with m.If(dispatcher.done & stages_idle):
                    m.d.sync += [busy.eq(0), done.eq(1)]
                    m.next = "IDLE"
        dma_error = Signal()
        with m.If(busy & (reader.error | writer.error) & ~dma_error):
            m.d.sync += [dma_error.eq(1), error.eq(1),
                         error_code.eq(Mux(reader.error, ERROR["DMA_READ"], ERROR["DMA_WRITE"]))]
        with m.If(start):
            m.d.sync += dma_error.eq(0)
        return m
