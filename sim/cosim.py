"""RTL cosimulation backend of the driver: `CosimTransport`.

    with CosimTransport(AccelConfig(), "build/gen/conv_accel.v") as t:
        t.write_mem(0x1000, data)
        t.write_reg(REG["CTRL"], CTRL_START)
        cycles = t.wait_done(1_000_000)
        print(t.stats.cycles_per_second)

It builds the Verilator model of `tb_top` around the given Verilog (cached, see
`sim.build`), starts the simulator with the command and environment of cocotb's
runner (`sim.build.cosim_command`), and forwards each call over a Unix socket to the
request server `sim.server` running inside it. Memory contents go through hex files
and the memory model's backdoor, not through the socket.

Failures never hang: a simulator that exits, does not connect within
`connect_timeout` seconds or does not answer a request within `request_timeout`
seconds (wait_done: `wait_timeout`, None = unlimited, bounded anyway by its
max_cycles) is killed and reported as `TransportError` with the end of its log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Client, Listener
from pathlib import Path
import subprocess

from hw.config import AccelConfig
from sw_driver.transport import DoneTimeout, Transport, TransportError

from . import hexmem
from .build import REPO, TbOptions, build_cosim, cosim_command, waves_requested

__all__ = ["CosimTransport", "CosimStats"]

LOG_TAIL_LINES = 40


@dataclass
class CosimStats:
    """Simulated cycles and host wall-clock seconds spent inside wait_done."""

    wait_calls: int = 0
    wait_cycles: int = 0
    wait_seconds: float = 0.0
    wait_cpu_seconds: float = 0.0   # CPU time of the simulator process in those waits

    @property
    def cycles_per_second(self) -> float:
        return self.wait_cycles / self.wait_seconds if self.wait_seconds > 0 else 0.0


def process_cpu_seconds(pid) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; 0.0 elsewhere).

    Wall-clock speed is what counts, but on a loaded machine CPU time is the steadier
    measure for comparing harnesses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _tail(path, lines=LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no simulator log)"
    return "\n".join(text[-lines:])


def _kill(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


class CosimTransport(Transport):
    """`Transport` to the accelerator RTL simulated by Verilator through cocotb.

    cfg:             the accelerator's generator parameters (AXI widths are read here)
    verilog_path:    the Verilog file defining module `conv_accel`
    waves:           record an FST waveform (None: the ACCEL_WAVES environment variable);
                     a separate cached build. The file is `waves_path` (default
                     build/waves/cosim-<time>-<pid>.fst under the repository).
    options:         `sim.build.TbOptions` (memory size, read latency, queue depth, ...)
    workdir:         directory for the socket, hex files and the simulator log (default:
                     a new temporary directory, removed by close())
    """

    def __init__(self, cfg: AccelConfig, verilog_path, *, waves=None,
                 options: TbOptions | None = None, waves_path=None, workdir=None,
                 connect_timeout: float = 60.0, request_timeout: float = 300.0,
                 wait_timeout: float | None = None):
        self.cfg = cfg
        self.options = options or TbOptions()
        self.bus_bytes = cfg.bus_bytes
        self.request_timeout = request_timeout
        self.wait_timeout = wait_timeout
        self.stats = CosimStats()
        self._proc = None
        self._conn = None
        self._closed = False
        self._listener = None
        self.waves = waves_requested(waves)
        self.build = build_cosim(verilog_path, cfg, waves=self.waves, options=self.options)
        self._mem_size = self.options.mem_size(cfg)

        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="accel_cosim_") if workdir is None
                            else workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "sim.log"
        self._mem_in = self.workdir / "mem_in.hex"
        self._mem_out = self.workdir / "mem_out.hex"
        self.waves_path = None
        test_args = []
        if self.waves:
            suffix = "." + (self.build.trace_format or "fst")
            self.waves_path = Path(waves_path) if waves_path else (
                REPO / "build" / "waves" / f"cosim-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{suffix}")
            self.waves_path.parent.mkdir(parents=True, exist_ok=True)
            test_args = ["--trace", "--trace-file", str(self.waves_path.resolve())]

        socket_path = self.workdir / "sock"
        if len(str(socket_path)) > 100:     # AF_UNIX path limit
            self._sockdir = Path(tempfile.mkdtemp(prefix="accel_sock_"))
            socket_path = self._sockdir / "sock"
        else:
            self._sockdir = None
        authkey = self._authkey = os.urandom(16)
        self._listener = Listener(str(socket_path), family="AF_UNIX", authkey=authkey)
        try:
            argv, env, cwd = cosim_command(
                self.build, run_dir=self.workdir,
                plusargs=[f"+MEM_IN={self._mem_in}", f"+MEM_OUT={self._mem_out}"],
                test_args=test_args,
                extra_env={"ACCEL_SIM_SOCKET": str(socket_path),
                           "ACCEL_SIM_AUTHKEY": authkey.hex(),
                           "COCOTB_ANSI_OUTPUT": "0"})
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log,
                                              stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL,
                                              start_new_session=True)
            self._finalizer = weakref.finalize(self, _kill, self._proc)
            self._conn = self._accept(connect_timeout)
            hello = self._receive(connect_timeout, "the simulator's greeting")
            if not (isinstance(hello, tuple) and hello[0] == "hello"):
                raise TransportError(f"unexpected greeting {hello!r}")
            self.info = hello[1]
            self.period_steps = self.info["period_steps"]
        except BaseException:
            self._abort()
            raise

    # ---------------------------------------------------------------- plumbing
    def _failure(self, what) -> TransportError:
        rc = self._proc.poll() if self._proc is not None else None
        state = f"simulator exited with {rc}" if rc is not None else "simulator killed"
        return TransportError(f"{what} ({state}); last lines of {self.log_path}:\n"
                              f"{_tail(self.log_path)}")

    def _accept(self, timeout):
        result = {}

        def accept():
            try:
                result["conn"] = self._listener.accept()
            except Exception as exc:  # noqa: BLE001
                result["error"] = exc

        thread = threading.Thread(target=accept, name="cosim-accept", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while thread.is_alive():
            thread.join(0.05)
            if not thread.is_alive():
                break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = ("simulator exited before connecting" if self._proc.poll() is not None
                       else f"simulator did not connect within {timeout:.0f} s")
                _kill(self._proc)
                self._unblock_accept()
                thread.join(5)
                raise self._failure(why)
        if "conn" not in result:
            _kill(self._proc)
            raise self._failure(f"accepting the simulator's connection failed: "
                                f"{result.get('error')!r}")
        return result["conn"]

    def _unblock_accept(self):
        try:
            address = self._listener.address
            Client(address, family="AF_UNIX", authkey=self._authkey).close()
        except Exception:  # noqa: BLE001
            pass

    def _receive(self, timeout, what):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self._conn.poll(0.1):
                    return self._conn.recv()
            except (EOFError, OSError):
                _kill(self._proc)
                raise self._failure(f"lost the simulator while waiting for {what}") from None
            if self._proc.poll() is not None:
                raise self._failure(f"simulator died while waiting for {what}")
            if deadline is not None and time.monotonic() > deadline:
                _kill(self._proc)
                raise self._failure(f"no answer to {what} within {timeout:.0f} s")

    def _call(self, *request, timeout="default"):
        if self._closed or self._conn is None:
            raise TransportError("the cosimulation is closed")
        if timeout == "default":
            timeout = self.request_timeout
        try:
            self._conn.send(request)
        except (EOFError, OSError):
            _kill(self._proc)
            raise self._failure(f"lost the simulator sending {request[0]}") from None
        reply = self._receive(timeout, request[0])
        status, value = reply
        if status == "ok":
            return value
        if status == "timeout":
            raise _Timeout(value)
        raise TransportError(f"{request[0]} failed in the simulator: {value}")

    def _abort(self):
        self._closed = True
        self._release()

    def _release(self):
        """Drop the connection, the simulator process, the listener and the files."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        _kill(self._proc)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._cleanup_files()

    def _cleanup_files(self):
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)

    # ---------------------------------------------------------------- Transport
    def write_reg(self, offset: int, value: int) -> None:
        _check_reg(offset)
        if not 0 <= value < 1 << 32:
            raise ValueError(f"register value out of range: {value}")
        try:
            self._call("write_reg", offset, value)
        except _Timeout as exc:
            raise TransportError(str(exc)) from None

    def read_reg(self, offset: int) -> int:
        _check_reg(offset)
        try:
            return self._call("read_reg", offset)
        except _Timeout as exc:
            raise TransportError(str(exc)) from None

    def write_mem(self, addr: int, data: bytes) -> None:
        data = bytes(data)
        self._check_range(addr, len(data))
        if not data:
            return
        b = self.bus_bytes
        first, last = addr // b, (addr + len(data) - 1) // b
        off, end = addr - first * b, addr - first * b + len(data)
        if off or end % b:                  # partial words: read-modify-write
            buf = bytearray((last - first + 1) * b)
            if off and end % b and first == last:
                buf[:] = self._dump(first, last)
            else:
                if off:
                    buf[:b] = self._dump(first, first)
                if end % b:
                    buf[-b:] = self._dump(last, last)
            buf[off:end] = data
            data = bytes(buf)
        hexmem.write_image(self._mem_in, [(first, data)], b)
        self._call("mem_load")

    def read_mem(self, addr: int, length: int) -> bytes:
        self._check_range(addr, length)
        if not length:
            return b""
        b = self.bus_bytes
        first, last = addr // b, (addr + length - 1) // b
        data = self._dump(first, last)
        return data[addr - first * b:addr - first * b + length]

    def wait_done(self, max_cycles: int) -> int:
        if max_cycles < 0:
            raise ValueError("max_cycles must be >= 0")
        cpu = process_cpu_seconds(self._proc.pid)
        start = time.perf_counter()
        try:
            cycles = self._call("wait_done", int(max_cycles), timeout=self.wait_timeout)
        except _Timeout as exc:
            self._account(max_cycles, start, cpu)
            raise DoneTimeout(str(exc)) from None
        self._account(cycles, start, cpu)
        return cycles

    @property
    def mem_size(self) -> int:
        return self._mem_size

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn is not None and self._proc.poll() is None:
                try:
                    self._conn.send(("quit",))
                    if self._conn.poll(30):
                        self._conn.recv()
                except (EOFError, OSError):
                    pass
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _kill(self._proc)
        finally:
            self._release()
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ extras
    def reset(self, cycles: int = 4) -> None:
        """Hold the accelerator's reset for `cycles` cycles (memory is kept)."""
        self._call("reset", int(cycles))

    def cycle(self) -> int:
        """Clock cycles simulated since time zero."""
        return self._call("cycle")

    @property
    def sim_cycles(self) -> int:
        """Simulated cycles spent inside wait_done (all calls)."""
        return self.stats.wait_cycles

    @property
    def wait_seconds(self) -> float:
        """Wall-clock seconds spent inside wait_done (all calls)."""
        return self.stats.wait_seconds

    @property
    def returncode(self):
        return None if self._proc is None else self._proc.poll()

    # ------------------------------------------------------------------ helpers
    def _account(self, cycles, start, cpu):
        self.stats.wait_seconds += time.perf_counter() - start
        self.stats.wait_cpu_seconds += process_cpu_seconds(self._proc.pid) - cpu
        self.stats.wait_calls += 1
        self.stats.wait_cycles += int(cycles)

    def _check_range(self, addr, length):
        if addr < 0 or length < 0 or addr + length > self._mem_size:
            raise ValueError(f"memory range 0x{addr:x}+{length} outside 0..0x{self._mem_size:x}")

    def _dump(self, first, last) -> bytes:
        try:
            self._mem_out.unlink()
        except FileNotFoundError:
            pass
        self._call("mem_dump", first, last)
        try:
            text = self._mem_out.read_bytes()
        except FileNotFoundError:
            raise TransportError(f"the memory model wrote no dump to {self._mem_out}") from None
        return hexmem.decode_words(text, self.bus_bytes, last - first + 1)


class _Timeout(Exception):
    pass


def _check_reg(offset):
    if not (0 <= offset < 0x1000) or offset % 4:
        raise ValueError(f"register offset must be a multiple of 4 below 0x1000: {offset!r}")
