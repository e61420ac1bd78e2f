"""Array sizes against a board: `python -m hw.board.sweep --board NAME --sizes 2,4,8`.

For each size the board's flow (`synth.synthesize`) runs on the board's top
with that array (the board's accelerator configuration otherwise, its
requantisation lanes capped at the array's columns), optionally at another
clock (`--clock-mhz`: on an ECP5 board the PLL is set for it, and nextpnr
places and routes for it). The sweep answers what the issue asks of each
board: the largest array that fits, and its Fmax.

Every size gets a row whatever happens to it: its resources and Fmax when it
routed, the resource that overflowed when it does not fit, the last overuse
of each seed when router2 did not converge. Outputs in --out-dir (default
build/fpga-sweep/<board>): each size's flow directory (`<R>x<C>/`),
`sweep.json`, `sweep.md` (a table) and `sweep.png` (Fmax and resource use
against the array size). `--jobs N` runs N sizes at a time (nextpnr uses
one core).
"""

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from .boards import BOARDS, get_board
from .synth import (REPO, NotRouted, ResourceError, SynthError, clock_hz, run_command,
                    seed_list, synthesize)

__all__ = ["sweep", "array_sizes", "default_out_dir", "format_table", "plot", "main"]

def array_sizes(text):
    """[(rows, cols)] from "2,4,8x16": N is an N x N array."""
    sizes = []
    for item in text.split(","):
        found = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+)\s*)?", item)
        if not found or int(found[1]) < 1 or (found[2] and int(found[2]) < 1):
            raise ValueError(f"sizes must be N or RxC (positive integers) separated by "
                             f"commas, not {text!r}")
        sizes.append((int(found[1]), int(found[2] or found[1])))
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must not repeat, not {text!r}")
    return sizes


def _board_with_array(board, rows, cols):
    lanes = board.accel.requant_lanes and min(board.accel.requant_lanes, cols)
    return board.with_accel(replace(board.accel, rows=rows, cols=cols, requant_lanes=lanes))


def _progress_line(start, label):
    return lambda message: print(f"[{time.monotonic() - start:5.0f} s] {label}: {message}",
                                 file=sys.stderr, flush=True)


def _run_size(board, out, seeds, route_patience, start):
    rows, cols = board.accel.rows, board.accel.cols
    label = f"{rows}x{cols}"
    row = {"rows": rows, "cols": cols, "pes": rows * cols,
           "requant_lanes": board.accel.requant_lane_count, "status": None, "report": None,
           "error": None}
    # The flow writes the report after yosys; a stale one from an earlier
    # sweep must not stand in for a run that stopped before that.
    report_file = out / label / f"{board.name}-accel" / "report.json"
    report_file.unlink(missing_ok=True)
    try:
        row["report"] = synthesize(board, out_dir=out / label, seeds=seeds,
                                   route_patience=route_patience,
                                   progress=_progress_line(start, label))
        row["status"] = "routed" if row["report"]["fmax_mhz"] is not None else "estimated"
    except SynthError as error:
        row["status"] = {ResourceError: "does not fit", NotRouted: "did not route"}.get(
            type(error), "failed")
        row["error"] = str(error)
        if report_file.exists():
            row["report"] = json.loads(report_file.read_text())
    _progress_line(start, label)(row["status"])
    return row


def default_out_dir(board):
    return REPO / "build" / "fpga-sweep" / board.name


def sweep(board, sizes, *, out_dir=None, jobs=1, seeds=None, route_patience=30):
    """Run the flow for each (rows, cols) of `sizes` on `board` (a Board, at
    the clock it has: `Board.with_clock`); returns the rows (dicts with rows,
    cols, pes, requant_lanes, status, report, error) in size order. Every
    size's configuration is checked before anything runs."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    boards = [_board_with_array(board, rows, cols) for rows, cols in sizes]
    out = Path(out_dir or default_out_dir(board))
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    arguments = [(sized, out, seeds, route_patience, start) for sized in boards]
    if jobs == 1:
        return [_run_size(*args) for args in arguments]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # The largest arrays take longest: they start first.
        largest_first = sorted(arguments, key=lambda args: -args[0].accel.pes)
        futures = {id(args): pool.submit(_run_size, *args) for args in largest_first}
        return [futures[id(args)].result() for args in arguments]


def _fmax_cell(row):
    report = row["report"]
    if row["status"] == "routed":
        verdict = "met" if report["fmax_mhz"] >= report["target_mhz"] else "missed"
        return f"{report['fmax_mhz']:.1f} MHz ({verdict}, seed {report['seed']})"
    if row["status"] == "did not route":
        return "did not route: " + "; ".join(row["error"].splitlines()[1:])
    if row["status"] == "failed":
        return "failed: " + row["error"].splitlines()[0]
    if row["status"] == "does not fit":
        return "does not fit: " + ", ".join(report["overflow"])
    return "no place and route for this family"


def format_table(board, rows):
    """A Markdown table of the sweep's rows."""
    lines = [f"{board.name} ({board.device}), clock target {board.clk_hz / 1e6:g} MHz", "",
             "| array | PEs | lanes | " + " | ".join(board.resources) + " | Fmax |",
             "|---|---:|---:|" + "---:|" * len(board.resources) + "---|"]
    for row in rows:
        used = row["report"]["resources"] if row["report"] else {}
        cells = [f"{used[name]['used']} ({100 * used[name]['used'] / used[name]['available']:.0f}"
                 " %)" if name in used else "" for name in board.resources]
        lines.append(f"| {row['rows']}x{row['cols']} | {row['pes']} | {row['requant_lanes']} | "
                     + " | ".join(cells) + f" | {_fmax_cell(row)} |")
    return "\n".join(lines) + "\n"


def plot(board, rows, path):
    """Fmax and resource use against the array size, one figure at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (fmax_axis, use_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{row['rows']}x{row['cols']}" for row in rows]
    positions = range(len(rows))
    routed = [(x, row["report"]["fmax_mhz"]) for x, row in zip(positions, rows)
              if row["status"] == "routed"]
    if routed:
        fmax_axis.plot(*zip(*routed), "o-", label="achieved Fmax")
        for x, fmax in routed:
            fmax_axis.annotate(f"{fmax:.1f}", (x, fmax), textcoords="offset points",
                               xytext=(0, 6), ha="center")
    for x, row in zip(positions, rows):
        if row["status"] in ("did not route", "does not fit", "failed"):
            fmax_axis.plot([x], [0], "x", color="red")
            fmax_axis.annotate(row["status"], (x, 0), textcoords="offset points",
                               xytext=(0, 8), rotation=90, ha="center", va="bottom")
    target = board.clk_hz / 1e6
    fmax_axis.axhline(target, linestyle="--", color="grey", label=f"target {target:g} MHz")
    fmax_axis.set(xticks=list(positions), xticklabels=labels, xlabel="array (rows x cols)",
                  xlim=(-0.5, len(rows) - 0.5),
                  ylabel="MHz", ylim=(0, max([target] + [f for _, f in routed]) * 1.15),
                  title=f"{board.name}: Fmax after place and route")
    fmax_axis.legend(loc="lower left")
    for name in board.resources:
        points = [(x, 100 * row["report"]["resources"][name]["used"]
                   / row["report"]["resources"][name]["available"])
                  for x, row in zip(positions, rows) if row["report"]]
        if points:
            use_axis.plot(*zip(*points), "o-", label=name)
    use_axis.axhline(100, linestyle="--", color="grey")
    use_axis.set(xticks=list(positions), xticklabels=labels, xlabel="array (rows x cols)",
                 xlim=(-0.5, len(rows) - 0.5),
                 ylabel="% of the device", title=f"{board.name}: resources (yosys)")
    use_axis.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hw.board.sweep",
                                     description="Run a board's synthesis flow for several "
                                                 "array sizes; table and plot of resources "
                                                 "and Fmax.")
    parser.add_argument("--board", required=True, help=f"one of {', '.join(sorted(BOARDS))}")
    parser.add_argument("--sizes", required=True, metavar="N|RxC,..",
                        help="array sizes, e.g. 2,4,8,12 or 4x8")
    parser.add_argument("--clock-mhz", type=float, metavar="F",
                        help="design clock (default the board's; ECP5 boards set their PLL)")
    parser.add_argument("--jobs", type=int, default=1, help="sizes run at a time (default 1)")
    parser.add_argument("--out-dir", type=Path, help="default build/fpga-sweep/<board>")
    parser.add_argument("--route-patience", type=int, default=30, metavar="N",
                        help="as for python -m hw.board.synth (default 30)")
    parser.add_argument("--seeds", type=seed_list, metavar="S1,S2,..",
                        help="nextpnr seeds tried in turn (default: the board's)")
    args = parser.parse_args(argv)

    def run(progress):
        board = get_board(args.board)
        if args.clock_mhz is not None:
            board = board.with_clock(clock_hz(args.clock_mhz))
        out = args.out_dir or default_out_dir(board)
        rows = sweep(board, array_sizes(args.sizes), out_dir=out, jobs=args.jobs,
                     seeds=args.seeds, route_patience=args.route_patience)
        table = format_table(board, rows)
        (out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
        (out / "sweep.md").write_text(table)
        plot(board, rows, out / "sweep.png")
        sys.stdout.write(table)
        print(f"outputs in {out}")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
