# amaranth: UnusedElaboratable=no
# (the constructor error tests build components that are never elaborated)
"""AXILiteSlave against an AXI4-Lite master model and a register-file owner.

The owner (`RegisterOwner`) drives `rdata` only `read_latency` cycles after
`read`, so every read also checks the documented rdata timing.
"""

import random

import pytest

from hw.axil import AXILiteSlave
from tests.axi_models import AXILiteMaster, RegisterOwner, run

OKAY = 0


def run_lite(*, aw=(), w=(), ar=(), bready=lambda cycle: True, rready=lambda cycle: True,
             registers=None, addr_width=12, read_latency=1, max_cycles=500):
    """Run the transactions; check responses and strobe counts; return (master, owner)."""
    assert len(aw) == len(w)
    dut = AXILiteSlave(addr_width, read_latency=read_latency)
    master = AXILiteMaster(dut.axil, aw=aw, w=w, ar=ar, bready=bready, rready=rready)
    owner = RegisterOwner(dut, registers)

    def done(ctx):
        return master.done and len(master.b) == len(aw) and len(master.r) == len(ar)

    run(dut, [master, owner], done, max_cycles=max_cycles)
    assert all(resp == OKAY for _, resp in master.b)
    assert all(resp == OKAY for _, _, resp in master.r)
    writes = [event for event in owner.log if event[0] == "write"]
    reads = [event for event in owner.log if event[0] == "read"]
    assert len(writes) == len(aw), "one write strobe per AXI write"
    assert len(reads) == len(ar), "one read strobe per AXI read"
    assert [data for _, data, _ in master.r] == [value for _, _, _, value in reads]
    assert [addr for _, _, addr, _ in reads] == [addr & ~3 for _, addr in ar]
    assert [(addr, data, strb) for _, _, addr, data, strb in writes] == \
        [(addr & ~3, data, strb) for (_, addr), (_, data, strb) in zip(aw, w)]
    return master, owner


def test_write_then_read_back():
    aw = [(0, 0x10), (0, 0x14)]
    w = [(0, 0x11111111, 0xF), (0, 0x22222222, 0xF)]
    ar = [(12, 0x10), (0, 0x14), (0, 0x18)]
    master, owner = run_lite(aw=aw, w=w, ar=ar)
    assert [data for _, data, _ in master.r] == [0x11111111, 0x22222222, 0]
    assert owner.registers == {0x10: 0x11111111, 0x14: 0x22222222}


def test_write_timing():
    master, owner = run_lite(aw=[(0, 0x20)], w=[(0, 0xCAFE, 0xF)])
    start = master.cycles("aw")[0]
    assert master.cycles("w") == [start]
    assert [event[1] for event in owner.log] == [start + 1]     # `write` strobe
    assert [cycle for cycle, _ in master.b] == [start + 2]      # BVALID, BREADY high


@pytest.mark.parametrize("read_latency", [1, 2])
def test_read_timing(read_latency):
    master, owner = run_lite(ar=[(0, 0x24)], registers={0x24: 0x12345678},
                             read_latency=read_latency)
    start = master.cycles("ar")[0]
    assert [event[1] for event in owner.log] == [start + 1]     # `read` strobe
    assert master.r == [(start + 2 + read_latency, 0x12345678, OKAY)]   # RVALID, RREADY high


@pytest.mark.parametrize("aw_delay, w_delay", [(0, 6), (6, 0), (3, 3)],
                         ids=["aw_before_w", "w_before_aw", "together"])
def test_address_and_data_order(aw_delay, w_delay):
    aw = [(aw_delay, 0x30), (aw_delay, 0x34)]
    w = [(w_delay, 0xA5A5A5A5, 0xF), (w_delay, 0x5A5A5A5A, 0xF)]
    master, owner = run_lite(aw=aw, w=w, ar=[(30, 0x30), (0, 0x34)])
    assert [data for _, data, _ in master.r] == [0xA5A5A5A5, 0x5A5A5A5A]
    for index, (_, cycle, *_rest) in enumerate(owner.log[:2]):
        later = max(master.cycles("aw")[index], master.cycles("w")[index])
        assert cycle > later


def test_wstrb():
    aw = [(0, 0x40)] * 4
    w = [(0, 0xFFFFFFFF, 0xF), (0, 0x11223344, 0b0101), (0, 0xAABBCCDD, 0b1000),
         (0, 0x00000000, 0b0000)]
    master, owner = run_lite(aw=aw, w=w, ar=[(20, 0x40)])
    assert master.r[0][1] == 0xAA22_FF44
    assert owner.registers[0x40] == 0xAA22_FF44


def test_unaligned_address_is_word_aligned():
    run_lite(aw=[(0, 0x53)], w=[(0, 7, 0xF)], ar=[(8, 0x51)])


def test_stalled_bready_does_not_block_reads():
    release = 40
    aw = [(0, 0x10), (0, 0x14)]
    w = [(0, 1, 0xF), (0, 2, 0xF)]
    ar = [(2, 0x10), (0, 0x0), (0, 0x10)]
    master, owner = run_lite(aw=aw, w=w, ar=ar, bready=lambda cycle: cycle >= release,
                             registers={0x0: 0x99})
    assert all(cycle < release for cycle, _, _ in master.r)
    assert [data for _, data, _ in master.r] == [1, 0x99, 1]
    writes = [event for event in owner.log if event[0] == "write"]
    assert writes[0][1] < release <= writes[1][1], "the second write waits for the first B"
    assert all(cycle >= release for cycle, _ in master.b)


def test_stalled_rready_does_not_block_writes():
    release = 40
    aw = [(4, 0x10), (0, 0x14), (0, 0x18)]
    w = [(4, 1, 0xF), (0, 2, 0xF), (0, 3, 0xF)]
    ar = [(0, 0x20), (0, 0x24)]
    master, owner = run_lite(aw=aw, w=w, ar=ar, rready=lambda cycle: cycle >= release,
                             registers={0x20: 5, 0x24: 6})
    assert [cycle < release for cycle, _ in master.b] == [True] * 3
    assert [data for _, data, _ in master.r] == [5, 6]
    assert all(cycle >= release for cycle, _, _ in master.r)


@pytest.mark.parametrize("read_latency", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_random_traffic(seed, read_latency):
    rng = random.Random(seed)
    addrs = [0x0, 0x4, 0x8, 0xFFC]
    n_writes, n_reads = 30, 30
    aw = [(rng.randrange(4), rng.choice(addrs)) for _ in range(n_writes)]
    w = [(rng.randrange(4), rng.getrandbits(32), rng.randrange(16)) for _ in range(n_writes)]
    ar = [(rng.randrange(4), rng.choice(addrs)) for _ in range(n_reads)]
    ready_rng = random.Random(seed + 100)
    master, owner = run_lite(aw=aw, w=w, ar=ar, max_cycles=2000, read_latency=read_latency,
                             bready=lambda cycle: ready_rng.random() < 0.5,
                             rready=lambda cycle: ready_rng.random() < 0.5)
    expected = {}
    for (_, addr), (_, data, strb) in zip(aw, w):
        mask = sum(0xFF << (8 * lane) for lane in range(4) if strb >> lane & 1)
        expected[addr] = expected.get(addr, 0) & ~mask | data & mask
    assert owner.registers == expected


def test_narrow_address():
    master, _ = run_lite(aw=[(0, 0xC)], w=[(0, 0x77, 0xF)], ar=[(6, 0xC)], addr_width=4)
    assert master.r[0][1] == 0x77


@pytest.mark.parametrize("value", [2, 33, True, "12"])
def test_constructor_validation(value):
    with pytest.raises(ValueError, match=rf"addr_width must be an integer in 4\.\.32, "
                                         rf"not {value!r}"):
        AXILiteSlave(value)


@pytest.mark.parametrize("value", [0, 3, True, 1.0])
def test_read_latency_validation(value):
    with pytest.raises(ValueError, match=rf"read_latency must be 1 or 2, not {value!r}"):
        AXILiteSlave(read_latency=value)
