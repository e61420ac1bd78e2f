"""A synchronous FIFO whose read side comes from registers."""

from amaranth import Elaboratable, Module, Signal
from amaranth.lib.fifo import FIFOInterface, SyncFIFO

__all__ = ["RegisteredFIFO"]


class RegisteredFIFO(Elaboratable, FIFOInterface):
    """A `SyncFIFO` of `depth - 1` entries followed by an output register.

    `r_data` and `r_rdy` are registers, so what the reader decides from them
    (often the enables of many registers) starts at a flip-flop instead of a
    distributed-RAM read. The queue holds `depth` entries; an entry written
    to an empty queue is readable two cycles later (one more than `SyncFIFO`),
    and one entry a cycle passes through at full rate. Unlike
    `SyncFIFOBuffered` the storage is read asynchronously, so it is LUT RAM or
    flip-flops, never block RAM (wide, shallow queues would take many).
    `w_level` and `r_level` count the entries, output register included.
    """

    def __init__(self, *, width, depth):
        # Two entries behind the register keep a stream at one entry a cycle.
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3:
            raise ValueError(f"depth must be an integer >= 3, not {depth!r}")
        super().__init__(width=width, depth=depth)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = SyncFIFO(width=self.width, depth=self.depth - 1)
        m.d.comb += [
            inner.w_data.eq(self.w_data), inner.w_en.eq(self.w_en), self.w_rdy.eq(inner.w_rdy),
            self.w_level.eq(inner.level + self.r_rdy), self.r_level.eq(self.w_level),
        ]
        # Refill the output register whenever it is empty or being read.
        refill = inner.r_rdy & (~self.r_rdy | self.r_en)
        m.d.comb += inner.r_en.eq(refill)
        with m.If(refill):
            m.d.sync += [self.r_data.eq(inner.r_data), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m
