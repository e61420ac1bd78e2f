# amaranth: UnusedElaboratable=no
# (the constructor error tests build components that are never elaborated)
"""RegisteredFIFO against a Python queue under random pushes and pops."""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fifo import RegisteredFIFO


@pytest.mark.parametrize("depth", [3, 4, 6])
def test_random_traffic_keeps_order_and_level(depth):
    dut = RegisteredFIFO(width=8, depth=depth)
    rng = np.random.default_rng(depth)
    model = deque()
    arrivals = deque()          # cycle each queued entry was written
    delays = []

    async def testbench(ctx):
        value = 0
        for cycle in range(600):
            write = bool(rng.random() < 0.6)
            read = bool(rng.random() < 0.5)
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, value)
            ctx.set(dut.r_en, read)
            assert ctx.get(dut.w_level) == len(model) == ctx.get(dut.r_level)
            assert ctx.get(dut.w_rdy) == (len(model) < depth)
            readable = ctx.get(dut.r_rdy)
            # The oldest entry is readable from the second cycle after its write.
            assert readable == bool(model and cycle - arrivals[0] >= 2)
            if readable:
                assert ctx.get(dut.r_data) == model[0]
                if read:
                    model.popleft()
                    delays.append(cycle - arrivals.popleft())
            if write and ctx.get(dut.w_rdy):
                model.append(value)
                arrivals.append(cycle)
                value = (value + 1) & 0xFF
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert min(delays) == 2 and len(delays) > 100


def test_full_rate_stream():
    """Written every cycle and read every cycle, one entry passes each cycle."""
    dut = RegisteredFIFO(width=8, depth=3)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.r_en, 1)
        ctx.set(dut.w_en, 1)
        for cycle in range(20):
            ctx.set(dut.w_data, cycle)
            if ctx.get(dut.r_rdy):
                seen.append(ctx.get(dut.r_data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == list(range(18))


@pytest.mark.parametrize("depth", [0, 2, True, 4.0])
def test_refuses_depth(depth):
    with pytest.raises(ValueError, match=f"^depth must be an integer >= 3, not {depth!r}$"):
        RegisteredFIFO(width=4, depth=depth)
