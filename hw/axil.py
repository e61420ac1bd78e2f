"""AXI4-Lite slave that turns AXI transactions into a simple register bus.

The owner of the register bus sees one-cycle strobes:

- write: `write` is high for one cycle with `addr`, `wdata` and `wstrb` valid
  in that cycle. The owner updates the bytes whose `wstrb` bit is set.
- read: `read` is high for one cycle (cycle N) with `addr` valid. The owner
  must drive the register value on `rdata` during cycle N+L, L being the
  slave's `read_latency` (1 or 2); the slave samples it at the end of that
  cycle. `addr` keeps its value through cycle N+L and no strobe is issued in
  cycles N+1..N+L, so with L = 1 `rdata` may be either a register loaded in
  cycle N (`with m.If(read): m.d.sync += rdata.eq(...)`) or a combinational
  decode of `addr` and state in cycle N+1; L = 2 leaves room for one more
  register stage (a large register file's read multiplexer in two halves).
  Each AXI read produces exactly one `read` strobe (read side effects are safe).

`addr` is the AXI byte address with bits 1:0 cleared. AWPROT/ARPROT are
ignored; BRESP and RRESP are always OKAY.

AXI timing (cycle 0 = the handshake cycle; AW and W may come in any order or
together, the later of the two counts): a write strobes `write` in cycle 1 and
raises BVALID in cycle 2; a read strobes `read` in cycle 1 and raises RVALID
with the data in cycle 2 + L (one cycle later each when the other direction
holds the register bus). Each direction executes one transaction at a time and
holds at most one more request (one AW, one W, one AR) until the pending
response has been taken: the READY of a channel is low while its holding
register is full. The read and write paths only share the register bus (a
write wins a same-cycle conflict and the read goes next cycle), so a master
holding BREADY low never blocks reads and one holding RREADY low never blocks
writes.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, RESP_OKAY

__all__ = ["AXILiteSlave"]


class AXILiteSlave(wiring.Component):
    """AXI4-Lite slave with a strobe register bus (see the module docstring).

    Members:
      axil: In(AXI4LiteSignature(addr_width=addr_width)), the slave port
      addr: Out(addr_width), byte address, word aligned
      wdata: Out(32), wstrb: Out(4), write: Out(1) (one-cycle strobe)
      read: Out(1) (one-cycle strobe), rdata: In(32) (valid `read_latency`
        cycles after `read`)
    """

    def __init__(self, addr_width=12, *, read_latency=1):
        if (isinstance(addr_width, bool) or not isinstance(addr_width, int)
                or not 4 <= addr_width <= 32):
            raise ValueError(f"addr_width must be an integer in 4..32, not {addr_width!r}")
        if type(read_latency) is not int or read_latency not in (1, 2):
            raise ValueError(f"read_latency must be 1 or 2, not {read_latency!r}")
        self._addr_width = addr_width
        self.read_latency = read_latency
        super().__init__({
            "axil": In(AXI4LiteSignature(addr_width=addr_width)),
            "addr": Out(addr_width),
            "wdata": Out(32),
            "wstrb": Out(4),
            "write": Out(1),
            "read": Out(1),
            "rdata": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        word_bits = self._addr_width - 2

        aw_full = Signal()
        aw_addr = Signal(word_bits)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        b_valid = Signal()
        ar_full = Signal()
        ar_addr = Signal(word_bits)
        # Bit k: `read` was k + 1 cycles ago; the owner drives rdata while the top bit is set.
        r_wait = Signal(self.read_latency)
        r_valid = Signal()
        r_data = Signal(32)

        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bvalid.eq(b_valid),
            bus.bresp.eq(RESP_OKAY),
            bus.arready.eq(~ar_full),
            bus.rvalid.eq(r_valid),
            bus.rdata.eq(r_data),
            bus.rresp.eq(RESP_OKAY),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr[2:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(bus.araddr[2:])]

        do_write = Signal()
        do_read = Signal()
        m.d.comb += [
            do_write.eq(aw_full & w_full & ~b_valid & ~r_wait.any()),
            do_read.eq(ar_full & ~r_valid & ~r_wait.any() & ~do_write),
            self.write.eq(do_write),
            self.read.eq(do_read),
            self.wdata.eq(w_data),
            self.wstrb.eq(w_strb),
            self.addr.eq(Cat(Const(0, 2), Mux(do_write, aw_addr, ar_addr))),
        ]
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1)]
        with m.Elif(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)
        with m.If(do_read):
            m.d.sync += ar_full.eq(0)
        m.d.sync += r_wait.eq(Cat(do_read, r_wait[:-1]))
        with m.If(r_wait[-1]):
            m.d.sync += [r_valid.eq(1), r_data.eq(self.rdata)]
        with m.Elif(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)
        return m
