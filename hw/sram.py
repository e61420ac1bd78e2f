"""On-chip memory standing in for external memory on a board: an AXI4 slave
over `amaranth.lib.memory` with a second, simple port for a host (the UART
bridge).

The memory has one read port and one write port (simple dual port: block RAM
on every FPGA family). AXI reads use the read port, AXI writes the write port,
so both directions run at once, one beat per cycle each. The host port shares
them and has priority: a host read takes the read port for one cycle, a host
write the write port; the AXI side waits that cycle. A host write is taken
into a register and done in the cycle after, so AXI WREADY and the write
port's inputs depend on that register only, not on the host's request logic
(on the ULX3S 4x4 top for 100 MHz, the UART bridge's state through WREADY
into the store stage was the critical path).

AXI side (no IDs, one burst at a time per direction, in order):

- AR/AW are taken when the previous burst of that direction has finished
  (read: last beat issued; write: B response taken).
- INCR, FIXED and WRAP (treated as INCR) bursts; the address steps by
  2**AxSIZE bytes; each beat reads or writes the whole bus word that holds
  its address, WSTRB selecting the bytes written.
- A beat outside the memory reads as zero with RRESP = SLVERR; a write beat
  outside it is dropped and the burst's BRESP is SLVERR.
- Reads: a beat goes through two registers, the read port's output and a
  register after it (on an FPGA the memory is many block RAMs, and the
  multiplexer over their outputs would otherwise reach into the master's
  logic), so the first R beat comes two cycles after the AR handshake;
  RVALID stays high with the data until RREADY (one beat per cycle when
  RREADY is held high).

Host port (`SRAMPortSignature`, the host is the master): `addr` is a word
address, `write` selects a write of the bytes of `wdata` whose `wstrb` bit is
set, or a read. A request is taken in a cycle with `valid` and `ready` both
high; a read's data is on `rdata` in the next cycle (only then). Writes are
always ready; a read is ready unless an AXI read beat is waiting on a stalled
R channel or a host write is still being done (so a read returns what the
host wrote just before).
"""

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import AXI4ReadSignature, AXI4WriteSignature, RESP_OKAY

__all__ = ["AXI4SRAM", "SRAMPortSignature"]

RESP_SLVERR = 0b10
BURST_FIXED = 0b00


class SRAMPortSignature(wiring.Signature):
    """A word-wide memory port, from the point of view of its master."""

    def __init__(self, *, addr_width, data_width):
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "addr": Out(addr_width), "write": Out(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8),
            "valid": Out(1), "ready": In(1),
            "rdata": In(data_width),
        })


class AXI4SRAM(wiring.Component):
    """AXI4 slave memory of `depth` words of `data_width` bits (see the module docstring).

    Members:
      axi_r: In(AXI4ReadSignature(addr_width, data_width))
      axi_w: In(AXI4WriteSignature(addr_width, data_width))
      host: In(SRAMPortSignature(addr_width=word address bits, data_width))
    """

    def __init__(self, *, data_width, addr_width, depth):
        if (isinstance(data_width, bool) or not isinstance(data_width, int)
                or not 8 <= data_width <= 1024 or data_width & (data_width - 1)):
            raise ValueError(f"data_width must be a power of two in 8..1024, not {data_width!r}")
        if isinstance(addr_width, bool) or not isinstance(addr_width, int) \
                or not 1 <= addr_width <= 64:
            raise ValueError(f"addr_width must be an integer in 1..64, not {addr_width!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2 (words), not {depth!r}")
        self.data_width = data_width
        self.addr_width = addr_width
        self.depth = depth
        self.bus_bytes = data_width // 8
        if depth * self.bus_bytes > 1 << addr_width:
            raise ValueError(f"{depth} words of {self.bus_bytes} bytes do not fit the "
                             f"{addr_width}-bit AXI address space")
        self.word_bits = max(1, (depth - 1).bit_length())
        super().__init__({
            "axi_r": In(AXI4ReadSignature(addr_width=addr_width, data_width=data_width)),
            "axi_w": In(AXI4WriteSignature(addr_width=addr_width, data_width=data_width)),
            "host": In(SRAMPortSignature(addr_width=self.word_bits, data_width=data_width)),
        })

    @property
    def size(self):
        """Bytes of memory."""
        return self.depth * self.bus_bytes

    def _word(self, addr):
        """(word index, inside the memory) of byte address `addr`."""
        shift = (self.bus_bytes - 1).bit_length()
        word = addr[shift:]
        return word[:self.word_bits], word < self.depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.data_width, depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)
        host, ar, aw = self.host, self.axi_r, self.axi_w

        def next_addr(addr, size, burst):
            step = (Const(1, self.addr_width) << size)[:self.addr_width]
            return Mux(burst == BURST_FIXED, addr, (addr + step)[:self.addr_width])

        # Read direction. `r_valid` flags the beat on the read port's output,
        # `ar.rvalid` the beat in the output register after it.
        r_active = Signal()
        r_addr = Signal(self.addr_width)
        r_left = Signal(8)                   # beats still to issue, minus one
        r_size = Signal(3)
        r_burst = Signal(2)
        r_valid = Signal()
        r_last = Signal()
        r_inside = Signal()
        out_free = Signal()                  # the output register may change
        port_free = Signal()                 # the read port's output may change
        host_read = Signal()
        host_write = Signal()                # a host write taken last cycle, done now
        issue = Signal()
        out_data = Signal(self.data_width, reset_less=True)
        word, inside = self._word(r_addr)
        m.d.comb += [
            ar.rdata.eq(out_data),
            out_free.eq(~ar.rvalid | ar.rready),
            port_free.eq(~r_valid | out_free),
            host_read.eq(host.valid & ~host.write & port_free & ~host_write),
            issue.eq(r_active & port_free & ~host_read),
            ar.arready.eq(~r_active),
            rd.en.eq(host_read | issue),
            rd.addr.eq(Mux(host_read, host.addr, word)),
            host.rdata.eq(rd.data),
        ]
        with m.If(out_free):
            m.d.sync += [ar.rvalid.eq(r_valid), ar.rlast.eq(r_last),
                         out_data.eq(Mux(r_inside, rd.data, 0)),
                         ar.rresp.eq(Mux(r_inside, RESP_OKAY, RESP_SLVERR))]
        with m.If(ar.arvalid & ar.arready):
            m.d.sync += [r_active.eq(1), r_addr.eq(ar.araddr), r_left.eq(ar.arlen),
                         r_size.eq(ar.arsize), r_burst.eq(ar.arburst)]
        with m.If(issue):
            m.d.sync += [r_valid.eq(1), r_last.eq(r_left == 0), r_inside.eq(inside),
                         r_addr.eq(next_addr(r_addr, r_size, r_burst)), r_left.eq(r_left - 1)]
            with m.If(r_left == 0):
                m.d.sync += r_active.eq(0)
        with m.Elif(out_free):
            m.d.sync += r_valid.eq(0)

        # Write direction.
        w_active = Signal()
        w_addr = Signal(self.addr_width)
        w_size = Signal(3)
        w_burst = Signal(2)
        w_error = Signal()
        b_valid = Signal()
        host_w_addr = Signal.like(host.addr, reset_less=True)
        host_w_data = Signal.like(host.wdata, reset_less=True)
        host_w_strb = Signal.like(host.wstrb, reset_less=True)
        w_word, w_inside = self._word(w_addr)
        m.d.sync += host_write.eq(host.valid & host.write)
        with m.If(host.valid & host.write):
            m.d.sync += [host_w_addr.eq(host.addr), host_w_data.eq(host.wdata),
                         host_w_strb.eq(host.wstrb)]
        m.d.comb += [
            aw.awready.eq(~w_active & ~b_valid),
            aw.wready.eq(w_active & ~host_write),
            aw.bvalid.eq(b_valid),
            aw.bresp.eq(Mux(w_error, RESP_SLVERR, RESP_OKAY)),
            host.ready.eq(Mux(host.write, 1, port_free & ~host_write)),
        ]
        beat = aw.wvalid & aw.wready
        with m.If(host_write):
            m.d.comb += [wr.addr.eq(host_w_addr), wr.data.eq(host_w_data), wr.en.eq(host_w_strb)]
        with m.Else():
            m.d.comb += [wr.addr.eq(w_word), wr.data.eq(aw.wdata),
                         wr.en.eq(Mux(beat & w_inside, aw.wstrb, 0))]
        with m.If(aw.awvalid & aw.awready):
            m.d.sync += [w_active.eq(1), w_addr.eq(aw.awaddr), w_size.eq(aw.awsize),
                         w_burst.eq(aw.awburst), w_error.eq(0)]
        with m.If(beat):
            m.d.sync += w_addr.eq(next_addr(w_addr, w_size, w_burst))
            with m.If(~w_inside):
                m.d.sync += w_error.eq(1)
            with m.If(aw.wlast):
                m.d.sync += [w_active.eq(0), b_valid.eq(1)]
        with m.If(b_valid & aw.bready):
            m.d.sync += b_valid.eq(0)
        return m
