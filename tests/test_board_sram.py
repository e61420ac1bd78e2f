# amaranth: UnusedElaboratable=no
"""hw.sram.AXI4SRAM in the Amaranth simulator: AXI4 bursts in both directions
at once, RREADY back-pressure, SLVERR outside the memory, and the host port's
priority."""

import random

import pytest
from amaranth.sim import Simulator

from hw.sram import AXI4SRAM

DEPTH = 32


def run(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run()


async def axi_write(ctx, w, addr, words, strobes=None):
    ctx.set(w.awaddr, addr)
    ctx.set(w.awlen, len(words) - 1)
    ctx.set(w.awsize, 3)
    ctx.set(w.awburst, 1)
    ctx.set(w.awvalid, 1)
    await ctx.tick().until(w.awready)
    ctx.set(w.awvalid, 0)
    for index, word in enumerate(words):
        ctx.set(w.wdata, word)
        ctx.set(w.wstrb, 0xFF if strobes is None else strobes[index])
        ctx.set(w.wlast, index == len(words) - 1)
        ctx.set(w.wvalid, 1)
        await ctx.tick().until(w.wready)
    ctx.set(w.wvalid, 0)
    ctx.set(w.bready, 1)
    (bresp,) = await ctx.tick().sample(w.bresp).until(w.bvalid)
    ctx.set(w.bready, 0)
    return bresp


async def axi_read(ctx, r, addr, beats, stall_every=0):
    ctx.set(r.araddr, addr)
    ctx.set(r.arlen, beats - 1)
    ctx.set(r.arsize, 3)
    ctx.set(r.arburst, 1)
    ctx.set(r.arvalid, 1)
    await ctx.tick().until(r.arready)
    ctx.set(r.arvalid, 0)
    data, resps, lasts = [], [], []
    cycle = 0
    while len(data) < beats:
        ready = not (stall_every and cycle % stall_every == 0)
        ctx.set(r.rready, ready)
        _, _, valid, rdata, rresp, rlast = await ctx.tick().sample(r.rvalid, r.rdata, r.rresp,
                                                                     r.rlast)
        cycle += 1
        if valid and ready:
            data.append(rdata)
            resps.append(rresp)
            lasts.append(rlast)
    ctx.set(r.rready, 0)
    return data, resps, lasts


def test_bursts_both_directions_and_backpressure():
    dut = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)
    rng = random.Random(5)
    words = [rng.getrandbits(64) for _ in range(12)]
    done = []

    async def writer(ctx):
        assert await axi_write(ctx, dut.axi_w, 0x40, words) == 0
        done.append("w")

    async def reader(ctx):
        await ctx.tick().repeat(30)                 # after the write finished
        data, resps, lasts = await axi_read(ctx, dut.axi_r, 0x40, 12, stall_every=3)
        assert data == words and set(resps) == {0} and lasts == [0] * 11 + [1]
        # Partial write strobes keep the other bytes.
        assert await axi_write(ctx, dut.axi_w, 0x48, [0xAAAAAAAAAAAAAAAA], [0x0F]) == 0
        data, _, _ = await axi_read(ctx, dut.axi_r, 0x48, 1)
        assert data == [(words[1] & ~0xFFFFFFFF) | 0xAAAAAAAA]
        done.append("r")

    run(dut, writer, reader)
    assert done == ["w", "r"]


def test_outside_memory_is_slverr():
    dut = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)

    async def testbench(ctx):
        # The burst runs off the end of the memory: last two beats outside.
        assert await axi_write(ctx, dut.axi_w, (DEPTH - 2) * 8, [1, 2, 3, 4]) == 2
        data, resps, _ = await axi_read(ctx, dut.axi_r, (DEPTH - 2) * 8, 4)
        assert data == [1, 2, 0, 0] and resps == [0, 0, 2, 2]
        data, _, _ = await axi_read(ctx, dut.axi_r, 0, 2)     # nothing wrapped around
        assert data == [0, 0]

    run(dut, testbench)


def test_host_port_has_priority():
    dut = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)
    host = dut.host

    async def axi_side(ctx):
        assert await axi_write(ctx, dut.axi_w, 0, list(range(100, 116))) == 0
        data, _, _ = await axi_read(ctx, dut.axi_r, 0, 16)
        assert data == list(range(100, 116))

    async def host_side(ctx):
        await ctx.tick().repeat(4)                  # in the middle of the AXI write
        ctx.set(host.valid, 1)
        ctx.set(host.write, 1)
        ctx.set(host.addr, 20)
        ctx.set(host.wdata, 0x1122334455667788)
        ctx.set(host.wstrb, 0b0000_0110)
        assert ctx.get(host.ready)
        await ctx.tick()
        ctx.set(host.write, 0)
        assert not ctx.get(host.ready)              # the write is being done
        await ctx.tick().until(host.ready)
        assert ctx.get(host.rdata) == 0x0000000000667700
        ctx.set(host.valid, 0)

    run(dut, axi_side, host_side)


def test_first_beat_two_cycles_after_ar():
    dut = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)
    r = dut.axi_r

    async def testbench(ctx):
        ctx.set(r.araddr, 0)
        ctx.set(r.arvalid, 1)
        ctx.set(r.rready, 1)
        await ctx.tick().until(r.arready)
        ctx.set(r.arvalid, 0)
        valid = [ctx.get(r.rvalid)]
        for _ in range(3):
            await ctx.tick()
            valid.append(ctx.get(r.rvalid))
        assert valid == [0, 0, 1, 0]

    run(dut, testbench)


def test_host_reads_during_a_stalled_burst():
    dut = AXI4SRAM(data_width=64, addr_width=16, depth=DEPTH)
    host = dut.host
    words = [0x0101010101010101 * (index + 1) for index in range(DEPTH)]
    done = []

    async def axi_side(ctx):
        assert await axi_write(ctx, dut.axi_w, 0, words) == 0
        done.append("written")
        data, resps, _ = await axi_read(ctx, dut.axi_r, 0, DEPTH, stall_every=2)
        assert data == words and set(resps) == {0}
        done.append("axi")

    async def host_side(ctx):
        await ctx.tick().until(dut.axi_w.bvalid)
        got = []
        for index in range(40):                     # the host reads all through the burst
            ctx.set(host.addr, (index * 7) % DEPTH)
            ctx.set(host.valid, 1)
            await ctx.tick().until(host.ready)
            got.append(ctx.get(host.rdata))
            ctx.set(host.valid, 0)
            await ctx.tick().repeat(1 + index % 3)
        assert got == [words[(index * 7) % DEPTH] for index in range(40)]
        done.append("host")

    run(dut, axi_side, host_side)
    assert sorted(done) == ["axi", "host", "written"]


def test_constructor_checks():
    for kwargs, message in ((dict(data_width=24, addr_width=16, depth=4), "data_width"),
                            (dict(data_width=64, addr_width=0, depth=4), "addr_width"),
                            (dict(data_width=64, addr_width=16, depth=1), "depth"),
                            (dict(data_width=64, addr_width=8, depth=64), "do not fit")):
        with pytest.raises(ValueError, match=message):
            AXI4SRAM(**kwargs)
