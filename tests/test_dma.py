# amaranth: UnusedElaboratable=no
# (the constructor error tests build components that are never elaborated)
"""ReadEngine and WriteEngine against the AXI memory models of tests/axi_models.py.

Every run checks the data (words in order, memory writes in order), the exact
burst split the DMA contract prescribes (`plan_bursts`), the AXI rules the
models assert (stable payloads, 4 KiB, WLAST, WSTRB, ...), the `beats` and
`error` pulse counts and that `idle` stays low while a transfer is in progress.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hw.config import AccelConfig
from hw.dma import ReadEngine, TransferLayout, WriteEngine, transfer_limits
from tests.axi_models import (AXIReadSlave, AXIWriteSlave, Memory, Recorder, StreamSink,
                              StreamSource, plan_bursts, run, transfer_words)

# Transfers as long as the tests' (300-word elements, 300-element rows)
# need a configuration whose stages ask for them (`transfer_limits`): a
# 64x64 array's weight matrix is 512 words.
CFG = AccelConfig(rows=64, cols=64)
B = CFG.bus_bytes


def transfer(addr, elem_words=1, n_elems=1, elem_pitch=None, n_rows=1, row_pitch=0):
    """A command dict; `elem_pitch` defaults to contiguous elements."""
    if elem_pitch is None:
        elem_pitch = elem_words * B
    return {"addr": addr, "elem_words": elem_words, "n_elems": n_elems,
            "elem_pitch": elem_pitch, "n_rows": n_rows, "row_pitch": row_pitch}


def _max_cycles(words, bursts, latency, probabilities):
    return int((400 + 4 * words + bursts * (latency + 2)) / min(probabilities) ** 2)


def _check_idle(recorder, accepted, word_counts, word_cycles):
    """`idle` is low from the cycle after a command's handshake to its last word."""
    done = 0
    for start, count in zip(accepted, word_counts):
        done += count
        if count:
            end = word_cycles[done - 1]
            busy_cycles = recorder.values["idle"][start + 1:end + 1]
            assert not any(busy_cycles), f"idle high during the transfer accepted at {start}"


def run_read(cmds, *, cfg=CFG, latency=4, p_cmd=1.0, p_arready=1.0, p_rvalid=1.0,
             p_ready=1.0, error_ranges=(), max_outstanding=32, seed=0):
    """Read `cmds`, check everything; return (cycles, slave)."""
    bus_bytes = cfg.bus_bytes
    rng = random.Random(seed)
    dut = ReadEngine(cfg, max_outstanding=max_outstanding)
    mem = Memory(bus_bytes, error_ranges=error_ranges)
    source = StreamSource(dut.cmd, cmds, p_valid=p_cmd, rng=rng)
    sink = StreamSink(dut.data, p_ready=p_ready, rng=rng)
    slave = AXIReadSlave(dut.axi, mem, latency=latency, p_arready=p_arready,
                         p_rvalid=p_rvalid, rng=rng)
    recorder = Recorder(idle=dut.idle, error=dut.error, beats=dut.beats)
    per_cmd = [transfer_words(cmd, bus_bytes) for cmd in cmds]
    addrs = [addr for words in per_cmd for addr in words]
    bursts = [burst for cmd in cmds for burst in plan_bursts(cmd, bus_bytes)]

    def done(ctx):
        return source.done and len(sink.items) == len(addrs) and ctx.get(dut.idle)

    cycles = run(dut, [source, sink, slave, recorder], done,
                 max_cycles=_max_cycles(len(addrs), len(bursts), latency,
                                        (p_cmd, p_arready, p_rvalid, p_ready)))
    assert sink.items == [mem.read(addr) for addr in addrs]
    assert slave.bursts == bursts
    assert slave.max_outstanding <= max_outstanding
    assert recorder.count("beats") == slave.beats == len(addrs)
    assert recorder.count("error") == sum(mem.is_error(addr) for addr in addrs)
    _check_idle(recorder, source.accepted, [len(words) for words in per_cmd], sink.cycles)
    return cycles, slave


def run_write(cmds, *, cfg=CFG, b_latency=2, p_cmd=1.0, p_data=1.0, p_awready=1.0,
              p_wready=1.0, p_bvalid=1.0, error_ranges=(), max_outstanding=32, seed=0):
    """Write random words with `cmds`, check everything; return (cycles, slave)."""
    bus_bytes = cfg.bus_bytes
    rng = random.Random(seed)
    dut = WriteEngine(cfg, max_outstanding=max_outstanding)
    mem = Memory(bus_bytes, error_ranges=error_ranges)
    per_cmd = [transfer_words(cmd, bus_bytes) for cmd in cmds]
    addrs = [addr for words in per_cmd for addr in words]
    bursts = [burst for cmd in cmds for burst in plan_bursts(cmd, bus_bytes)]
    words = [rng.getrandbits(8 * bus_bytes) for _ in addrs]
    cmd_source = StreamSource(dut.cmd, cmds, p_valid=p_cmd, rng=rng)
    data_source = StreamSource(dut.data, words, p_valid=p_data, rng=rng)
    slave = AXIWriteSlave(dut.axi, mem, b_latency=b_latency, p_awready=p_awready,
                          p_wready=p_wready, p_bvalid=p_bvalid, rng=rng)
    recorder = Recorder(idle=dut.idle, error=dut.error, beats=dut.beats)

    def done(ctx):
        return cmd_source.done and data_source.done and ctx.get(dut.idle)

    cycles = run(dut, [cmd_source, data_source, slave, recorder], done,
                 max_cycles=_max_cycles(len(addrs), len(bursts), b_latency,
                                        (p_cmd, p_data, p_awready, p_wready, p_bvalid)))
    assert mem.write_log == list(zip(addrs, words))
    assert slave.bursts == bursts
    assert slave.max_outstanding <= max_outstanding
    assert recorder.count("beats") == slave.beats == len(addrs)
    bad_bursts = sum(any(mem.is_error(start + beat * bus_bytes) for beat in range(beats))
                     for start, beats in bursts)
    assert recorder.count("error") == bad_bursts
    _check_idle(recorder, cmd_source.accepted, [len(words) for words in per_cmd],
                data_source.accepted)
    return cycles, slave


ENGINES = [pytest.param(run_read, id="read"), pytest.param(run_write, id="write")]

SHAPES = {
    "contiguous_rows": [transfer(0x1000, 1, 20, n_rows=3, row_pitch=0x200)],
    "strided_elements": [transfer(0x2000, 1, 7, elem_pitch=3 * B, n_rows=2, row_pitch=0x100)],
    "elem_words_3_strided": [transfer(0x3000, 3, 4, elem_pitch=5 * B, n_rows=2, row_pitch=0x80)],
    "elem_words_3_contiguous": [transfer(0x3000, 3, 5, n_rows=2, row_pitch=0x400)],
    "elem_words_8_strided": [transfer(0x4008, 8, 3, elem_pitch=10 * B, n_rows=2, row_pitch=0x300)],
    "elem_words_8_contiguous": [transfer(0x4008, 8, 6)],
    "contiguous_long_elements": [transfer(0x6000, 21, 13, n_rows=2, row_pitch=0x1000)],
    "row_across_4k": [transfer(0x1000 - 3 * B, 1, 10, n_rows=2, row_pitch=0x1000)],
    "elements_across_4k": [transfer(0x2000 - 5 * B, 3, 4, elem_pitch=3 * B + 0x8, n_rows=1)],
    "row_ending_at_4k": [transfer(0x2000 - 16 * B, 1, 16, n_rows=2, row_pitch=0x1000)],
    "elements_ending_at_4k": [transfer(0x2000 - 6 * B, 3, 2, elem_pitch=0x1000 - 3 * B)],
    "row_of_256_beats": [transfer(0x3000, 4, 64)],
    "row_over_256_beats": [transfer(0x8000 - 0x40, 2, 300, n_rows=1)],
    "element_over_256_beats": [transfer(0xA000 + 0x10, 300, 2, elem_pitch=0x1000)],
    "negative_row_pitch": [transfer(0x9000, 2, 2, n_rows=3, row_pitch=(-0x100) & 0xFFFFFFFF)],
    "sequence": [transfer(0x100, 1), transfer(0x200, 2, 3, elem_pitch=0x40),
                 transfer(0xFF8, 4, 2), transfer(0x500, 1, 3, n_rows=2, row_pitch=0x20)],
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes(engine, shape):
    engine(SHAPES[shape])


@pytest.mark.parametrize("seed", [1, 2])
def test_read_backpressure(seed):
    cmds = SHAPES["sequence"] + SHAPES["row_across_4k"] + SHAPES["elem_words_3_strided"]
    run_read(cmds, latency=5, p_cmd=0.5, p_arready=0.4, p_rvalid=0.6, p_ready=0.5, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_write_backpressure(seed):
    cmds = SHAPES["sequence"] + SHAPES["row_across_4k"] + SHAPES["elem_words_3_strided"]
    run_write(cmds, b_latency=4, p_cmd=0.5, p_data=0.5, p_awready=0.4, p_wready=0.6,
              p_bvalid=0.5, seed=seed)


ERROR_CMDS = [transfer(0x1000, 2, 8, elem_pitch=0x20), transfer(0x5000, 1, 4)]
ERROR_RANGES = [(0x1040, 0x1068), (0x5010, 0x5018)]


def test_read_error_response():
    run_read(ERROR_CMDS, error_ranges=ERROR_RANGES)
    run_read(ERROR_CMDS, error_ranges=ERROR_RANGES, p_rvalid=0.7, p_ready=0.5, seed=3)


def test_write_error_response():
    run_write(ERROR_CMDS, error_ranges=ERROR_RANGES)
    run_write(ERROR_CMDS, error_ranges=ERROR_RANGES, p_wready=0.7, p_bvalid=0.5, seed=3)


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_sized_commands_are_dropped(engine):
    cmds = [transfer(0x100, 0, 3), transfer(0x200, 2, 0), transfer(0x300, 1, 2, n_rows=0),
            transfer(0x400, 2, 2)]
    engine(cmds)


@pytest.mark.parametrize("limit", [1, 3])
@pytest.mark.parametrize("engine", ENGINES)
def test_max_outstanding(engine, limit):
    cmds = [transfer(0x1000, 1, 30, elem_pitch=0x10), transfer(0x2000, 2, 3)]
    if engine is run_read:
        _, slave = run_read(cmds, latency=12, max_outstanding=limit)
    else:
        _, slave = run_write(cmds, b_latency=12, max_outstanding=limit)
    assert slave.max_outstanding == limit


@pytest.mark.parametrize("width", [32, 128, 512])
@pytest.mark.parametrize("engine", ENGINES)
def test_bus_widths(engine, width):
    cfg = AccelConfig(axi_data_width=width)
    bus_bytes = cfg.bus_bytes
    cmds = [
        {"addr": 0x1000 - 3 * bus_bytes, "elem_words": 2, "n_elems": 150,
         "elem_pitch": 2 * bus_bytes, "n_rows": 1, "row_pitch": 0},
        {"addr": 0x3000 - bus_bytes, "elem_words": 2, "n_elems": 3,
         "elem_pitch": 4 * bus_bytes, "n_rows": 2, "row_pitch": 0x100},
    ]
    engine(cmds, cfg=cfg)


# Timing: one beat per cycle, and back-to-back commands without bubbles.

# The read engine's first AR is 3 cycles after the command handshake, so a
# read is done (idle again) latency + beats + 3 cycles after it. The write
# engine's first W beat is 5 cycles after the handshake: beats + b_latency + 5.
READ_OVERHEAD = 3
WRITE_OVERHEAD = 5

# Back-to-back commands: 16 transfers of one or two words (one or two bursts).
BACK_TO_BACK = {
    "one_word": [transfer(0x1000 + 0x100 * i, 1, 1) for i in range(16)],
    "two_words": [transfer(0x1000 + 0x100 * i, 1, 2, elem_pitch=0x10 * (i % 2 + 1))
                  for i in range(16)],
}


def test_read_throughput_contiguous():
    cycles, _ = run_read([transfer(0x1F00, 1, 600)], latency=8)
    assert cycles == 8 + 600 + READ_OVERHEAD


def test_read_throughput_one_beat_bursts():
    cycles, _ = run_read([transfer(0x0, 1, 200, elem_pitch=0x18)], latency=8)
    assert cycles == 8 + 200 + READ_OVERHEAD


@pytest.mark.parametrize("shape", BACK_TO_BACK)
def test_read_back_to_back(shape):
    cmds = BACK_TO_BACK[shape]
    beats = sum(len(transfer_words(cmd, B)) for cmd in cmds)
    cycles, _ = run_read(cmds, latency=10)
    assert cycles == 10 + beats + READ_OVERHEAD      # not 16 * (10 + 2 + ...)


def test_write_throughput():
    cycles, _ = run_write([transfer(0x1F00, 1, 600)], b_latency=2)
    assert cycles == 600 + 2 + WRITE_OVERHEAD
    cycles, _ = run_write([transfer(0x0, 1, 200, elem_pitch=0x18)], b_latency=2)
    assert cycles == 200 + 2 + WRITE_OVERHEAD


@pytest.mark.parametrize("shape", BACK_TO_BACK)
def test_write_back_to_back(shape):
    cmds = BACK_TO_BACK[shape]
    beats = sum(len(transfer_words(cmd, B)) for cmd in cmds)
    cycles, _ = run_write(cmds, b_latency=6)
    assert cycles == beats + 6 + WRITE_OVERHEAD


# Random shapes.

@st.composite
def transfers(draw):
    elem_words = draw(st.integers(1, 4))
    n_elems = draw(st.integers(1, 5))
    contiguous = draw(st.booleans())
    elem_pitch = elem_words * B if contiguous else (elem_words + draw(st.integers(1, 3))) * B
    n_rows = draw(st.integers(1, 3))
    row_pitch = draw(st.integers(0, 64)) * B
    page = draw(st.integers(1, 15)) * 0x1000
    addr = page + draw(st.integers(-12, 12)) * B
    return transfer(addr, elem_words, n_elems, elem_pitch, n_rows, row_pitch)


RANDOM = settings(max_examples=12, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])


@RANDOM
@given(st.lists(transfers(), min_size=1, max_size=3), st.integers(0, 3), st.integers(1, 8))
def test_read_random(cmds, stalls, latency):
    p = [1.0, 0.8, 0.6, 0.4][stalls]
    run_read(cmds, latency=latency, p_cmd=p, p_arready=p, p_rvalid=p, p_ready=p, seed=stalls)


@RANDOM
@given(st.lists(transfers(), min_size=1, max_size=3), st.integers(0, 3), st.integers(1, 8))
def test_write_random(cmds, stalls, b_latency):
    p = [1.0, 0.8, 0.6, 0.4][stalls]
    run_write(cmds, b_latency=b_latency, p_cmd=p, p_data=p, p_awready=p, p_wready=p,
              p_bvalid=p, seed=stalls)


# Construction.

SMALL = AccelConfig(rows=2, cols=2, axi_data_width=32, axi_addr_width=20, kernel_max=3,
                    in_depth=64, acc_depth=32)


def test_transfer_layout_fields():
    # A 2x2's longest element is its parameters (3 x 2 int32), its longest
    # row and most rows an input window's (in_depth).
    assert transfer_limits(SMALL) == {"elem_words": 6, "n_elems": 64, "n_rows": 64}
    assert {name: field.width for name, field in TransferLayout(SMALL)} == {
        "addr": 20, "elem_words": 3, "n_elems": 7, "elem_pitch": 20,
        "n_rows": 7, "row_pitch": 20}


@pytest.mark.parametrize("engine", ENGINES)
def test_largest_transfer_of_a_small_configuration(engine):
    # Every count at its limit: contiguous rows of 64 x 6 = 384 words (the
    # planner's widest element) across 4 KiB boundaries, and strided ones.
    limits = transfer_limits(SMALL)
    words, elems, rows = limits["elem_words"], limits["n_elems"], limits["n_rows"]
    bus_bytes = SMALL.bus_bytes
    cmds = [
        {"addr": 0x1000 - 8 * bus_bytes, "elem_words": words, "n_elems": elems,
         "elem_pitch": words * bus_bytes, "n_rows": 2, "row_pitch": 0x2000},
        {"addr": 0x8000, "elem_words": 1, "n_elems": 2, "elem_pitch": 3 * bus_bytes,
         "n_rows": rows, "row_pitch": 0x40},
    ]
    engine(cmds, cfg=SMALL)


@pytest.mark.parametrize("engine", [ReadEngine, WriteEngine])
def test_constructor_validation(engine):
    with pytest.raises(TypeError, match=r"cfg must be an AccelConfig, not 64"):
        engine(64)
    with pytest.raises(ValueError,
                       match=r"max_outstanding must be an integer in 1\.\.256, not 0"):
        engine(CFG, max_outstanding=0)
    with pytest.raises(ValueError,
                       match=r"max_outstanding must be an integer in 1\.\.256, not True"):
        engine(CFG, max_outstanding=True)
