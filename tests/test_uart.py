# amaranth: UnusedElaboratable=no
"""hw.uart (8N1 transmitter and receiver) and the CRC of the bridge protocol,
in the Amaranth simulator against explicit bit patterns."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hw.board.bridge import crc16_step
from hw.board.protocol import crc16
from hw.uart import UARTRx, UARTTx, divisor_for


def frame_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 5, 9])
def test_tx_waveform(divisor):
    dut = UARTTx(divisor)
    data = [0x55, 0x00, 0xFF, 0xA5]
    seen = []

    async def feeder(ctx):
        assert ctx.get(dut.tx) == 1
        for byte in data:
            ctx.set(dut.data.payload, byte)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def monitor(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            seen.append(tx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder)
    sim.add_process(monitor)
    sim.run()
    start = seen.index(0)
    assert set(seen[:start]) == {1}
    # Back to back: each bit lasts exactly `divisor` cycles, no gap between bytes.
    expected = [bit for byte in data for bit in frame_bits(byte) for _ in range(divisor)]
    assert seen[start:start + len(expected)] == expected
    assert set(seen[start + len(expected):]) == {1}


def drive_line(ctx, line, bits, divisor):
    async def go():
        for bit in bits:
            ctx.set(line, bit)
            await ctx.tick().repeat(divisor)
    return go()


@pytest.mark.parametrize("divisor", [4, 7])
def test_rx_bytes_and_framing_error(divisor):
    dut = UARTRx(divisor)
    data = [random.Random(divisor).randrange(256) for _ in range(6)]
    received, errors = [], []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        for index, byte in enumerate(data):
            stop = 0 if index == 2 else 1          # byte 2 has a bad stop bit
            await drive_line(ctx, dut.rx, frame_bits(byte, stop) + [1] * 2, divisor)
        await ctx.tick().repeat(4 * divisor)

    async def receiver(ctx):
        ctx.set(dut.data.ready, 1)
        async for _, _, valid, payload, error in ctx.tick().sample(
                dut.data.valid, dut.data.payload, dut.error):
            if valid:
                received.append(payload)
            if error:
                errors.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_process(receiver)
    sim.run()
    assert received == data[:2] + data[3:]
    assert errors == [1]


def test_rx_ignores_glitch_and_holds_byte():
    divisor = 8
    dut = UARTRx(divisor)

    async def testbench(ctx):
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 0)                    # shorter than half a bit: not a start bit
        await ctx.tick().repeat(2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        assert not ctx.get(dut.data.valid)
        await drive_line(ctx, dut.rx, frame_bits(0x3C) + [1], divisor)
        assert ctx.get(dut.data.valid) and ctx.get(dut.data.payload) == 0x3C
        await ctx.tick().repeat(5)            # not taken: still there
        assert ctx.get(dut.data.valid) and ctx.get(dut.data.payload) == 0x3C
        ctx.set(dut.data.ready, 1)
        await ctx.tick()
        assert not ctx.get(dut.data.valid)

    run(dut, testbench)


def test_loopback_random_bytes():
    m = Module()
    m.submodules.tx = tx = UARTTx(4)
    m.submodules.rx = rx = UARTRx(4)
    m.d.comb += rx.rx.eq(tx.tx)
    data = bytes(random.Random(1).randrange(256) for _ in range(40))
    got = []

    async def sender(ctx):
        for byte in data:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def receiver(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(data):
            (payload,) = await ctx.tick().sample(rx.data.payload).until(rx.data.valid)
            got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(receiver)
    sim.run()
    assert bytes(got) == data


def test_divisor_checks():
    assert divisor_for(12_000_000, 1_000_000) == 12
    assert divisor_for(100_000_000, 115_200) == 868
    with pytest.raises(ValueError, match="too high"):
        divisor_for(12_000_000, 6_000_000)
    with pytest.raises(ValueError, match="% off"):
        divisor_for(12_000_000, 2_400_000 * 1.1)      # 4.55 clocks per bit
    with pytest.raises(ValueError, match="positive"):
        divisor_for(0, 9600)
    for bad in (3, 4.0, True, None):
        with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
            UARTTx(bad)
        with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
            UARTRx(bad)


# --------------------------------------------------------------------- CRC
def test_crc16_reference_values():
    assert crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE check value
    assert crc16(b"") == 0xFFFF
    body = bytes(range(37))
    # Appending the CRC most significant byte first gives a residue of 0.
    assert crc16(body + crc16(body).to_bytes(2, "big")) == 0


def test_crc16_hardware_matches_reference():
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(64))
    m = Module()
    crc = Signal(16, init=0xFFFF)
    byte = Signal(8)
    m.d.sync += crc.eq(crc16_step(crc, byte))

    async def testbench(ctx):
        for index, value in enumerate(data):
            ctx.set(byte, value)
            await ctx.tick()
            assert ctx.get(crc) == crc16(data[:index + 1])

    run(m, testbench)
