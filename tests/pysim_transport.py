"""The whole accelerator in Amaranth's simulator behind the driver's Transport.

The simulator runs in a thread; a testbench serves the host's requests from
a queue, so the same driver code that drives the NumPy model and the Verilator
cosimulation drives this too. Python runs every cycle here, so it is only for
small layers in unit tests.
"""

import queue
import threading
from collections import deque

from amaranth.sim import Simulator

from hw.accel import ConvAccel
from sw_driver.transport import Transport, TransportError, DoneTimeout


class PysimTransport(Transport):
    def __init__(self, cfg, mem_size=1 << 20, read_latency=8, vcd=None):
        self.cfg = cfg
        self.dut = ConvAccel(cfg)
        self._mem = bytearray(mem_size)
        self._read_latency = read_latency
        self._vcd = vcd
        self._requests = queue.Queue()
        self._replies = queue.Queue()
        self._thread = threading.Thread(target=self._simulate, daemon=True)
        self._thread.start()

    @property
    def mem_size(self):
        return len(self._mem)

    def _call(self, *request):
        if not self._thread.is_alive():
            raise TransportError("the simulation thread has stopped")
        self._requests.put(request)
        kind, value = self._replies.get()
        if kind == "error":
            raise value
        return value

    def write_reg(self, offset, value, strobes=0xF):
        """`strobes`: the AXI-Lite byte strobes (WSTRB), all four by default."""
        self._call("write_reg", offset, value, strobes)

    def read_reg(self, offset):
        return self._call("read_reg", offset)

    def write_mem(self, addr, data):
        self._call("write_mem", addr, bytes(data))

    def read_mem(self, addr, length):
        return self._call("read_mem", addr, length)

    def wait_done(self, max_cycles):
        return self._call("wait_done", max_cycles)

    def close(self):
        if self._thread.is_alive():
            self._requests.put(("quit",))
            self._thread.join()

    def _simulate(self):
        dut, mem = self.dut, self._mem
        bus_bytes = self.cfg.bus_bytes

        async def memory(ctx):
            reads = deque()      # [first cycle, addr, beats left]
            writes = deque()     # [addr, beats left]
            responses = 0
            cycle = 0
            ctx.set(dut.m_axi_arready, 1)
            ctx.set(dut.m_axi_awready, 1)
            ctx.set(dut.m_axi_wready, 1)
            while True:
                if ctx.get(dut.m_axi_arvalid):
                    reads.append([cycle + self._read_latency, ctx.get(dut.m_axi_araddr),
                                  ctx.get(dut.m_axi_arlen) + 1])
                if ctx.get(dut.m_axi_awvalid):
                    writes.append([ctx.get(dut.m_axi_awaddr), ctx.get(dut.m_axi_awlen) + 1])
                if ctx.get(dut.m_axi_rvalid) and ctx.get(dut.m_axi_rready):
                    reads[0][1] += bus_bytes
                    reads[0][2] -= 1
                    if reads[0][2] == 0:
                        reads.popleft()
                if ctx.get(dut.m_axi_wvalid):
                    addr, left = writes[0]
                    mem[addr:addr + bus_bytes] = \
                        ctx.get(dut.m_axi_wdata).to_bytes(bus_bytes, "little")
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
                if reads and reads[0][0] <= cycle:
                    addr, left = reads[0][1], reads[0][2]
                    ctx.set(dut.m_axi_rdata,
                            int.from_bytes(mem[addr:addr + bus_bytes], "little"))
                    ctx.set(dut.m_axi_rlast, left == 1)
                    ctx.set(dut.m_axi_rvalid, 1)
                else:
                    ctx.set(dut.m_axi_rvalid, 0)
                ctx.set(dut.m_axi_bvalid, responses > 0)

        async def write_reg(ctx, addr, value, strobes):
            ctx.set(dut.s_axil_awaddr, addr)
            ctx.set(dut.s_axil_awvalid, 1)
            ctx.set(dut.s_axil_wdata, value & 0xFFFF_FFFF)
            ctx.set(dut.s_axil_wstrb, strobes)
            ctx.set(dut.s_axil_wvalid, 1)
            ctx.set(dut.s_axil_bready, 1)
            aw_done = w_done = False
            while not (aw_done and w_done):
                aw_done |= bool(ctx.get(dut.s_axil_awready))
                w_done |= bool(ctx.get(dut.s_axil_wready))
                await ctx.tick()
                ctx.set(dut.s_axil_awvalid, not aw_done)
                ctx.set(dut.s_axil_wvalid, not w_done)
            while not ctx.get(dut.s_axil_bvalid):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.s_axil_bready, 0)

        async def read_reg(ctx, addr):
            ctx.set(dut.s_axil_araddr, addr)
            ctx.set(dut.s_axil_arvalid, 1)
            ctx.set(dut.s_axil_rready, 1)
            while not ctx.get(dut.s_axil_arready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.s_axil_arvalid, 0)
            while not ctx.get(dut.s_axil_rvalid):
                await ctx.tick()
            value = ctx.get(dut.s_axil_rdata)
            await ctx.tick()
            ctx.set(dut.s_axil_rready, 0)
            return value

        async def wait_done(ctx, max_cycles):
            for cycle in range(max_cycles + 1):
                if ctx.get(dut.irq):
                    return cycle
                await ctx.tick()
            raise DoneTimeout(f"the accelerator did not finish within {max_cycles} cycles")

        async def server(ctx):
            while True:
                kind, *args = self._requests.get()
                try:
                    if kind == "quit":
                        return
                    elif kind == "write_reg":
                        reply = await write_reg(ctx, *args)
                    elif kind == "read_reg":
                        reply = await read_reg(ctx, *args)
                    elif kind == "wait_done":
                        reply = await wait_done(ctx, *args)
                    elif kind == "write_mem":
                        addr, data = args
                        mem[addr:addr + len(data)] = data
                        reply = None
                    elif kind == "read_mem":
                        addr, length = args
                        reply = bytes(mem[addr:addr + length])
                    self._replies.put(("ok", reply))
                except Exception as error:      # handed to the caller's thread
                    self._replies.put(("error", error))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(memory, background=True)
        sim.add_testbench(server)
        if self._vcd:
            with sim.write_vcd(self._vcd):
                sim.run()
        else:
            sim.run()
