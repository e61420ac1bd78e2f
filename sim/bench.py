"""Simulation speed of the cocotb harness against the pure-Verilog testbench.

`compare` runs one job (memory image, register writes, start, wait for irq, dump)
through `CosimTransport` and through `run_pure_tb` on the same Verilog and reports
simulated cycles per wall-clock second of the wait for irq in both, their ratio, and
whether cycles and dumped memory agree. `record_first_job` captures such a job from
any driver code (run against any Transport, e.g. the NumPy model).

    python -m sim.bench --words N                 # the stand-in's copy job
    python -m sim.bench --conv CIN,COUT,K,H,W build/gen/conv_accel.v
                                                  # one Conv2d pass of the real driver
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from hw.config import AccelConfig, REG, CTRL_START
from sw_driver.transport import Transport

from .build import REPO, TbOptions
from .cosim import CosimTransport
from .pure_tb import run_pure_tb

__all__ = ["compare", "stub_copy_job", "RecordingTransport", "record_first_job"]

STUB = REPO / "tests" / "data" / "stub_accel.v"


def run_cosim(cfg, verilog_path, *, image=(), regs=(), dump=None, max_cycles=10**9,
              options=None, transport=None):
    """The job through CosimTransport: (cycles, wait seconds, dumped bytes)."""
    def job(t):
        for addr, data in image:
            t.write_mem(addr, data)
        for off, val in regs:
            t.write_reg(off, val)
        t.write_reg(REG["CTRL"], CTRL_START)
        before, cpu_before = t.stats.wait_seconds, t.stats.wait_cpu_seconds
        cycles = t.wait_done(max_cycles)
        seconds = t.stats.wait_seconds - before
        cpu = t.stats.wait_cpu_seconds - cpu_before
        data = t.read_mem(*dump) if dump is not None else b""
        return cycles, seconds, data, cpu

    if transport is not None:
        return job(transport)
    with CosimTransport(cfg, verilog_path, options=options) as t:
        return job(t)


def compare(cfg, verilog_path, *, image=(), regs=(), dump=None, max_cycles=10**9,
            options: TbOptions | None = None, repeat: int = 1) -> dict:
    """Run the job `repeat` times in each harness (best of); a dict of results."""
    options = options or TbOptions()
    best_cosim = best_pure = None
    with CosimTransport(cfg, verilog_path, options=options) as t:
        for _ in range(repeat):
            t.reset()
            run = run_cosim(cfg, verilog_path, image=image, regs=regs, dump=dump,
                            max_cycles=max_cycles, transport=t)
            if best_cosim is None or run[1] < best_cosim[1]:
                best_cosim = run
    pure_cpu = None
    for _ in range(repeat):
        stats = {}
        run = run_pure_tb(cfg, verilog_path, image=image, regs=regs, dump=dump,
                          max_cycles=max_cycles, options=options, stats=stats)
        if best_pure is None or run.seconds < best_pure.seconds:
            best_pure = run
        pure_cpu = min(stats["cpu_seconds"], pure_cpu or stats["cpu_seconds"])
    cosim_cpu = best_cosim[3]
    cosim_cps = best_cosim[0] / best_cosim[1] if best_cosim[1] else 0.0
    pure_cps = best_pure.cycles / best_pure.seconds if best_pure.seconds else 0.0
    return {
        "cycles": best_cosim[0],
        "cycles_pure": best_pure.cycles,
        "cycles_match": best_cosim[0] == best_pure.cycles,
        "data_match": best_cosim[2] == best_pure.data,
        "cosim_seconds": best_cosim[1],
        "pure_seconds": best_pure.seconds,
        "cosim_cycles_per_second": cosim_cps,
        "pure_cycles_per_second": pure_cps,
        "ratio": cosim_cps / pure_cps if pure_cps else 0.0,
        "cosim_cpu_seconds": cosim_cpu,
        "pure_cpu_seconds": pure_cpu,
        "cpu_ratio": pure_cpu / cosim_cpu if cosim_cpu else 0.0,
    }


def stub_copy_job(words: int, *, src: int = 0x10_0000, dst: int = 0x200_0000, seed: int = 1):
    """image, regs and dump of a copy job of the stand-in accelerator (64-bit bus)."""
    import numpy as np
    data = np.random.default_rng(seed).integers(0, 256, words * 8, dtype=np.uint8).tobytes()
    regs = [(0x080, src), (0x084, dst), (0x088, words), (REG["IRQ_ENABLE"], 1)]
    return {"image": [(src, data)], "regs": regs, "dump": (dst, len(data))}, data


class RecordingTransport(Transport):
    """Forwards to `inner` and records the first job: the memory writes and register
    writes before the first CTRL start, and the range read from memory after it."""

    def __init__(self, inner):
        self.inner = inner
        self.image, self.regs, self.reads = [], [], []
        self.started = False

    def write_reg(self, offset, value):
        if not self.started:
            if offset == REG["CTRL"] and value & CTRL_START:
                self.started = True
            else:
                self.regs.append((offset, value))
        self.inner.write_reg(offset, value)

    def read_reg(self, offset):
        return self.inner.read_reg(offset)

    def write_mem(self, addr, data):
        if not self.started:
            self.image.append((addr, bytes(data)))
        self.inner.write_mem(addr, data)

    def read_mem(self, addr, length):
        if self.started and length:
            self.reads.append((addr, length))
        return self.inner.read_mem(addr, length)

    def wait_done(self, max_cycles):
        return self.inner.wait_done(max_cycles)

    @property
    def mem_size(self):
        return self.inner.mem_size

    def job(self):
        dump = None
        if self.reads:
            lo = min(a for a, _ in self.reads)
            hi = max(a + n for a, n in self.reads)
            dump = (lo, hi - lo)
        return {"image": self.image, "regs": self.regs, "dump": dump}


def record_first_job(transport, fn):
    """Run fn(recording transport) and return the first job as compare() arguments."""
    recorder = RecordingTransport(transport)
    fn(recorder)
    if not recorder.started:
        raise ValueError("no job was started")
    return recorder.job()


def conv_job(cfg, cin, cout, k, h, w, seed=1):
    """The first descriptor of a Conv2d (int32 outputs) of the real driver, recorded
    on the NumPy model."""
    import numpy as np
    from sw_driver.driver import Accelerator
    from sw_driver.model import ModelTransport
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, cin, h, w), dtype=np.int8)
    weight = rng.integers(-128, 128, (cout, cin, k, k), dtype=np.int8)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    return record_first_job(ModelTransport(cfg), lambda t: Accelerator(t).conv2d(
        x, weight, bias, padding=k // 2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("verilog", nargs="?", default=str(STUB))
    parser.add_argument("--words", type=int, default=1 << 20)
    parser.add_argument("--conv", help="CIN,COUT,K,H,W of a Conv2d for the real driver")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = AccelConfig()
    if args.conv:
        job = conv_job(cfg, *map(int, args.conv.split(",")))
    else:
        job, _ = stub_copy_job(args.words)
    start = time.monotonic()
    result = compare(cfg, args.verilog, repeat=args.repeat, **job)
    result["total_seconds"] = time.monotonic() - start
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
