"""AXI4 DMA engines: 2-D strided transfers between memory and word streams.

A transfer command (`TransferLayout`) describes `n_rows` rows of `n_elems`
elements of `elem_words` bus words; element `e` of row `y` starts at byte
address `addr + y*row_pitch + e*elem_pitch`. The words of a transfer travel
element by element, row by row, in address order inside an element.

`ReadEngine` reads transfers into a word stream, `WriteEngine` writes a word
stream out as transfers. Both cut a transfer into INCR bursts the same way:

- a row whose elements abut (`elem_pitch == elem_words * bus_bytes`) is
  contiguous and is covered by bursts of up to 256 beats;
- otherwise every element gets its own bursts (one burst unless the element
  is longer than 256 beats);
- no burst crosses a 4 KiB boundary: such a burst is split there.

Command rules: `addr`, `elem_pitch` and `row_pitch` are byte quantities whose
low `log2(bus_bytes)` bits are ignored (everything is word aligned); address
arithmetic wraps modulo `2**axi_addr_width`. A command with `elem_words`,
`n_elems` or `n_rows` equal to 0 moves no data: it is accepted and dropped.

Timing of both engines (cycles counted from the command's handshake cycle 0):
the command reaches a one-entry stage where a contiguous row's word count
`n_elems * elem_words` is computed by a shift-and-add loop
(`bit_length(min(n_elems, elem_words)) - 1` extra cycles, so none for
non-contiguous rows or when either factor is 1); the burst planner then emits
one burst per cycle into the AR/AW register, so the first ARVALID/AWVALID is
at cycle 3 (plus the multiply cycles). The command stage accepts the next
command while the previous one is still being planned and its data is still
moving, so back-to-back transfers have no bubbles: a read of N beats in total
ends (idle high again) at cycle 3 + L + N against a memory answering L cycles
after AR, one beat per cycle; a write's last B arrives after its last W beat,
which is at cycle 5 + N - 1 at the earliest. At most `max_outstanding` bursts
are in flight (address issued, last R beat or B response not yet received);
with one-beat bursts a memory round trip of L cycles needs
`max_outstanding >= L` for one beat per cycle.

`cmd.ready` depends combinationally on ARREADY/AWREADY (the command stage
frees up in the cycle the planner finishes, which needs the AR/AW register
to move); nothing else passes combinationally from the bus to the streams
except RDATA/RVALID -> `data` and `data.ready` -> RREADY (read) and
`data` -> WDATA/WVALID, WREADY -> `data.ready` (write).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .axi import AXI4ReadSignature, AXI4WriteSignature, BURST_INCR, RESP_OKAY
from .config import AccelConfig

__all__ = ["transfer_limits", "TransferLayout", "BurstLayout", "BurstPlanner", "ReadEngine",
           "WriteEngine"]

MAX_BURST = 256       # beats of an AXI4 INCR burst
BOUNDARY = 4096       # bytes; a burst never crosses a multiple of this
AXCACHE = 0b0011      # normal non-cacheable bufferable
AXPROT = 0b000


def _check_cfg(cfg):
    if not isinstance(cfg, AccelConfig):
        raise TypeError(f"cfg must be an AccelConfig, not {cfg!r}")


def _check_outstanding(max_outstanding):
    if (isinstance(max_outstanding, bool) or not isinstance(max_outstanding, int)
            or not 1 <= max_outstanding <= 256):
        raise ValueError(f"max_outstanding must be an integer in 1..256, not {max_outstanding!r}")


def transfer_limits(cfg):
    """{field: largest value} of a transfer's counts, the largest the
    accelerator's stages ask for: an element is an input pixel, a weight
    matrix, a parameter element or an int32 output pixel; a row is a window
    row (at most in_depth elements, ERROR["WINDOW"]), a tile row (acc_depth,
    ERROR["TILE"]) or a kernel's weight matrices; the rows are a window's
    or a tile's."""
    _check_cfg(cfg)
    return {
        "elem_words": max(cfg.in_elem_words, cfg.w_elem_words, cfg.p_elem_words,
                          cfg.out_elem_words(False)),
        "n_elems": max(cfg.in_depth, cfg.acc_depth, cfg.kernel_max ** 2),
        "n_rows": max(cfg.in_depth, cfg.acc_depth),
    }


class TransferLayout(data.StructLayout):
    """Payload of a DMA command: a 2-D strided transfer (see the module docstring).

    Fields: `addr` (byte address), `elem_words`, `n_elems` (elements per
    row), `elem_pitch` (bytes), `n_rows`, `row_pitch` (bytes). The addresses
    and pitches have `cfg.axi_addr_width` bits (address arithmetic wraps
    there); the counts are as wide as `transfer_limits(cfg)` needs, so the
    planners count in no more bits than the stages use.
    """

    def __init__(self, cfg):
        limits = transfer_limits(cfg)
        super().__init__({
            "addr": cfg.axi_addr_width,
            "elem_words": range(limits["elem_words"] + 1),
            "n_elems": range(limits["n_elems"] + 1),
            "elem_pitch": cfg.axi_addr_width,
            "n_rows": range(limits["n_rows"] + 1),
            "row_pitch": cfg.axi_addr_width,
        })


class BurstLayout(data.StructLayout):
    """One AXI burst: byte address and AXI length encoding (beats - 1)."""

    def __init__(self, cfg):
        _check_cfg(cfg)
        super().__init__({"addr": cfg.axi_addr_width, "len": 8})


class BurstPlanner(wiring.Component):
    """Cuts transfer commands into AXI bursts (shared by both engines).

    Members:
      cmd: In(stream of TransferLayout)
      burst: Out(stream of BurstLayout), driven from a register (the AR/AW
        register of the engine)
      credit: In(1), the engine may take one more burst; a burst is planned
        only in a cycle where `credit` is high
      planned: Out(1), a burst is planned this cycle (it is in the output
        register from the next cycle on)
      busy: Out(1), a command is held or being planned or a burst is waiting
        in the output register
    """

    def __init__(self, cfg):
        _check_cfg(cfg)
        self._cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(TransferLayout(cfg))),
            "burst": Out(stream.Signature(BurstLayout(cfg))),
            "credit": In(1),
            "planned": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        shift = (cfg.bus_bytes - 1).bit_length()       # log2(bus bytes)
        waddr_bits = cfg.axi_addr_width - shift          # word address width
        page_words = BOUNDARY >> shift                   # words per 4 KiB page
        page_bits = (page_words - 1).bit_length()

        cmd = self.cmd.payload
        elems_bits = len(cmd.n_elems)
        rows_bits = len(cmd.n_rows)
        # Words of a planner element: at most a row's n_elems * elem_words.
        words_bits = len(cmd.elem_words) + elems_bits

        # Command stage: holds one command; computes the words of a planner
        # "element" (a whole row when the row is contiguous) by shift-and-add.
        p_full = Signal()
        p_addr = Signal(waddr_bits)
        p_words = Signal(words_bits)  # product accumulator: words per element
        p_addend = Signal(words_bits) # the larger factor shifted left by the bits done
        p_mul = Signal(max(len(cmd.elem_words), elems_bits))   # multiplier bits still to process
        p_n_elems = Signal(elems_bits)
        p_elem_pitch = Signal(waddr_bits)
        p_n_rows = Signal(rows_bits)
        p_row_pitch = Signal(waddr_bits)
        p_ready = Signal()            # p_full and p_mul == 0, kept in a register

        # Planner state, all addresses in words.
        active = Signal()
        cur = Signal(waddr_bits)      # next word to cover
        # Nothing reads elem_addr and row_addr, but without them the 12x12 board
        # top synthesises differently and no longer routes (docs/fpga.md).
        elem_addr = Signal(waddr_bits)
        row_addr = Signal(waddr_bits)
        elem_left = Signal(words_bits)  # words of the current element not yet covered
        elem_words = Signal(words_bits)
        elems_left = Signal(elems_bits) # elements of the row, current one included
        n_elems = Signal(elems_bits)
        rows_left = Signal(rows_bits)   # rows, current one included
        elem_pitch = Signal(waddr_bits)
        row_pitch = Signal(waddr_bits)

        # Words from `cur` to the next 4 KiB boundary, the longest burst from
        # `cur` (`limit`), the next element's and row's addresses, and whether
        # the element and the row are the last: all kept in registers, so that
        # planning a burst is one short compare and one add after them.
        room = Signal(page_bits + 1)
        limit = Signal(range(MAX_BURST + 1))
        next_elem = Signal(waddr_bits)
        next_row = Signal(waddr_bits)
        last_elem = Signal()
        last_row = Signal()
        single_elem = Signal()        # n_elems == 1

        # `elem_done`: the element's words left fit one burst from `cur`, so
        # this burst ends the element. It is a register, set with the
        # element's words left and the room, because it decides which
        # planner registers load (a compare in front of those enables limited
        # the clock).
        limit_bits = len(limit)
        elem_done = Signal()

        def start_burst(words_to_boundary, words_left):
            """The next burst starts `words_to_boundary` words before a 4 KiB
            boundary with `words_left` words of its element to cover."""
            next_limit = Mux(words_to_boundary < MAX_BURST, words_to_boundary, MAX_BURST)
            m.d.sync += [room.eq(words_to_boundary), limit.eq(next_limit),
                         elem_left.eq(words_left),
                         elem_done.eq((words_left[limit_bits:] == 0)
                                      & (words_left[:limit_bits] <= next_limit))]

        def room_at(addr):
            return page_words - addr[:page_bits]

        chunk = Signal(range(MAX_BURST + 1))   # words of the burst planned this cycle
        m.d.comb += chunk.eq(Mux(elem_done, elem_left, limit))

        step = Signal()
        m.d.comb += step.eq(active & self.credit & (~self.burst.valid | self.burst.ready))
        finish = Signal()
        m.d.comb += finish.eq(step & elem_done & last_elem & last_row)
        load = Signal()
        m.d.comb += load.eq(p_ready & (~active | finish))

        # Command stage.
        m.d.comb += self.cmd.ready.eq(~p_full | load)
        with m.If(p_mul != 0):
            with m.If(p_mul[0]):
                m.d.sync += p_words.eq(p_words + p_addend)
            m.d.sync += [p_addend.eq(p_addend << 1), p_mul.eq(p_mul >> 1),
                         p_ready.eq(p_full & (p_mul[1:] == 0))]
        with m.If(load):
            m.d.sync += [p_full.eq(0), p_ready.eq(0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            empty = (cmd.elem_words == 0) | (cmd.n_elems == 0) | (cmd.n_rows == 0)
            contiguous = cmd.elem_pitch[shift:] == cmd.elem_words
            m.d.sync += [
                p_full.eq(~empty),
                p_addr.eq(cmd.addr[shift:]),
                p_elem_pitch.eq(cmd.elem_pitch[shift:]),
                p_n_rows.eq(cmd.n_rows),
                p_row_pitch.eq(cmd.row_pitch[shift:]),
            ]
            with m.If(contiguous):
                # The whole row is one element of n_elems * elem_words words.
                # The smaller factor is the multiplier (fewer steps); its bit 0
                # is applied here.
                swap = cmd.elem_words < cmd.n_elems
                small = Mux(swap, cmd.elem_words, cmd.n_elems)
                large = Mux(swap, cmd.n_elems, cmd.elem_words)
                m.d.sync += [
                    p_words.eq(Mux(small[0], large, 0)),
                    p_addend.eq(large << 1),
                    p_mul.eq(small >> 1),
                    p_ready.eq(~empty & (small[1:] == 0)),
                    p_n_elems.eq(1),
                ]
            with m.Else():
                m.d.sync += [
                    p_words.eq(cmd.elem_words),
                    p_mul.eq(0),
                    p_ready.eq(~empty),
                    p_n_elems.eq(cmd.n_elems),
                ]

        # Planner: one burst per step, at most `limit` words of one element.
        with m.If(step):
            m.d.sync += [
                self.burst.valid.eq(1),
                self.burst.payload.addr.eq(Cat(Const(0, shift), cur)),
                self.burst.payload.len.eq(chunk - 1),
            ]
            with m.If(~elem_done):
                # A burst of `limit` words: up to the boundary, or MAX_BURST short of it.
                m.d.sync += cur.eq(cur + chunk)
                left = Signal.like(elem_left)
                m.d.comb += left.eq(elem_left - chunk)
                start_burst(Mux(room > MAX_BURST, room - MAX_BURST, page_words), left)
            with m.Elif(~last_elem):
                m.d.sync += [
                    cur.eq(next_elem), elem_addr.eq(next_elem),
                    next_elem.eq(next_elem + elem_pitch),
                    elems_left.eq(elems_left - 1),
                    last_elem.eq(elems_left == 2),
                ]
                start_burst(room_at(next_elem), elem_words)
            with m.Elif(~last_row):
                m.d.sync += [
                    cur.eq(next_row), elem_addr.eq(next_row), row_addr.eq(next_row),
                    next_elem.eq(next_row + elem_pitch), next_row.eq(next_row + row_pitch),
                    elems_left.eq(n_elems), last_elem.eq(single_elem),
                    rows_left.eq(rows_left - 1), last_row.eq(rows_left == 2),
                ]
                start_burst(room_at(next_row), elem_words)
            with m.Else():
                m.d.sync += active.eq(0)
        with m.Elif(self.burst.ready):
            m.d.sync += self.burst.valid.eq(0)

        with m.If(load):
            m.d.sync += [
                active.eq(1),
                cur.eq(p_addr), elem_addr.eq(p_addr), row_addr.eq(p_addr),
                next_elem.eq(p_addr + p_elem_pitch), next_row.eq(p_addr + p_row_pitch),
                elem_words.eq(p_words),
                elems_left.eq(p_n_elems), n_elems.eq(p_n_elems),
                last_elem.eq(p_n_elems == 1), single_elem.eq(p_n_elems == 1),
                rows_left.eq(p_n_rows), last_row.eq(p_n_rows == 1),
                elem_pitch.eq(p_elem_pitch), row_pitch.eq(p_row_pitch),
            ]
            start_burst(room_at(p_addr), p_words)

        m.d.comb += [self.planned.eq(step), self.busy.eq(p_full | active | self.burst.valid)]
        return m


def _issue_bursts(m, engine, prefix, retire):
    """Address side shared by `ReadEngine` and `WriteEngine`; returns the address handshake.

    Adds a `BurstPlanner` (submodule "planner") fed by `engine.cmd` whose burst
    register drives the AXI address channel named by `prefix` ("ar" or "aw"),
    and counts the bursts planned and not retired: one more per burst the
    planner plans, one fewer in each cycle `retire` is high (last R beat, or B
    response). The planner gets credit while they stay below
    `engine._max_outstanding` (the count is a register, so the credit is a
    short compare in front of the planner's step); `engine.idle` = planner
    not busy and none pending.
    """
    cfg = engine._cfg
    axi = engine.axi
    m.submodules.planner = planner = BurstPlanner(cfg)
    wiring.connect(m, wiring.flipped(engine.cmd), planner.cmd)

    def chan(name):
        return getattr(axi, prefix + name)

    m.d.comb += [
        chan("addr").eq(planner.burst.payload.addr),
        chan("len").eq(planner.burst.payload.len),
        chan("size").eq((cfg.bus_bytes - 1).bit_length()),
        chan("burst").eq(BURST_INCR),
        chan("cache").eq(AXCACHE),
        chan("prot").eq(AXPROT),
        chan("valid").eq(planner.burst.valid),
        planner.burst.ready.eq(chan("ready")),
    ]
    fire = chan("valid") & chan("ready")

    # Bursts planned (waiting in the AR/AW register or in flight) and not retired yet.
    pending = Signal(range(engine._max_outstanding + 1))
    with m.If(planner.planned & ~retire):
        m.d.sync += pending.eq(pending + 1)
    with m.Elif(retire & ~planner.planned):
        m.d.sync += pending.eq(pending - 1)
    m.d.comb += [
        planner.credit.eq(pending < engine._max_outstanding),
        engine.idle.eq(~planner.busy & (pending == 0)),
    ]
    return fire


class _Engine(wiring.Component):
    """What both DMA engines share: validated parameters and the port list. The
    data stream flows out of a read engine and into a write engine."""

    def __init__(self, cfg, max_outstanding, data_flow, axi_signature):
        _check_cfg(cfg)
        _check_outstanding(max_outstanding)
        self._cfg = cfg
        self._max_outstanding = max_outstanding
        super().__init__({
            "cmd": In(stream.Signature(TransferLayout(cfg))),
            "data": data_flow(stream.Signature(cfg.axi_data_width)),
            "axi": Out(axi_signature(addr_width=cfg.axi_addr_width,
                                     data_width=cfg.axi_data_width)),
            "idle": Out(1),
            "error": Out(1),
            "beats": Out(1),
        })


class ReadEngine(_Engine):
    """AXI4 read DMA: transfer commands in, the words read out as a stream.

    Members:
      cmd: In(stream.Signature(TransferLayout(cfg)))
      data: Out(stream.Signature(cfg.axi_data_width)), the words of each
        transfer in order. It is RDATA itself: `data.valid` is RVALID and RREADY
        is `data.ready`, so backpressure goes straight to the bus (no buffer).
        Beats with an error response are passed on as returned.
      axi: Out(AXI4ReadSignature), ARSIZE = log2(bus bytes), ARBURST = INCR,
        ARCACHE = 0b0011, ARPROT = 0; several bursts may be outstanding and
        the memory must answer in order (no IDs).
      idle: Out(1), no command held or being planned and every burst's last
        beat received. Goes low the cycle after a command handshake.
      error: Out(1), a one-cycle pulse (combinational) in the cycle of each R
        beat handshake whose RRESP is not OKAY; the owner makes it sticky. It
        is never later than the cycle before `idle` returns high.
      beats: Out(1), high in each cycle an R beat is accepted (combinational).

    `max_outstanding` (1..256, default 32) caps the bursts in flight.
    """

    def __init__(self, cfg, *, max_outstanding=32):
        super().__init__(cfg, max_outstanding, Out, AXI4ReadSignature)

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        r_beat = axi.rvalid & axi.rready
        # A burst is in flight until its last R beat arrives.
        _issue_bursts(m, self, "ar", retire=r_beat & axi.rlast)

        m.d.comb += [
            self.data.payload.eq(axi.rdata),
            self.data.valid.eq(axi.rvalid),
            axi.rready.eq(self.data.ready),
        ]
        m.d.comb += [
            self.beats.eq(r_beat),
            self.error.eq(r_beat & (axi.rresp != RESP_OKAY)),
        ]
        return m


class WriteEngine(_Engine):
    """AXI4 write DMA: transfer commands and a word stream in, bursts out.

    Members:
      cmd: In(stream.Signature(TransferLayout(cfg))), where the next words go.
      data: In(stream.Signature(cfg.axi_data_width)), the words, consumed in
        command order. WDATA is `data.payload` and WVALID is `data.valid`
        gated by "a burst's address has been issued", so the producer's stream
        rules (valid held, payload stable until the transfer) keep W legal.
      axi: Out(AXI4WriteSignature), AWSIZE = log2(bus bytes), AWBURST = INCR,
        AWCACHE = 0b0011, AWPROT = 0, WSTRB all ones, BREADY always 1. AW runs
        up to `max_outstanding` bursts ahead; the W beats of a burst come in
        AW order, never before the cycle after its AW handshake (two cycles
        after it when `max_outstanding > 1`), WLAST on each burst's last beat.
      idle: Out(1), no command held or being planned and every burst issued
        has its B response. Goes low the cycle after a command handshake.
      error: Out(1), a one-cycle pulse (combinational) in the cycle of each B
        response that is not OKAY; the owner makes it sticky. It is never
        later than the cycle before `idle` returns high.
      beats: Out(1), high in each cycle a W beat is accepted (combinational).

    `max_outstanding` (1..256, default 32) caps the bursts issued without a
    B response.
    """

    def __init__(self, cfg, *, max_outstanding=32):
        super().__init__(cfg, max_outstanding, In, AXI4WriteSignature)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        axi = self.axi
        # A burst is in flight until its B response arrives (BREADY is always 1).
        aw_fire = _issue_bursts(m, self, "aw", retire=axi.bvalid)

        # Lengths of the bursts whose address went out, for the W side. It
        # never overflows: it holds at most one entry per burst in flight.
        m.submodules.w_lens = w_lens = SyncFIFOBuffered(width=8, depth=self._max_outstanding)
        m.d.comb += [w_lens.w_en.eq(aw_fire), w_lens.w_data.eq(axi.awlen)]

        beat = Signal(8)              # beat index inside the current W burst
        m.d.comb += [
            axi.wdata.eq(self.data.payload),
            axi.wstrb.eq((1 << cfg.bus_bytes) - 1),
            axi.wlast.eq(beat == w_lens.r_data),
            axi.wvalid.eq(w_lens.r_rdy & self.data.valid),
            self.data.ready.eq(w_lens.r_rdy & axi.wready),
        ]
        w_fire = axi.wvalid & axi.wready
        with m.If(w_fire):
            with m.If(axi.wlast):
                m.d.sync += beat.eq(0)
                m.d.comb += w_lens.r_en.eq(1)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        m.d.comb += [
            axi.bready.eq(1),
            self.beats.eq(w_fire),
            self.error.eq(axi.bvalid & (axi.bresp != RESP_OKAY)),
        ]
        return m
