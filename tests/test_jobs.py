# amaranth: UnusedElaboratable=no
"""The dispatcher's shift-and-add multiplier and its job records, in Amaranth's
simulator, against products and a job loop written out in Python."""

import random

import pytest
from amaranth.sim import Simulator

from hw.config import AccelConfig, DESC_FIELDS
from hw.jobs import Dispatcher, SerialMultiplier, buffer_offset, window_coord
from sw_driver.cycles import prepare_cycles
from sw_driver.model import decode_descriptor


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("a_width, b_width, product_width", [(24, 32, 44), (5, 7, 9)])
def test_serial_multiplier_products_and_cycles(a_width, b_width, product_width):
    rng = random.Random(a_width)
    cases = [(0, 5, False), (1, (1 << b_width) - 1, True), ((1 << a_width) - 1, (1 << b_width) - 1,
                                                             False)]
    cases += [(rng.getrandbits(rng.randint(1, a_width)), rng.getrandbits(b_width),
               rng.random() < 0.5) for _ in range(30)]
    dut = SerialMultiplier(a_width, b_width, product_width)
    results = []

    async def testbench(ctx):
        for a, b, negate in cases:
            ctx.set(dut.load, 1)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.negate, negate)
            await ctx.tick()
            ctx.set(dut.load, 0)
            cycles = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            results.append((ctx.get(dut.product), cycles))

    simulate(dut, testbench)
    for (a, b, negate), (product, cycles) in zip(cases, results):
        assert product == (-a * b if negate else a * b) % (1 << product_width), (a, b, negate)
        assert cycles == a.bit_length(), (a, b)


@pytest.mark.parametrize("name", ["a_width", "b_width", "product_width"])
@pytest.mark.parametrize("value", [0, -3, 2.0, True])
def test_serial_multiplier_refuses_bad_widths(name, value):
    widths = {"a_width": 4, "b_width": 4, "product_width": 8, name: value}
    with pytest.raises(TypeError, match=f"^{name} must be a positive integer, not {value!r}$"):
        SerialMultiplier(**widths)


def expected_records(cfg, d):
    """The records of descriptor `d` (decoded fields), by the formulas of
    hw/jobs.py's field comments, for the load, compute and store FIFOs."""
    mask = (1 << cfg.axi_addr_width) - 1
    # The compute record's window-relative values, in the record's widths.
    coord = window_coord(cfg).width
    offset_mask = (1 << buffer_offset(cfg)) - 1

    def wrap(value, bits):
        return (value + (1 << bits - 1)) % (1 << bits) - (1 << bits - 1)

    w_step = d["KH"] * d["KW"] * cfg.w_elem_words * cfg.bus_bytes
    p_step = cfg.p_elem_words * cfg.bus_bytes
    load, comp, store = [], [], []
    for oy0 in range(0, d["OUT_H"], d["TILE_H"]):
        th = min(d["TILE_H"], d["OUT_H"] - oy0)
        lo_y = oy0 * d["SH"] - d["PAD_T"]
        hi_y = lo_y + (th - 1) * d["SH"] + d["KH"] - 1
        wy0, wh = max(lo_y, 0), max(min(hi_y, d["IN_H"] - 1) - max(lo_y, 0) + 1, 0)
        for ox0 in range(0, d["OUT_W"], d["TILE_W"]):
            tw = min(d["TILE_W"], d["OUT_W"] - ox0)
            lo_x = ox0 * d["SW"] - d["PAD_L"]
            hi_x = lo_x + (tw - 1) * d["SW"] + d["KW"] - 1
            wx0, ww = max(lo_x, 0), max(min(hi_x, d["IN_W"] - 1) - max(lo_x, 0) + 1, 0)
            lrow0, lcol0 = min(lo_y, 0), min(lo_x, 0)
            if wh and ww:
                # What the record's widths rely on: a window that is not
                # empty is less than its span from the tile's first input.
                span = (th - 1) * d["SH"] + d["KH"], (tw - 1) * d["SW"] + d["KW"]
                assert -span[0] < lrow0 <= 0 and -span[1] < lcol0 <= 0
            for cob in range(d["CO_BLOCKS"]):
                for cib in range(d["CI_BLOCKS"]):
                    job = cob * d["CI_BLOCKS"] + cib
                    first, last = int(cib == 0), int(cib == d["CI_BLOCKS"] - 1)
                    load.append(dict(
                        first=first, taps=d["KH"] * d["KW"],
                        w_words=d["KH"] * d["KW"] * cfg.w_elem_words, wh=wh, ww=ww,
                        p_addr=(d["P_BASE"] + cob * p_step) & mask,
                        w_addr=(d["W_BASE"] + job * w_step) & mask,
                        in_addr=(d["IN_BASE"] + cib * d["IN_BLK_PITCH"] + wy0 * d["IN_ROW_PITCH"]
                                 + wx0 * d["IN_ELEM_PITCH"]) & mask))
                    comp.append(dict(first=first, last=last, th=th, tw=tw, wh=wh, ww=ww,
                                     lrow0=wrap(lrow0, coord), lcol0=wrap(lcol0, coord),
                                     base0=(lrow0 * ww) & offset_mask,
                                     row_step=(d["SH"] * ww) & offset_mask))
                    if last:
                        store.append(dict(th=th, tw=tw, out_addr=(
                            d["OUT_BASE"] + cob * d["OUT_BLK_PITCH"] + oy0 * d["OUT_ROW_PITCH"]
                            + ox0 * d["OUT_ELEM_PITCH"]) & mask))
    return {"load": load, "comp": comp, "store": store}


def descriptor(**changes):
    fields = {
        "IN_BASE": 0x10000, "IN_ELEM_PITCH": 24, "IN_ROW_PITCH": 400, "IN_BLK_PITCH": 8,
        "OUT_BASE": 0x80000, "OUT_ELEM_PITCH": 16, "OUT_ROW_PITCH": 1200, "OUT_BLK_PITCH": 8,
        "W_BASE": 0x40000, "P_BASE": 0x60000, "IN_H": 9, "IN_W": 11, "OUT_H": 10, "OUT_W": 7,
        "CI_BLOCKS": 2, "CO_BLOCKS": 3, "KH": 3, "KW": 2, "SH": 2, "SW": 1,
        "PAD_T": 2, "PAD_L": -1, "TILE_H": 3, "TILE_W": 4, "MODE": 1,
        "OUT_ZP": 0, "ACT_MIN": -128, "ACT_MAX": 127,
    }
    fields.update(changes)
    return fields


@pytest.mark.parametrize("cfg_changes, changes", [
    ({}, {}),                                               # partial tiles, both paddings
    ({}, dict(PAD_T=-3, PAD_L=4, SW=2, TILE_W=2)),          # windows cut on the other sides
    ({}, dict(PAD_T=7, TILE_H=1, IN_BASE=0xFFFF_FF00)),     # tiles all padding, addresses wrap
    ({}, dict(CI_BLOCKS=1, CO_BLOCKS=1, OUT_H=1, OUT_W=1, KH=1, KW=1, SH=1, PAD_T=0, PAD_L=0)),
    # A 16-bit bus: bases, pitches and their products wrap at 64 KiB.
    (dict(axi_addr_width=16),
     dict(IN_BASE=0x3_FF00, OUT_BASE=0x1_F000, OUT_ROW_PITCH=0x1_0400, PAD_T=-1)),
    # The smallest input buffer (6-bit window coordinates) and padding far
    # beyond them: the empty windows' values wrap in the compute records.
    (dict(in_depth=16, acc_depth=16),
     dict(TILE_H=1, TILE_W=2, PAD_T=40, PAD_L=37, OUT_H=24, OUT_W=40, CI_BLOCKS=1,
          CO_BLOCKS=1)),
])
def test_dispatcher_records(cfg_changes, changes):
    cfg = AccelConfig(rows=4, cols=4, kernel_max=3, stride_max=2, **cfg_changes)
    raw = descriptor(**changes)
    fields = decode_descriptor({name: value & 0xFFFF_FFFF for name, value in raw.items()})[0]
    expected = expected_records(cfg, fields)
    dut = Dispatcher(cfg)
    names = ("load", "comp", "store")
    got = {name: [] for name in names}
    prepared_after = []

    async def testbench(ctx):
        for name, _, _ in DESC_FIELDS:
            ctx.set(dut.desc[name], raw[name] & 0xFFFF_FFFF)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 1
        while not ctx.get(dut.prepared):
            await ctx.tick()
            cycles += 1
        prepared_after.append(cycles)
        assert ctx.get(dut.tile_pixels) == fields["TILE_H"] * fields["TILE_W"]
        span_h = (fields["TILE_H"] - 1) * fields["SH"] + fields["KH"]
        span_w = (fields["TILE_W"] - 1) * fields["SW"] + fields["KW"]
        assert ctx.get(dut.window_elems) == span_h * span_w
        ctx.set(dut.run, 1)
        await ctx.tick()
        ctx.set(dut.run, 0)
        for name in names:
            ctx.set(getattr(dut, f"{name}_ready"), 1)
        for _ in range(20000):
            for name in names:
                if ctx.get(getattr(dut, f"{name}_valid")):
                    record = ctx.get(getattr(dut, f"{name}_job"))
                    got[name].append({field: getattr(record, field)
                                      for field in expected[name][0]})
            if ctx.get(dut.done) and not any(ctx.get(getattr(dut, f"{name}_valid"))
                                             for name in names):
                break
            await ctx.tick()

    simulate(dut, testbench)
    for name in names:
        assert got[name] == expected[name], name
    # The products take the cycles the cycle model counts (plus the start cycle).
    assert prepared_after == [prepare_cycles(cfg, fields) + 1]
