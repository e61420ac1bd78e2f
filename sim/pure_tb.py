"""Pure-Verilog reference testbench: `tb_top` compiled with +define+PURE_TB.

`run_pure_tb` loads a memory image, performs register writes over AXI4-Lite in
Verilog, starts the accelerator (CTRL = 1), waits for irq and dumps a memory range,
with no VPI and no Python in the simulator. The cycle count is measured exactly like
`CosimTransport.wait_done` (from the end of the CTRL write to irq), so the same
Verilog gives the same count in both. The wall time returned is that of the wait for
irq only (taken from the simulator's flushed PURE_TB_START / PURE_TB_DONE lines), the
number to compare with `CosimTransport.stats.wait_seconds`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from hw.config import AccelConfig
from sw_driver.transport import DoneTimeout, TransportError

from . import hexmem
from .build import TbOptions, build_pure_tb
from .cosim import process_cpu_seconds

__all__ = ["run_pure_tb", "PureTBResult"]


class PureTBResult(NamedTuple):
    cycles: int        # cycles from the end of the CTRL=1 write to irq
    seconds: float     # wall-clock seconds of that wait
    data: bytes        # the dumped memory range (b"" without a dump)


def run_pure_tb(cfg: AccelConfig, verilog_path, *, image=(), regs=(), dump=None,
                max_cycles: int = 1_000_000_000, options: TbOptions | None = None,
                timeout: float | None = None, workdir=None, log=None,
                stats: dict | None = None) -> PureTBResult:
    """Run the pure-Verilog testbench once.

    image:      [(byte address, bytes), ...] memory contents at start (the rest is 0)
    regs:       [(register offset, value), ...] written in order before CTRL = 1
    dump:       (byte address, length) to read back after irq, or None
    max_cycles: DoneTimeout when irq does not come within this many cycles
    timeout:    wall-clock seconds before the simulator is killed (TransportError)
    log:        optional list that receives the simulator's output lines
    stats:      optional dict that receives "cpu_seconds" (simulator CPU time of the
                wait) and "process_seconds" (wall time of the whole run)
    """
    options = options or TbOptions()
    build = build_pure_tb(verilog_path, cfg, options=options)
    b = cfg.bus_bytes
    mem_size = options.mem_size(cfg)
    for addr, data in image:
        if addr < 0 or addr + len(data) > mem_size:
            raise ValueError(f"image segment 0x{addr:x}+{len(data)} outside the memory")
    regs = [(int(off), int(val)) for off, val in regs]
    for off, val in regs:
        if not (0 <= off < 0x1000 and off % 4 == 0 and 0 <= val < 1 << 32):
            raise ValueError(f"bad register write ({off:#x}, {val:#x})")
    if len(regs) > 4096:
        raise ValueError("at most 4096 register writes")
    if dump is not None:
        addr, length = dump
        if length <= 0 or addr < 0 or addr + length > mem_size:
            raise ValueError(f"dump range 0x{addr:x}+{length} outside the memory")

    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="accel_puretb_") if own else workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        mem_in, regs_file, mem_out = work / "image.hex", work / "regs.hex", work / "dump.hex"
        hexmem.write_image(mem_in, hexmem.coalesce(list(image), b), b)
        regs_file.write_text("".join(f"{off:08x}{val:08x}\n" for off, val in regs))
        argv = [str(build.binary), f"+MEM_IN={mem_in}", f"+REGS={regs_file}",
                f"+NREGS={len(regs)}", f"+MAX_CYCLES={int(max_cycles)}", f"+MEM_OUT={mem_out}"]
        if dump is not None:
            first, last = dump[0] // b, (dump[0] + dump[1] - 1) // b
            argv += [f"+DUMP_FIRST={first}", f"+DUMP_LAST={last}"]
        started = time.perf_counter()
        lines, stamps = _run(argv, work, timeout)
        if log is not None:
            log.extend(lines)
        if "PURE_TB_END" not in stamps:
            raise TransportError("pure-Verilog testbench did not finish:\n" + "\n".join(lines[-40:]))
        if "PURE_TB_TIMEOUT" in stamps:
            raise DoneTimeout(f"irq not raised within {max_cycles} cycles (pure-Verilog TB)")
        t_start, _, cpu_start = stamps["PURE_TB_START"]
        t_done, cycles, cpu_done = stamps["PURE_TB_DONE"]
        if stats is not None:
            stats["cpu_seconds"] = cpu_done - cpu_start
            stats["process_seconds"] = time.perf_counter() - started
        data = b""
        if dump is not None:
            words = hexmem.decode_words(mem_out.read_bytes(), b, last - first + 1)
            data = words[dump[0] - first * b:dump[0] - first * b + dump[1]]
        return PureTBResult(cycles, t_done - t_start, data)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _run(argv, cwd, timeout):
    """Run the binary; its output lines and {marker: (arrival time, number)}."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
    lines, stamps = [], {}
    try:
        for raw in proc.stdout:
            now = time.perf_counter()
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line.startswith("PURE_TB_"):
                word, _, rest = line.partition(" ")
                number = int(rest) if rest.strip().isdigit() else None
                stamps.setdefault(word, (now, number, process_cpu_seconds(proc.pid)))
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode:
        raise TransportError(f"pure-Verilog testbench exited with {proc.returncode}:\n"
                             + "\n".join(lines[-40:]))
    return lines, stamps

