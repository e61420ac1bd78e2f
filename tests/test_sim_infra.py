"""Simulation infrastructure (sim/) tested end to end with a stand-in accelerator.

tests/data/stub_accel.v has the ports of conv_accel and a DMA copy engine:
SRC/DST/NWORDS at 0x080/0x084/0x088, CTRL/STATUS/IRQ_ENABLE as in hw.config.REG,
error code 16/17 for a read/write that got SLVERR.

Builds go to the normal cache ($ACCEL_SIM_CACHE or build/verilator), so only the
first run pays for them.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hw.config import AccelConfig, CTRL_CLEAR, CTRL_START, REG, STATUS_BUSY, STATUS_DONE, \
    STATUS_ERROR
from sim import hexmem
from sim.build import TbOptions, build_cosim, build_pure_tb
from sim.cosim import CosimTransport
from sim.pure_tb import run_pure_tb
from sw_driver.transport import DoneTimeout, Transport, TransportError

STUB = Path(__file__).resolve().parent / "data" / "stub_accel.v"
CFG = AccelConfig()
B = CFG.bus_bytes
SRC, DST, NWORDS, SCRATCH, WSTRB = 0x080, 0x084, 0x088, 0x08C, 0x0A0


def copy_regs(src, dst, words):
    return [(SRC, src), (DST, dst), (NWORDS, words), (REG["IRQ_ENABLE"], 1)]


def random_bytes(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def sim():
    with CosimTransport(CFG, STUB) as t:
        yield t


def run_copy(t, src, dst, words, max_cycles=1_000_000):
    t.write_reg(REG["CTRL"], CTRL_CLEAR)
    for off, val in copy_regs(src, dst, words):
        t.write_reg(off, val)
    t.write_reg(REG["CTRL"], CTRL_START)
    return t.wait_done(max_cycles)


# ------------------------------------------------------------------ hex files
def test_hexmem_roundtrip():
    data = random_bytes(64 * B, 1)
    text = hexmem.encode_words(data, B)
    assert text.count(b"\n") == 64
    first_line = text.split(b"\n")[0].decode()
    assert int(first_line, 16) == int.from_bytes(data[:B], "little")
    assert hexmem.decode_words(text, B, 64) == data


def test_hexmem_coalesce():
    runs = hexmem.coalesce([(3, b"\x01\x02"), (9, b"\xff"), (100, b"\xaa" * 8),
                            (4, b"\x07")], B)
    assert runs[0] == (0, bytes([0, 0, 0, 1, 7, 0, 0, 0, 0, 0xff] + [0] * 6))
    assert runs[1] == (12, b"\x00" * 4 + b"\xaa" * 4 + b"\xaa" * 4 + b"\x00" * 4)


# --------------------------------------------------------------- transport
def test_is_a_transport(sim):
    assert isinstance(sim, Transport)
    assert sim.mem_size == 64 << 20


def test_register_roundtrip(sim):
    assert sim.read_reg(REG["MAGIC"]) == 0x434E5641
    values = [0, 0xFFFFFFFF, 0x12345678, 0x80000001, 0xDEADBEEF]
    for i, value in enumerate(values):
        sim.write_reg(SCRATCH + 4 * i, value)
    assert [sim.read_reg(SCRATCH + 4 * i) for i in range(len(values))] == values
    sim.write_reg(REG["IRQ_ENABLE"], 1)
    assert sim.read_reg(REG["IRQ_ENABLE"]) == 1
    with pytest.raises(ValueError):
        sim.write_reg(0x2, 1)
    with pytest.raises(ValueError):
        sim.write_reg(0x80, 1 << 32)


def test_memory_backdoor_roundtrip(sim):
    background = random_bytes(8192, 2)
    sim.write_mem(0x4000, background)
    assert sim.read_mem(0x4000, 8192) == background
    expected = bytearray(background)
    for addr, size, seed in ((0x4003, 3001, 3), (0x4805, 5, 4), (0x4FFF, 1, 5),
                             (0x5001, 6, 6), (0x5400, 2048, 7), (0x4006, 1, 8)):
        chunk = random_bytes(size, seed)
        sim.write_mem(addr, chunk)
        expected[addr - 0x4000:addr - 0x4000 + size] = chunk
        assert sim.read_mem(addr, size) == chunk
    assert sim.read_mem(0x4000, 8192) == bytes(expected)
    assert sim.read_mem(0x4001, 3) == bytes(expected[1:4])
    assert sim.read_mem(0x4000, 0) == b""
    end = sim.mem_size
    sim.write_mem(end - 5, b"\x01\x02\x03\x04\x05")
    assert sim.read_mem(end - 7, 7)[2:] == b"\x01\x02\x03\x04\x05"
    with pytest.raises(ValueError):
        sim.read_mem(end - 4, 5)
    with pytest.raises(ValueError):
        sim.write_mem(-1, b"x")


def test_copy_job_end_to_end(sim):
    words = 4096
    data = random_bytes(words * B, 10)
    sim.write_mem(0x10_0000, data)
    sim.write_mem(0x20_0000 - 8, b"\x55" * 8)                # guard words around dst
    sim.write_mem(0x20_0000 + words * B, b"\x66" * 8)
    assert not sim.read_reg(REG["STATUS"]) & STATUS_BUSY
    cycles = run_copy(sim, 0x10_0000, 0x20_0000, words)
    status = sim.read_reg(REG["STATUS"])
    assert status & STATUS_DONE and not status & (STATUS_BUSY | STATUS_ERROR)
    assert sim.read_mem(0x20_0000, words * B) == data
    assert sim.read_mem(0x20_0000 - 8, 8) == b"\x55" * 8
    assert sim.read_mem(0x20_0000 + words * B, 8) == b"\x66" * 8
    # Several reads outstanding (bursts of 16, latency 8) keep about a word per cycle.
    assert words <= cycles < 1.1 * words + 100
    assert abs(sim.read_reg(0x100) - cycles) <= 3              # the stub's busy counter
    # irq is still high: wait_done returns at once; CTRL.clear drops it.
    assert sim.wait_done(10) == 0
    sim.write_reg(REG["CTRL"], CTRL_CLEAR)
    assert sim.read_reg(REG["STATUS"]) & STATUS_DONE == 0
    assert sim.stats.wait_cycles >= cycles and sim.stats.wait_seconds > 0


def test_write_strobes(sim):
    words = 64
    old, new = random_bytes(words * B, 11), random_bytes(words * B, 12)
    sim.write_mem(0x50_0000, new)
    sim.write_mem(0x60_0000, old)
    sim.write_reg(WSTRB, 0b1010_0110)
    try:
        run_copy(sim, 0x50_0000, 0x60_0000, words)
    finally:
        sim.write_reg(WSTRB, 0)
    got = np.frombuffer(sim.read_mem(0x60_0000, words * B), np.uint8).reshape(words, B)
    keep = np.array([(0b1010_0110 >> i) & 1 for i in range(B)], bool)
    want = np.where(keep, np.frombuffer(new, np.uint8).reshape(words, B),
                    np.frombuffer(old, np.uint8).reshape(words, B))
    assert np.array_equal(got, want)


def test_slverr_beyond_memory(sim):
    outside = sim.mem_size
    run_copy(sim, outside - 64, 0x30_0000, 16)                  # half the reads outside
    assert sim.read_reg(REG["STATUS"]) >> 8 & 0xFF == 16
    run_copy(sim, 0x30_0000, outside - 8, 4)                    # writes outside
    assert sim.read_reg(REG["STATUS"]) >> 8 & 0xFF == 17
    sim.write_reg(REG["CTRL"], CTRL_CLEAR)
    assert sim.read_reg(REG["STATUS"]) == 0


def test_wait_done_timeout(sim):
    sim.write_reg(REG["CTRL"], CTRL_CLEAR)
    start = time.monotonic()
    with pytest.raises(DoneTimeout):
        sim.wait_done(20_000)
    assert time.monotonic() - start < 5
    # The simulation is still usable and in step.
    assert sim.read_reg(REG["MAGIC"]) == 0x434E5641
    assert run_copy(sim, 0x10_0000, 0x38_0000, 8) > 0


def test_reset_keeps_memory(sim):
    sim.write_mem(0x70_0000, b"keep me!")
    sim.write_reg(SCRATCH, 0x1234)
    sim.reset()
    assert sim.read_reg(SCRATCH) == 0
    assert sim.read_mem(0x70_0000, 8) == b"keep me!"


# ------------------------------------------------------------------- failures
def test_simulator_death_is_reported():
    t = CosimTransport(CFG, STUB)
    try:
        t._proc.kill()
        start = time.monotonic()
        with pytest.raises(TransportError, match="simulator"):
            t.read_reg(0)
        assert time.monotonic() - start < 10
    finally:
        t.close()


def test_startup_failure_is_reported(monkeypatch, tmp_path):
    import sim.cosim as cosim

    def broken(build, **kwargs):
        return ["sh", "-c", "echo simulated startup failure; exit 3"], dict(os.environ), tmp_path
    monkeypatch.setattr(cosim, "cosim_command", broken)
    with pytest.raises(TransportError, match="simulated startup failure"):
        CosimTransport(CFG, STUB)


def test_connect_timeout(monkeypatch, tmp_path):
    import sim.cosim as cosim
    monkeypatch.setattr(cosim, "cosim_command",
                        lambda build, **kw: (["sleep", "60"], dict(os.environ), tmp_path))
    start = time.monotonic()
    with pytest.raises(TransportError, match="did not connect"):
        CosimTransport(CFG, STUB, connect_timeout=1.0)
    assert time.monotonic() - start < 10


def test_simulator_ends_when_host_dies(tmp_path):
    """A host killed during wait_done must not leave the simulator running."""
    script = tmp_path / "host.py"
    script.write_text(
        "import sys\n"
        "from hw.config import AccelConfig\n"
        "from sim.cosim import CosimTransport\n"
        f"t = CosimTransport(AccelConfig(), {str(STUB)!r})\n"
        "print(t._proc.pid, flush=True)\n"
        "t.wait_done(10**12)\n")
    env = dict(os.environ, ACCEL_SIM_WATCH_CYCLES="20000",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        sim_pid = int(host.stdout.readline())
        time.sleep(0.5)
        host.kill()
        host.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(sim_pid):
            time.sleep(0.1)
        assert not _alive(sim_pid)
    finally:
        if host.poll() is None:
            host.kill()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- build cache
def test_build_cache_not_rebuilt():
    for build in (build_cosim, build_pure_tb):
        first = build(STUB, CFG)
        marker_mtime = first.marker.stat().st_mtime_ns
        binary_mtime = first.binary.stat().st_mtime_ns
        second = build(STUB, CFG)
        assert not second.built
        assert second.directory == first.directory
        assert second.marker.stat().st_mtime_ns == marker_mtime
        assert second.binary.stat().st_mtime_ns == binary_mtime


def test_build_key_follows_inputs(tmp_path):
    base = build_cosim(STUB, CFG, plan_only=True).directory
    assert build_cosim(STUB, CFG).directory == base
    edited = tmp_path / STUB.name
    edited.write_text(STUB.read_text() + "\n// edited\n")
    assert build_cosim(edited, CFG, plan_only=True).directory != base
    same = tmp_path / "copy" / STUB.name
    same.parent.mkdir()
    same.write_bytes(STUB.read_bytes())
    assert build_cosim(same, CFG, plan_only=True).directory == base
    assert build_cosim(STUB, CFG, waves=True, plan_only=True).directory != base
    assert build_cosim(STUB, CFG, options=TbOptions(read_latency=4),
                       plan_only=True).directory != base
    assert build_pure_tb(STUB, CFG, plan_only=True).directory != base


# -------------------------------------------------------------- pure Verilog
def test_pure_tb_matches_cosim(sim):
    words = 3000
    data = random_bytes(words * B, 20)
    src, dst = 0x1_0008, 0x8_0000
    sim.reset()
    sim.write_mem(src, data)
    cosim_cycles = run_copy(sim, src, dst, words)
    cosim_data = sim.read_mem(dst, words * B)
    assert cosim_data == data
    pure = run_pure_tb(CFG, STUB, image=[(src, data)], regs=copy_regs(src, dst, words),
                       dump=(dst, words * B))
    assert pure.cycles == cosim_cycles
    assert pure.data == cosim_data
    assert pure.seconds > 0


def test_pure_tb_timeout():
    with pytest.raises(DoneTimeout):
        run_pure_tb(CFG, STUB, regs=[(REG["IRQ_ENABLE"], 0), (NWORDS, 0)], max_cycles=1000)


# ------------------------------------------------------------------ waveforms
def test_waves_fst(tmp_path):
    path = tmp_path / "run.fst"
    with CosimTransport(CFG, STUB, waves=True, waves_path=path) as t:
        assert t.build.waves and t.build.directory != build_cosim(STUB, CFG).directory
        assert run_copy(t, 0x1000, 0x2000, 16) > 0
    assert path.stat().st_size > 1000
