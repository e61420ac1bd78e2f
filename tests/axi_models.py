"""Cycle-level Python models of AXI4/AXI4-Lite peers and streams for tests.

AXI4 memory slaves (read and write, with latency, random READY/VALID gaps,
in-order responses and an SLVERR region), stream sources and sinks, an
AXI4-Lite master and the owner of AXILiteSlave's register bus.

All models run inside one Amaranth testbench loop (`run`). Each cycle every
model first `drive`s its outputs for the cycle (decided from its own state
only, never from the DUT's outputs of the same cycle), then every model
`sample`s the settled DUT outputs and records the handshakes that happen at
the coming clock edge. Protocol violations raise `ProtocolError`, which
aborts the simulation.

Reference functions (`transfer_words`, `plan_bursts`) describe what the DMA
engines must do, independently of the hardware's algorithm.
"""

import random

from amaranth.sim import Simulator

__all__ = ["ProtocolError", "Memory", "StreamSource", "StreamSink", "Recorder",
           "AXIReadSlave", "AXIWriteSlave", "AXILiteMaster", "RegisterOwner", "run",
           "transfer_words", "plan_bursts"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10
BURST_INCR = 0b01
PAGE = 4096


class ProtocolError(AssertionError):
    """The DUT broke an AXI or stream rule."""


def _check(condition, message):
    if not condition:
        raise ProtocolError(message)


def transfer_words(cmd, bus_bytes, addr_width=32):
    """Byte addresses of the words of a transfer command (a dict), in stream order."""
    mask = (1 << addr_width) - 1
    addrs = []
    for row in range(cmd["n_rows"]):
        for elem in range(cmd["n_elems"]):
            start = cmd["addr"] + row * cmd["row_pitch"] + elem * cmd["elem_pitch"]
            addrs.extend((start + word * bus_bytes) & mask for word in range(cmd["elem_words"]))
    return addrs


def plan_bursts(cmd, bus_bytes, addr_width=32):
    """The (byte address, beats) bursts the DMA contract prescribes for `cmd`."""
    mask = (1 << addr_width) - 1
    contiguous = cmd["elem_pitch"] == cmd["elem_words"] * bus_bytes
    pieces = []                               # (start, words): a burst never spans two
    for row in range(cmd["n_rows"]):
        row_start = cmd["addr"] + row * cmd["row_pitch"]
        if contiguous:
            pieces.append((row_start & mask, cmd["n_elems"] * cmd["elem_words"]))
        else:
            for elem in range(cmd["n_elems"]):
                pieces.append(((row_start + elem * cmd["elem_pitch"]) & mask, cmd["elem_words"]))
    bursts = []
    for start, words in pieces:
        while words:
            beats = min(words, 256, (PAGE - start % PAGE) // bus_bytes)
            bursts.append((start, beats))
            start += beats * bus_bytes
            words -= beats
    return bursts


class Memory:
    """Word-addressed sparse memory with deterministic initial contents.

    `error_ranges` are [lo, hi) byte ranges: reads there answer SLVERR, writes
    there are dropped and answer SLVERR.
    """

    def __init__(self, bus_bytes, *, error_ranges=()):
        self.bus_bytes = bus_bytes
        self.mask = (1 << (8 * bus_bytes)) - 1
        self.error_ranges = list(error_ranges)
        self.words = {}
        self.write_log = []                   # (byte address, data) per W beat, in order

    def initial(self, addr):
        """Content of an unwritten word: a hash of its address."""
        value = 0
        for lane in range(max(1, self.bus_bytes // 8)):
            mixed = ((addr << 8 | lane) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
            value |= (mixed ^ (mixed >> 31)) << (64 * lane)
        return value & self.mask

    def read(self, addr):
        return self.words.get(addr, self.initial(addr))

    def is_error(self, addr):
        return any(lo <= addr < hi for lo, hi in self.error_ranges)

    def write(self, addr, value):
        self.write_log.append((addr, value))
        if not self.is_error(addr):
            self.words[addr] = value


class _Model:
    """A signal driver that only writes a signal when its value changes."""

    def __init__(self, rng):
        self.rng = rng
        self._driven = {}

    def _set(self, ctx, signal, value):
        key = id(signal)
        if self._driven.get(key) != value:
            self._driven[key] = value
            ctx.set(signal, value)

    def _chance(self, probability):
        return probability >= 1 or self.rng.random() < probability

    def drive(self, ctx, cycle):
        pass

    def sample(self, ctx, cycle):
        pass


class _Stability:
    """Checks that a channel keeps VALID and its payload while not accepted."""

    def __init__(self, name):
        self.name = name
        self.held = None

    def check(self, valid, ready, payload):
        if self.held is not None:
            _check(valid, f"{self.name}: VALID dropped before READY")
            _check(payload == self.held, f"{self.name}: payload changed while waiting for READY: "
                                         f"{self.held} -> {payload}")
        self.held = payload if valid and not ready else None


class StreamSource(_Model):
    """Drives a stream with `items`, idling at random with probability 1 - p_valid.

    Items are ints or dicts (struct payloads). `accepted` holds the cycle of
    each transfer.
    """

    def __init__(self, stream, items, *, p_valid=1.0, rng=None):
        super().__init__(rng or random.Random(0))
        self.stream = stream
        self.items = list(items)
        self.p_valid = p_valid
        self.index = 0
        self.presenting = False
        self.accepted = []

    @property
    def done(self):
        return self.index == len(self.items)

    def drive(self, ctx, cycle):
        if not self.presenting and not self.done and self._chance(self.p_valid):
            self.presenting = True
            item = self.items[self.index]
            if isinstance(item, dict):
                for name, value in item.items():
                    ctx.set(getattr(self.stream.payload, name), value)
            else:
                ctx.set(self.stream.payload, item)
        self._set(ctx, self.stream.valid, int(self.presenting))

    def sample(self, ctx, cycle):
        if self.presenting and ctx.get(self.stream.ready):
            self.presenting = False
            self.index += 1
            self.accepted.append(cycle)


class StreamSink(_Model):
    """Accepts a stream with probability p_ready per cycle; checks stream rules."""

    def __init__(self, stream, *, p_ready=1.0, rng=None):
        super().__init__(rng or random.Random(0))
        self.stream = stream
        self.p_ready = p_ready
        self.ready = False
        self.items = []
        self.cycles = []
        self.stability = _Stability("stream")

    def drive(self, ctx, cycle):
        self.ready = self._chance(self.p_ready)
        self._set(ctx, self.stream.ready, int(self.ready))

    def sample(self, ctx, cycle):
        valid = ctx.get(self.stream.valid)
        payload = ctx.get(self.stream.payload) if valid else None
        self.stability.check(valid, self.ready, payload)
        if valid and self.ready:
            self.items.append(payload)
            self.cycles.append(cycle)


class Recorder(_Model):
    """Records, per cycle, the values of the given signals."""

    def __init__(self, **signals):
        super().__init__(random.Random(0))
        self.signals = signals
        self.values = {name: [] for name in signals}

    def count(self, name):
        """Cycles in which signal `name` was nonzero."""
        return sum(1 for value in self.values[name] if value)

    def sample(self, ctx, cycle):
        for name, signal in self.signals.items():
            self.values[name].append(ctx.get(signal))


def _check_address(channel, addr, beats, size, burst, cache, prot, bus_bytes):
    _check(1 <= beats <= 256, f"{channel}: {beats} beats")
    _check(size == bus_bytes.bit_length() - 1, f"{channel}: size {size} for {bus_bytes} bytes")
    _check(burst == BURST_INCR, f"{channel}: burst type {burst}, not INCR")
    _check(cache == 0b0011, f"{channel}: cache {cache:#06b}, not 0b0011")
    _check(prot == 0, f"{channel}: prot {prot}, not 0")
    _check(addr % bus_bytes == 0, f"{channel}: unaligned address {addr:#x}")
    _check(addr % PAGE + beats * bus_bytes <= PAGE,
           f"{channel}: burst at {addr:#x} of {beats} beats crosses a 4 KiB boundary")


class AXIReadSlave(_Model):
    """AXI4 read slave: AR accepted with probability p_arready (at most
    `max_queue` bursts queued), data of a burst available `latency` cycles
    after its AR handshake, RVALID gaps with probability 1 - p_rvalid,
    answers in order. Beats in an error range answer SLVERR.
    """

    def __init__(self, axi, mem, *, latency=4, p_arready=1.0, p_rvalid=1.0,
                 max_queue=64, rng=None):
        super().__init__(rng or random.Random(0))
        self.axi = axi
        self.mem = mem
        self.latency = latency
        self.p_arready = p_arready
        self.p_rvalid = p_rvalid
        self.max_queue = max_queue
        self.queue = []                       # [addr of next beat, beats left, cycle data is due]
        self.arready = False
        self.presenting = False
        self.bursts = []                      # (addr, beats) in AR order
        self.beats = 0
        self.max_outstanding = 0
        self.ar_stability = _Stability("AR")

    def drive(self, ctx, cycle):
        axi = self.axi
        self.arready = len(self.queue) < self.max_queue and self._chance(self.p_arready)
        self._set(ctx, axi.arready, int(self.arready))
        if not self.presenting and self.queue and self.queue[0][2] <= cycle \
                and self._chance(self.p_rvalid):
            addr, left, _ = self.queue[0]
            self.presenting = True
            self._set(ctx, axi.rdata, self.mem.read(addr))
            self._set(ctx, axi.rresp, RESP_SLVERR if self.mem.is_error(addr) else RESP_OKAY)
            self._set(ctx, axi.rlast, int(left == 1))
        self._set(ctx, axi.rvalid, int(self.presenting))

    def sample(self, ctx, cycle):
        axi = self.axi
        arvalid = ctx.get(axi.arvalid)
        fields = None
        if arvalid:
            fields = (ctx.get(axi.araddr), ctx.get(axi.arlen), ctx.get(axi.arsize),
                      ctx.get(axi.arburst), ctx.get(axi.arcache), ctx.get(axi.arprot))
        self.ar_stability.check(arvalid, self.arready, fields)
        if arvalid and self.arready:
            addr, length, size, burst, cache, prot = fields
            _check_address("AR", addr, length + 1, size, burst, cache, prot, self.mem.bus_bytes)
            self.queue.append([addr, length + 1, cycle + self.latency])
            self.bursts.append((addr, length + 1))
            self.max_outstanding = max(self.max_outstanding, len(self.queue))
        if self.presenting and ctx.get(axi.rready):
            self.presenting = False
            self.beats += 1
            head = self.queue[0]
            head[0] += self.mem.bus_bytes
            head[1] -= 1
            if head[1] == 0:
                self.queue.pop(0)


class AXIWriteSlave(_Model):
    """AXI4 write slave: AWREADY/WREADY with probabilities p_awready/p_wready,
    B response `b_latency` cycles after a burst's last W beat, BVALID gaps
    with probability 1 - p_bvalid. Checks W against the AW bursts: beats only
    after their AW (the engines promise that), WLAST exactly on the last beat,
    WSTRB all ones. A burst touching an error range answers SLVERR.
    """

    def __init__(self, axi, mem, *, b_latency=2, p_awready=1.0, p_wready=1.0,
                 p_bvalid=1.0, rng=None):
        super().__init__(rng or random.Random(0))
        self.axi = axi
        self.mem = mem
        self.b_latency = b_latency
        self.p_awready = p_awready
        self.p_wready = p_wready
        self.p_bvalid = p_bvalid
        self.aw_queue = []                    # [addr of next beat, beats left, error]
        self.b_queue = []                     # [cycle due, resp]
        self.awready = False
        self.wready = False
        self.presenting = False
        self.bursts = []
        self.beats = 0
        self.max_outstanding = 0
        self.outstanding = 0                  # AW accepted, B not yet accepted
        self.aw_stability = _Stability("AW")
        self.w_stability = _Stability("W")

    def drive(self, ctx, cycle):
        axi = self.axi
        self.awready = self._chance(self.p_awready)
        self.wready = self._chance(self.p_wready)
        self._set(ctx, axi.awready, int(self.awready))
        self._set(ctx, axi.wready, int(self.wready))
        if not self.presenting and self.b_queue and self.b_queue[0][0] <= cycle \
                and self._chance(self.p_bvalid):
            self.presenting = True
            self._set(ctx, axi.bresp, self.b_queue[0][1])
        self._set(ctx, axi.bvalid, int(self.presenting))

    def sample(self, ctx, cycle):
        axi = self.axi
        bus_bytes = self.mem.bus_bytes
        awvalid = ctx.get(axi.awvalid)
        fields = None
        if awvalid:
            fields = (ctx.get(axi.awaddr), ctx.get(axi.awlen), ctx.get(axi.awsize),
                      ctx.get(axi.awburst), ctx.get(axi.awcache), ctx.get(axi.awprot))
        self.aw_stability.check(awvalid, self.awready, fields)
        wvalid = ctx.get(axi.wvalid)
        w_fields = None
        if wvalid:
            w_fields = (ctx.get(axi.wdata), ctx.get(axi.wstrb), ctx.get(axi.wlast))
        self.w_stability.check(wvalid, self.wready, w_fields)
        _check(ctx.get(axi.bready) == 1, "BREADY must always be 1")

        # W is checked against the AW queue as it was before this cycle's AW.
        if wvalid and self.wready:
            data, strb, last = w_fields
            _check(self.aw_queue, "W beat before its AW")
            _check(strb == (1 << bus_bytes) - 1, f"WSTRB {strb:#x} is not all ones")
            head = self.aw_queue[0]
            _check(bool(last) == (head[1] == 1),
                   f"WLAST={last} with {head[1]} beats left in the burst at {head[0]:#x}")
            self.mem.write(head[0], data)
            head[2] |= self.mem.is_error(head[0])
            head[0] += bus_bytes
            head[1] -= 1
            self.beats += 1
            if head[1] == 0:
                self.aw_queue.pop(0)
                self.b_queue.append([cycle + self.b_latency,
                                     RESP_SLVERR if head[2] else RESP_OKAY])
        if awvalid and self.awready:
            addr, length, size, burst, cache, prot = fields
            _check_address("AW", addr, length + 1, size, burst, cache, prot, bus_bytes)
            self.aw_queue.append([addr, length + 1, False])
            self.bursts.append((addr, length + 1))
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        if self.presenting:                   # BREADY is 1
            self.presenting = False
            self.b_queue.pop(0)
            self.outstanding -= 1


class AXILiteMaster(_Model):
    """AXI4-Lite master with independent AW, W and AR channels.

    `aw`, `w` and `ar` are lists of (delay, ...) items: the channel waits
    `delay` cycles after its previous handshake (or the start), then holds
    VALID until READY. AW items are (delay, addr), W items (delay, data,
    strb), AR items (delay, addr). `bready(cycle)` and `rready(cycle)` decide
    the response READYs. Responses are collected in `b` and `r` as
    (cycle, resp) and (cycle, data, resp); handshake cycles in `aw_cycles`,
    `w_cycles` and `ar_cycles`.
    """

    def __init__(self, axil, *, aw=(), w=(), ar=(), bready=lambda cycle: True,
                 rready=lambda cycle: True):
        super().__init__(random.Random(0))
        self.axil = axil
        self.channels = {
            "aw": _LiteChannel(aw, axil.awvalid, axil.awready, [axil.awaddr]),
            "w": _LiteChannel(w, axil.wvalid, axil.wready, [axil.wdata, axil.wstrb]),
            "ar": _LiteChannel(ar, axil.arvalid, axil.arready, [axil.araddr]),
        }
        self.bready = bready
        self.rready = rready
        self.b = []
        self.r = []
        self._b_ready = self._r_ready = False
        self.b_stability = _Stability("B")
        self.r_stability = _Stability("R")

    @property
    def done(self):
        return all(channel.done for channel in self.channels.values())

    def cycles(self, name):
        return self.channels[name].cycles

    def drive(self, ctx, cycle):
        for channel in self.channels.values():
            channel.drive(self, ctx)
        self._b_ready = bool(self.bready(cycle))
        self._r_ready = bool(self.rready(cycle))
        self._set(ctx, self.axil.bready, int(self._b_ready))
        self._set(ctx, self.axil.rready, int(self._r_ready))

    def sample(self, ctx, cycle):
        for channel in self.channels.values():
            channel.sample(ctx, cycle)
        axil = self.axil
        bvalid = ctx.get(axil.bvalid)
        bresp = ctx.get(axil.bresp) if bvalid else None
        self.b_stability.check(bvalid, self._b_ready, bresp)
        if bvalid and self._b_ready:
            self.b.append((cycle, bresp))
        rvalid = ctx.get(axil.rvalid)
        r_fields = (ctx.get(axil.rdata), ctx.get(axil.rresp)) if rvalid else None
        self.r_stability.check(rvalid, self._r_ready, r_fields)
        if rvalid and self._r_ready:
            self.r.append((cycle,) + r_fields)


class _LiteChannel:
    """One request channel of AXILiteMaster."""

    def __init__(self, items, valid, ready, payload):
        self.items = list(items)
        self.valid = valid
        self.ready = ready
        self.payload = payload
        self.index = 0
        self.wait = self.items[0][0] if self.items else 0
        self.presenting = False
        self.cycles = []

    @property
    def done(self):
        return self.index == len(self.items)

    def drive(self, master, ctx):
        if not self.presenting and not self.done:
            if self.wait:
                self.wait -= 1
            else:
                self.presenting = True
                for signal, value in zip(self.payload, self.items[self.index][1:]):
                    ctx.set(signal, value)
        master._set(ctx, self.valid, int(self.presenting))

    def sample(self, ctx, cycle):
        if self.presenting and ctx.get(self.ready):
            self.presenting = False
            self.cycles.append(cycle)
            self.index += 1
            if not self.done:
                self.wait = self.items[self.index][0]


class RegisterOwner(_Model):
    """Owner of AXILiteSlave's register bus: a register file of 32-bit words.

    Drives `rdata` with the addressed register only in the cycle
    `slave.read_latency` cycles after a `read` strobe (and a garbage pattern in
    every other cycle), so a slave that samples at any other time reads
    garbage. Checks the strobe rules: never `read` and `write` together, no
    strobe in the cycles up to the one rdata is driven in, word-aligned `addr`. Logs ("write", cycle, addr, data, strb) and
    ("read", cycle, addr, value) events.
    """

    GARBAGE = 0xBAD0BAD0

    def __init__(self, slave, registers=None):
        super().__init__(random.Random(0))
        self.slave = slave
        self.registers = dict(registers or {})
        self.log = []
        self.pending_read = None      # (address, cycle rdata is due)

    def drive(self, ctx, cycle):
        due = self.pending_read is not None and self.pending_read[1] == cycle
        value = self.registers.get(self.pending_read[0], 0) if due else self.GARBAGE
        self._set(ctx, self.slave.rdata, value)

    def sample(self, ctx, cycle):
        slave = self.slave
        write, read = ctx.get(slave.write), ctx.get(slave.read)
        after_read = self.pending_read is not None
        if after_read and self.pending_read[1] == cycle:
            self.pending_read = None
        if not (write or read):
            return
        _check(not after_read, "register strobe before the read's rdata was taken")
        _check(not (write and read), "`read` and `write` in the same cycle")
        addr = ctx.get(slave.addr)
        _check(addr % 4 == 0, f"unaligned register address {addr:#x}")
        if write:
            data, strb = ctx.get(slave.wdata), ctx.get(slave.wstrb)
            mask = sum(0xFF << (8 * lane) for lane in range(4) if strb >> lane & 1)
            old = self.registers.get(addr, 0)
            self.registers[addr] = old & ~mask | data & mask
            self.log.append(("write", cycle, addr, data, strb))
        else:
            self.pending_read = (addr, cycle + slave.read_latency)
            self.log.append(("read", cycle, addr, self.registers.get(addr, 0)))


def run(dut, models, done, *, max_cycles):
    """Simulate `dut` with `models` until `done(ctx)` holds after a cycle's sampling.

    Returns the number of cycles simulated (the cycle in which `done` first
    held, counted from 0). Raises TimeoutError after `max_cycles`.
    """
    result = {}

    async def testbench(ctx):
        for cycle in range(max_cycles):
            for model in models:
                model.drive(ctx, cycle)
            for model in models:
                model.sample(ctx, cycle)
            if done(ctx):
                result["cycles"] = cycle
                return
            await ctx.tick()
        raise TimeoutError(f"not done after {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return result["cycles"]
