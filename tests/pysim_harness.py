"""Run the whole accelerator in Amaranth's simulator against a Python AXI memory.

Slow (Python per cycle), so only for small layers in unit tests; the real
runs use the Verilator cosimulation in sim/.
"""

from collections import deque

from amaranth.sim import Simulator

from hw.accel import ConvAccel
from hw.config import REG, CTRL_START, STATUS_DONE


class PysimAccel:
    """A ConvAccel in the Amaranth simulator with a byte memory and register access."""

    def __init__(self, cfg, mem_size=1 << 20, read_latency=3):
        self.cfg = cfg
        self.dut = ConvAccel(cfg)
        self.mem = bytearray(mem_size)
        self.read_latency = read_latency
        self.vcd = None

    def run(self, register_writes, max_cycles=50_000):
        """Write the registers, start, wait for done; return the register reader results."""
        dut, cfg, mem = self.dut, self.cfg, self.mem
        bus_bytes = cfg.bus_bytes
        result = {}

        async def memory(ctx):
            reads = deque()      # [ready_cycle, addr, beats_left]
            writes = deque()     # [addr, beats_left]
            responses = 0
            cycle = 0
            ctx.set(dut.m_axi_arready, 1)
            ctx.set(dut.m_axi_awready, 1)
            ctx.set(dut.m_axi_wready, 1)
            while True:
                # Sample the master's outputs of this cycle.
                if ctx.get(dut.m_axi_arvalid):
                    reads.append([cycle + self.read_latency, ctx.get(dut.m_axi_araddr),
                                  ctx.get(dut.m_axi_arlen) + 1])
                if ctx.get(dut.m_axi_awvalid):
                    writes.append([ctx.get(dut.m_axi_awaddr), ctx.get(dut.m_axi_awlen) + 1])
                rvalid = ctx.get(dut.m_axi_rvalid)
                if rvalid and ctx.get(dut.m_axi_rready):
                    reads[0][1] += bus_bytes
                    reads[0][2] -= 1
                    if reads[0][2] == 0:
                        reads.popleft()
                if ctx.get(dut.m_axi_wvalid):
                    addr, left = writes[0]
                    mem[addr:addr + bus_bytes] = ctx.get(dut.m_axi_wdata).to_bytes(bus_bytes, "little")
                    writes[0][0] += bus_bytes
                    writes[0][1] -= 1
                    assert bool(ctx.get(dut.m_axi_wlast)) == (left == 1)
                    if left == 1:
                        writes.popleft()
                        responses += 1
                if ctx.get(dut.m_axi_bvalid) and ctx.get(dut.m_axi_bready):
                    responses -= 1
                await ctx.tick()
                cycle += 1
                # Drive this cycle's responses.
                if reads and reads[0][0] <= cycle:
                    addr, left = reads[0][1], reads[0][2]
                    ctx.set(dut.m_axi_rdata, int.from_bytes(mem[addr:addr + bus_bytes], "little"))
                    ctx.set(dut.m_axi_rlast, left == 1)
                    ctx.set(dut.m_axi_rvalid, 1)
                else:
                    ctx.set(dut.m_axi_rvalid, 0)
                ctx.set(dut.m_axi_bvalid, responses > 0)

        async def axil_write(ctx, addr, value):
            ctx.set(dut.s_axil_awaddr, addr)
            ctx.set(dut.s_axil_awvalid, 1)
            ctx.set(dut.s_axil_wdata, value & 0xFFFF_FFFF)
            ctx.set(dut.s_axil_wstrb, 0xF)
            ctx.set(dut.s_axil_wvalid, 1)
            ctx.set(dut.s_axil_bready, 1)
            aw_done = w_done = False
            while not (aw_done and w_done):
                await ctx.tick()
                aw_done |= bool(ctx.get(dut.s_axil_awready))
                w_done |= bool(ctx.get(dut.s_axil_wready))
                if aw_done:
                    ctx.set(dut.s_axil_awvalid, 0)
                if w_done:
                    ctx.set(dut.s_axil_wvalid, 0)
            while not ctx.get(dut.s_axil_bvalid):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.s_axil_bready, 0)

        async def axil_read(ctx, addr):
            ctx.set(dut.s_axil_araddr, addr)
            ctx.set(dut.s_axil_arvalid, 1)
            ctx.set(dut.s_axil_rready, 1)
            while True:
                await ctx.tick()
                if ctx.get(dut.s_axil_arready):
                    ctx.set(dut.s_axil_arvalid, 0)
                if ctx.get(dut.s_axil_rvalid):
                    value = ctx.get(dut.s_axil_rdata)
                    await ctx.tick()
                    ctx.set(dut.s_axil_rready, 0)
                    return value

        async def host(ctx):
            for addr, value in register_writes:
                await axil_write(ctx, addr, value)
            await axil_write(ctx, REG["IRQ_ENABLE"], 1)
            await axil_write(ctx, REG["CTRL"], CTRL_START)
            for cycle in range(max_cycles):
                if ctx.get(dut.irq):
                    break
                await ctx.tick()
            else:
                raise TimeoutError(f"no done within {max_cycles} cycles")
            result["status"] = await axil_read(ctx, REG["STATUS"])
            for offset in range(REG["COUNTERS"], REG["COUNTERS"] + 48, 4):
                result[offset] = await axil_read(ctx, offset)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(memory, background=True)
        sim.add_testbench(host)
        if self.vcd:
            with sim.write_vcd(self.vcd):
                sim.run()
        else:
            sim.run()
        assert result["status"] & STATUS_DONE
        return result
