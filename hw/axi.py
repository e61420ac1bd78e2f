"""AXI4 (memory-mapped master) and AXI4-Lite (register slave) signatures.

Member names are the AXI signal names without the channel prefix, so a
flattened top level gets the standard `m_axi_*` / `s_axil_*` port names.
Signatures are from the master's point of view (Out = driven by the master).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4ReadSignature", "AXI4WriteSignature", "AXI4LiteSignature",
           "flat_members", "connect_flat"]

BURST_INCR = 0b01
RESP_OKAY = 0b00


class AXI4ReadSignature(wiring.Signature):
    """Read channels (AR, R) of an AXI4 master without IDs (one ID, in order)."""

    def __init__(self, *, addr_width, data_width):
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arcache": Out(4), "arprot": Out(3),
            "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })


class AXI4WriteSignature(wiring.Signature):
    """Write channels (AW, W, B) of an AXI4 master without IDs."""

    def __init__(self, *, addr_width, data_width):
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awcache": Out(4), "awprot": Out(3),
            "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        })


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite with 32-bit data."""

    def __init__(self, *, addr_width):
        self.addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


def flat_members(prefix, signature, *, flipped=False):
    """Signature members of `signature` renamed `prefix + name`, for a flat top level.

    With `flipped`, directions are reversed (a slave port of a master signature).
    """
    members = {}
    for name, member in signature.members.items():
        is_out = (member.flow == wiring.Out) != flipped
        members[prefix + name] = Out(member.shape) if is_out else In(member.shape)
    return members


def connect_flat(m, component, prefix, interface):
    """Wire the flat ports `component.<prefix><name>` to `interface.<name>`.

    `interface` is a sub-component's interface as that sub-component holds it
    (for example `reader.axi`, or `regs.axil` of an `In(...)` member).
    """
    for name, member in interface.signature.members.items():
        flat = getattr(component, prefix + name)
        inner = getattr(interface, name)
        if member.flow == wiring.Out:
            m.d.comb += flat.eq(inner)
        else:
            m.d.comb += inner.eq(flat)
