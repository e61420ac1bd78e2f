# amaranth: UnusedElaboratable=no
"""hw.board.bridge (UART bridge framing, commands, corrupted and truncated
frames) in the Amaranth simulator.

The harness: the bridge, the on-chip memory (hw.sram) on its memory port, a
small AXI4-Lite register file on its register port (offsets >= 0x800 answer
SLVERR), and a host-side UART pair that the testbench feeds and reads.
"""

import struct

import pytest
from amaranth import Array, Elaboratable, Module, Mux, Signal
from amaranth.sim import Simulator

from hw.board.bridge import UARTBridge
from hw.board.protocol import (Command, INFO_FORMAT, INFO_MAGIC, Status, encode_request,
                               encode_response)
from hw.sram import AXI4SRAM
from hw.uart import UARTRx, UARTTx

DIVISOR = 4
IDLE = 120
DEPTH = 16                  # words of 8 bytes: 128 bytes of memory
MAX_PAYLOAD = 32
CLK_HZ = 1_000_000


class Harness(Elaboratable):
    def __init__(self):
        self.bridge = UARTBridge(divisor=DIVISOR, idle_cycles=IDLE, mem_depth=DEPTH,
                                 data_width=64, clk_hz=CLK_HZ, max_payload=MAX_PAYLOAD)
        self.sram = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)
        self.host_tx = UARTTx(DIVISOR)
        self.host_rx = UARTRx(DIVISOR)
        self.irq = Signal()
        self.force = Signal()               # drive the bridge's rx from `forced` instead
        self.forced = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.sram = sram = self.sram
        m.submodules.host_tx = host_tx = self.host_tx
        m.submodules.host_rx = host_rx = self.host_rx
        m.d.comb += [bridge.rx.eq(Mux(self.force, self.forced, host_tx.tx)), host_rx.rx.eq(bridge.tx), bridge.irq.eq(self.irq)]
        for name in ("addr", "write", "wdata", "wstrb", "valid"):
            m.d.comb += getattr(sram.host, name).eq(getattr(bridge.mem, name))
        m.d.comb += [bridge.mem.ready.eq(sram.host.ready), bridge.mem.rdata.eq(sram.host.rdata)]

        # Register file: 8 words at 0x000..0x01C; 0x800 and up answer SLVERR.
        bus = bridge.axil
        regs = Array(Signal(32, name=f"reg{i}") for i in range(8))
        b_valid, b_err, r_valid, r_err = Signal(), Signal(), Signal(), Signal()
        r_data = Signal(32)
        take_w = bus.awvalid & bus.wvalid & ~b_valid
        m.d.comb += [bus.awready.eq(take_w), bus.wready.eq(take_w), bus.bvalid.eq(b_valid),
                     bus.bresp.eq(b_err << 1), bus.arready.eq(~r_valid), bus.rvalid.eq(r_valid),
                     bus.rdata.eq(r_data), bus.rresp.eq(r_err << 1)]
        with m.If(take_w):
            m.d.sync += [b_valid.eq(1), b_err.eq(bus.awaddr[11])]
            with m.If(~bus.awaddr[11]):
                m.d.sync += regs[bus.awaddr[2:5]].eq(bus.wdata)
        with m.Elif(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_valid.eq(1), r_err.eq(bus.araddr[11]), r_data.eq(regs[bus.araddr[2:5]])]
        with m.Elif(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)
        return m


class Host:
    """Testbench helpers: bytes in and out through the host-side UARTs."""

    def __init__(self, ctx, harness):
        self.ctx = ctx
        self.h = harness

    async def send(self, data):
        tx = self.h.host_tx.data
        for byte in data:
            self.ctx.set(tx.payload, byte)
            self.ctx.set(tx.valid, 1)
            await self.ctx.tick().until(tx.ready)
        self.ctx.set(tx.valid, 0)

    async def receive(self, count, limit):
        rx = self.h.host_rx.data
        self.ctx.set(rx.ready, 1)
        got = []
        cycles = 0
        while len(got) < count and cycles < limit:
            _, _, valid, payload = await self.ctx.tick().sample(rx.valid, rx.payload)
            cycles += 1
            if valid:
                got.append(payload)
        return bytes(got)

    async def response(self, limit=20_000):
        head = await self.receive(5, limit)
        if len(head) < 5:
            return head
        length = struct.unpack_from("<H", head, 3)[0]
        return head + await self.receive(length + 2, limit)

    async def request(self, command, tag, addr=0, length=0, payload=b""):
        await self.send(encode_request(command, tag, addr, length, payload))
        return await self.response()

    async def silence(self, cycles):
        """No byte comes back for `cycles` cycles."""
        return await self.receive(1, cycles) == b""


def run(testbench):
    harness = Harness()
    sim = Simulator(harness)
    sim.add_clock(1e-6)

    async def wrapper(ctx):
        await testbench(Host(ctx, harness))

    sim.add_testbench(wrapper)
    sim.run()


def ok(tag, payload=b""):
    return encode_response(Status.OK, tag, payload)


def error(status, tag):
    return encode_response(status, tag)


def test_info_and_registers():
    async def testbench(host):
        info = struct.pack(INFO_FORMAT, INFO_MAGIC, 1, MAX_PAYLOAD, DEPTH * 8, CLK_HZ, IDLE)
        assert await host.request(Command.INFO, 1) == ok(1, info)
        assert await host.request(Command.WRITE_REG, 2, 0x008, 4,
                                  (0xDEADBEEF).to_bytes(4, "little")) == ok(2)
        assert await host.request(Command.WRITE_REG, 3, 0x01C, 4, b"\x01\x02\x03\x04") == ok(3)
        assert await host.request(Command.READ_REG, 4, 0x008, 4) == \
            ok(4, (0xDEADBEEF).to_bytes(4, "little"))
        assert await host.request(Command.READ_REG, 5, 0x01C, 4) == ok(5, b"\x01\x02\x03\x04")
        # The register slave answers SLVERR above 0x800.
        assert await host.request(Command.READ_REG, 6, 0x800, 4) == error(Status.BUS, 6)
        assert await host.request(Command.WRITE_REG, 7, 0xFFC, 4, bytes(4)) == \
            error(Status.BUS, 7)

    run(testbench)


def test_memory_write_read_any_alignment():
    async def testbench(host):
        data = bytes(range(100, 132))
        assert await host.request(Command.WRITE_MEM, 10, 5, len(data), data) == ok(10)
        assert await host.request(Command.READ_MEM, 11, 5, len(data)) == ok(11, data)
        assert await host.request(Command.WRITE_MEM, 12, 127, 1, b"\xEE") == ok(12)
        assert await host.request(Command.READ_MEM, 13, 120, 8) == ok(13, bytes(7) + b"\xEE")
        assert await host.request(Command.READ_MEM, 14, 4, 3) == ok(14, b"\x00" + data[:2])

    run(testbench)


def test_wait_for_irq_and_timeout():
    async def testbench(host):
        assert await host.request(Command.WAIT, 20, 50) == \
            encode_response(Status.TIMEOUT, 20, (50).to_bytes(4, "little"))
        host.ctx.set(host.h.irq, 1)
        assert await host.request(Command.WAIT, 21, 1000) == ok(21, bytes(4))

    run(testbench)


def test_command_checks():
    async def testbench(host):
        assert await host.request(0x7F, 30) == error(Status.COMMAND, 30)
        assert await host.request(Command.INFO, 31, 0, 2) == error(Status.LENGTH, 31)
        assert await host.request(Command.READ_REG, 32, 0, 2) == error(Status.LENGTH, 32)
        assert await host.request(Command.READ_REG, 33, 0x002, 4) == error(Status.ADDRESS, 33)
        assert await host.request(Command.READ_REG, 34, 0x1000, 4) == error(Status.ADDRESS, 34)
        assert await host.request(Command.READ_MEM, 35, 0, 0) == error(Status.LENGTH, 35)
        assert await host.request(Command.READ_MEM, 36, 0, MAX_PAYLOAD + 1) == \
            error(Status.LENGTH, 36)
        assert await host.request(Command.READ_MEM, 37, 100, 29) == error(Status.ADDRESS, 37)
        assert await host.request(Command.WRITE_MEM, 38, 0xFFFF_FFF0, 16, bytes(16)) == \
            error(Status.ADDRESS, 38)
        assert await host.request(Command.WAIT, 39, 0, 4) == error(Status.LENGTH, 39)
        # Nothing above was executed: memory is still zero.
        assert await host.request(Command.READ_MEM, 40, 0, 16) == ok(40, bytes(16))

    run(testbench)


def test_corrupted_frames_change_nothing():
    async def testbench(host):
        frame = bytearray(encode_request(Command.WRITE_MEM, 50, 0, 8, b"ABCDEFGH"))
        frame[12] ^= 0x10                      # a payload byte
        await host.send(frame)
        assert await host.response() == error(Status.CRC, 50)
        frame = bytearray(encode_request(Command.WRITE_REG, 51, 0, 4, b"WXYZ"))
        frame[-1] ^= 0x01                      # the CRC itself
        await host.send(frame)
        assert await host.response() == error(Status.CRC, 51)
        # A damaged length makes the frame look shorter: the bridge waits for the
        # line to go idle before it answers, so the rest is not taken for a frame.
        frame = bytearray(encode_request(Command.WRITE_MEM, 52, 0, 8, b"\xA5" * 8))
        frame[7] = 2
        await host.send(frame)
        assert await host.response() == error(Status.CRC, 52)
        assert await host.request(Command.READ_MEM, 53, 0, 8) == ok(53, bytes(8))
        assert await host.request(Command.READ_REG, 54, 0, 4) == ok(54, bytes(4))

    run(testbench)


def test_truncated_and_oversized_frames():
    async def testbench(host):
        frame = encode_request(Command.WRITE_MEM, 60, 0, 8, b"12345678")
        await host.send(frame[:10])            # stops inside the payload
        assert await host.silence(IDLE // 2)
        assert await host.response() == error(Status.TRUNCATED, 60)
        await host.send(frame[:4])             # stops inside the header: tag known
        assert await host.response() == error(Status.TRUNCATED, 60)
        # LEN beyond the payload buffer: rejected without reading the payload.
        big = encode_request(Command.WRITE_MEM, 61, 0, MAX_PAYLOAD + 8, bytes(MAX_PAYLOAD + 8))
        await host.send(big)
        assert await host.response() == error(Status.LENGTH, 61)
        # Garbage before a frame is skipped while looking for the sync byte.
        await host.send(b"\x00\x13\xFF")
        assert await host.request(Command.READ_MEM, 62, 0, 8) == ok(62, bytes(8))

    run(testbench)


def test_framing_error_is_reported():
    async def testbench(host):
        frame = encode_request(Command.READ_REG, 70, 0, 4)
        await host.send(frame[:3])
        ctx = host.ctx
        await ctx.tick().repeat(DIVISOR * 12)
        ctx.set(host.h.force, 1)               # a byte with a bad stop bit
        for bit in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]:
            ctx.set(host.h.forced, bit)
            await ctx.tick().repeat(DIVISOR)
        ctx.set(host.h.forced, 1)
        assert await host.response() == error(Status.UART, 70)
        ctx.set(host.h.force, 0)
        assert await host.request(Command.READ_REG, 71, 0, 4) == ok(71, bytes(4))

    run(testbench)


def test_constructor_checks():
    good = dict(divisor=4, idle_cycles=100, mem_depth=16, data_width=64, clk_hz=1000)
    for name, bad in (("idle_cycles", 3), ("mem_depth", 1), ("clk_hz", 0),
                      ("max_payload", 5000), ("data_width", 24), ("divisor", 2)):
        with pytest.raises(ValueError, match=name if name != "divisor" else "divisor"):
            UARTBridge(**{**good, name: bad})
