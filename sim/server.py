"""cocotb test module run inside the simulator by `sim.cosim.CosimTransport`.

It connects back to the host over the Unix socket named by ``ACCEL_SIM_SOCKET``
(``multiprocessing.connection``, auth key ``ACCEL_SIM_AUTHKEY`` in hex) and serves
requests until ``quit`` or until the host goes away. The simulation does not advance
while a request is awaited, so the host's time costs no simulated cycles.

Requests are tuples ``(op, *args)``; replies ``("ok", result)``, ``("timeout",
message)`` (wait_done only) or ``("error", message)``:

    ("write_reg", offset, value)      AXI4-Lite write                -> None
    ("read_reg", offset)              AXI4-Lite read                 -> value
    ("mem_load",)                     $readmemh of the +MEM_IN file  -> None
    ("mem_dump", first, last)         $writememh of words first..last to +MEM_OUT -> None
    ("wait_done", max_cycles)         irq high, or rising within max_cycles -> cycles
    ("reset", cycles)                 host reset for `cycles` cycles -> None
    ("cycle",)                        clock cycles since time zero   -> int
    ("quit",)                         end the simulation             -> None

A host that goes away (EOF on the socket) ends the simulation, also during a long
wait_done (checked every WATCH_CYCLES cycles). The memory data itself never crosses
the socket: the host writes and reads the hex files (see `sim.hexmem`), the model's
backdoor loads and dumps them in one cycle.

Timing discipline (mirrored cycle for cycle by sim/hdl/pure_tb.svh): between
requests the simulation stands just after a rising clock edge; signals are driven
there and handshakes are sampled at the falling edge before the next rising edge.
No Python runs per clock cycle while wait_done waits (one value-change callback on
irq and one timer); tb_top.host_fast tells the simulator's main loop
(sim/hdl/cocotb_main.cpp) that nothing else can wake Python meanwhile.
"""

import os
import traceback

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

# An AXI4-Lite access without handshake for this many cycles fails (no hang).
AXIL_TIMEOUT_CYCLES = int(os.environ.get("ACCEL_SIM_AXIL_TIMEOUT", "10000"))
# wait_done checks every this many cycles that the host is still there.
WATCH_CYCLES = int(os.environ.get("ACCEL_SIM_WATCH_CYCLES", "1000000"))


class RequestTimeout(Exception):
    pass


class HostGone(Exception):
    pass


class Server:
    def __init__(self, dut, conn):
        self.dut = dut
        self.conn = conn
        self.clk = dut.clk
        self.period = None          # clock period in simulator steps

    # ---------------------------------------------------------------- helpers
    async def rising(self):
        await RisingEdge(self.clk)

    async def start(self):
        dut = self.dut
        for name, value in (("host_rst", 0), ("host_fast", 0), ("bd_load", 0), ("bd_dump", 0)):
            getattr(dut, name).value = value
        self.idle_axil()
        await self.rising()
        while int(dut.rst.value):
            await self.rising()
        t0 = get_sim_time("step")
        await self.rising()
        self.period = get_sim_time("step") - t0

    def idle_axil(self):
        dut = self.dut
        for name in ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready",
                     "araddr", "arprot", "arvalid", "rready"):
            getattr(dut, "s_axil_" + name).value = 0

    def cycles_now(self):
        return get_sim_time("step") // self.period

    # --------------------------------------------------------------- requests
    async def op_write_reg(self, offset, value):
        dut = self.dut
        dut.s_axil_awaddr.value = offset
        dut.s_axil_awprot.value = 0
        dut.s_axil_wdata.value = value
        dut.s_axil_wstrb.value = 0xF
        dut.s_axil_awvalid.value = 1
        dut.s_axil_wvalid.value = 1
        dut.s_axil_bready.value = 1
        awvalid = wvalid = True
        for _ in range(AXIL_TIMEOUT_CYCLES):
            await FallingEdge(self.clk)
            aw = awvalid and int(dut.s_axil_awready.value)
            w = wvalid and int(dut.s_axil_wready.value)
            b = int(dut.s_axil_bvalid.value)
            bresp = int(dut.s_axil_bresp.value) if b else 0
            await self.rising()
            if aw:
                dut.s_axil_awvalid.value = 0
                awvalid = False
            if w:
                dut.s_axil_wvalid.value = 0
                wvalid = False
            if b:
                dut.s_axil_bready.value = 0
                if bresp:
                    raise RuntimeError(f"write of register 0x{offset:03x}: BRESP={bresp}")
                return None
        self.idle_axil()
        raise RequestTimeout(f"write of register 0x{offset:03x}: no handshake in "
                             f"{AXIL_TIMEOUT_CYCLES} cycles")

    async def op_read_reg(self, offset):
        dut = self.dut
        dut.s_axil_araddr.value = offset
        dut.s_axil_arprot.value = 0
        dut.s_axil_arvalid.value = 1
        dut.s_axil_rready.value = 1
        arvalid = True
        for _ in range(AXIL_TIMEOUT_CYCLES):
            await FallingEdge(self.clk)
            ar = arvalid and int(dut.s_axil_arready.value)
            r = int(dut.s_axil_rvalid.value)
            if r:
                data = int(dut.s_axil_rdata.value)
                rresp = int(dut.s_axil_rresp.value)
            await self.rising()
            if ar:
                dut.s_axil_arvalid.value = 0
                arvalid = False
            if r:
                dut.s_axil_rready.value = 0
                if rresp:
                    raise RuntimeError(f"read of register 0x{offset:03x}: RRESP={rresp}")
                return data
        self.idle_axil()
        raise RequestTimeout(f"read of register 0x{offset:03x}: no handshake in "
                             f"{AXIL_TIMEOUT_CYCLES} cycles")

    async def op_mem_load(self):
        self.dut.bd_load.value = 1
        await self.rising()                 # $readmemh runs at this edge
        self.dut.bd_load.value = 0

    async def op_mem_dump(self, first, last):
        dut = self.dut
        dut.bd_first.value = first
        dut.bd_last.value = last
        dut.bd_dump.value = 1
        await self.rising()                 # $writememh runs at this edge
        dut.bd_dump.value = 0

    async def op_wait_done(self, max_cycles):
        irq = self.dut.irq
        if int(irq.value):
            return 0
        t0 = get_sim_time("step")
        edge = RisingEdge(irq)
        remaining = max(1, int(max_cycles))
        while True:
            # The wait runs in slices of WATCH_CYCLES so that a host that died meanwhile
            # (the socket reads EOF) ends the simulation instead of leaving it running.
            cycles = min(remaining, WATCH_CYCLES)
            timer = Timer(cycles * self.period, unit="step")
            self.dut.host_fast.value = 1    # nothing but irq or the timer can wake us
            fired = await First(edge, timer)
            self.dut.host_fast.value = 0
            if fired is not timer or int(irq.value):
                return (get_sim_time("step") - t0) // self.period
            remaining -= cycles
            if remaining <= 0:
                break
            self.check_host()
        await self.rising()                 # the timer fires before this step's edge
        if int(irq.value):                  # irq rose at that very edge
            return (get_sim_time("step") - t0) // self.period
        raise RequestTimeout(f"irq not raised within {max_cycles} cycles")

    def check_host(self):
        """HostGone when the host closed the connection (it sends nothing mid-request)."""
        if self.conn.poll(0):
            try:
                self.conn.recv()
            except (EOFError, OSError):
                raise HostGone() from None
            raise HostGone("a request arrived during wait_done")

    async def op_reset(self, cycles=4):
        self.idle_axil()
        self.dut.host_rst.value = 1
        for _ in range(max(1, int(cycles))):
            await self.rising()
        self.dut.host_rst.value = 0
        await self.rising()

    async def op_cycle(self):
        return self.cycles_now()

    async def op_quit(self):
        return None

    # ------------------------------------------------------------------ loop
    async def serve(self):
        conn = self.conn
        conn.send(("hello", {"period_steps": self.period, "cycle": self.cycles_now(),
                             "pid": os.getpid()}))
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return                      # the host went away: end the simulation
            op, args = request[0], request[1:]
            handler = getattr(self, "op_" + str(op), None)
            try:
                if handler is None:
                    raise ValueError(f"unknown request {op!r}")
                reply = ("ok", await handler(*args))
            except HostGone:
                return
            except RequestTimeout as exc:
                reply = ("timeout", str(exc))
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            try:
                conn.send(reply)
            except (EOFError, OSError):
                return
            if op == "quit":
                return


@cocotb.test()
async def serve(dut):
    """Serve host requests until told to quit."""
    from multiprocessing.connection import Client
    address = os.environ["ACCEL_SIM_SOCKET"]
    authkey = bytes.fromhex(os.environ["ACCEL_SIM_AUTHKEY"])
    conn = Client(address, family="AF_UNIX", authkey=authkey)
    try:
        server = Server(dut, conn)
        await server.start()
        await server.serve()
    finally:
        conn.close()
