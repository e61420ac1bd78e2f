# amaranth: UnusedElaboratable=no
"""Board tops and constraint files: every constrained port exists in the
generated top and every port of the top is constrained; board definitions,
the PLL parameters (against yowasp-ecppll) and the constructors' checks."""

import fnmatch
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hw.board.boards import BOARDS, BoardError, ecp5_pll, get_board
from hw.board.synth import DSP_POLICIES
from hw.board.top import BoardCore, BoardTop, board_verilog
from hw.config import AccelConfig

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints"


def top_port_bits(verilog_text):
    """{bit name: direction} of module board_top, buses as name[i]."""
    module = verilog_text[verilog_text.index("module board_top("):]
    module = module[:module.index("endmodule")]
    bits = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           module, re.M):
        if msb:
            bits.update({f"{name}[{i}]": direction for i in range(int(msb) + 1)})
        else:
            bits[name] = direction
    return bits


def constrained_pins(path):
    """({port bit: pin}, [every port pattern the file refers to])."""
    text = path.read_text()
    if path.suffix == ".pcf":
        pins = {}
        for line in text.splitlines():
            tokens = line.split("#")[0].split()
            if tokens and tokens[0] == "set_io":
                pins[tokens[-2]] = tokens[-1]
        return pins, list(pins)
    if path.suffix == ".lpf":
        pins = dict(re.findall(r'LOCATE COMP "([^"]+)" SITE "([^"]+)";', text))
        return pins, re.findall(r'PORT "([^"]+)"', text) + list(pins)
    pins = dict((name, pin) for pin, name in re.findall(
        r"PACKAGE_PIN (\w+)\s+IOSTANDARD \w+ \} \[get_ports \{ ([^ }]+) \}\]", text))
    patterns = [name for group in re.findall(r"get_ports \{([^}]*)\}", text)
                for name in group.split()]
    return pins, patterns


@pytest.fixture(scope="module")
def tops():
    return {name: top_port_bits(board_verilog(board, image="link"))
            for name, board in BOARDS.items()}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_constraints_match_top_ports(name, tops):
    board = BOARDS[name]
    bits = tops[name]
    pins, patterns = constrained_pins(board.constraint_file)
    assert set(pins) == set(bits), (f"constrained but not in the top: {set(pins) - set(bits)}; "
                                    f"in the top but not constrained: {set(bits) - set(pins)}")
    for pattern in patterns:
        assert fnmatch.filter(bits, pattern.replace("[", "[[]")) or pattern in bits, pattern
    assert len(set(pins.values())) == len(pins), "two ports on one pin"
    expected = {f"led[{i}]": "output" for i in range(board.leds)}
    expected.update(clk_in="input", rst_n="input", uart_rx="input", uart_tx="output")
    assert bits == expected


def test_constraint_files_exist_for_every_board():
    assert sorted(p.name for p in CONSTRAINTS.iterdir()) == \
        sorted(board.constraints for board in BOARDS.values())


def test_accel_image_has_the_same_ports_as_link_image(tops):
    board = get_board("icebreaker")
    assert top_port_bits(board_verilog(board, image="accel")) == tops["icebreaker"]


def ecppll(tmp_path, osc_hz, clk_hz):
    """The EHXPLLL parameters yowasp-ecppll gives, after checking that it
    makes the clock exactly."""
    tool = Path(sys.executable).parent / "yowasp-ecppll"
    result = subprocess.run([str(tool), "-i", f"{osc_hz / 1e6:g}", "-o", f"{clk_hz / 1e6:g}",
                             "-f", "pll.v"], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    assert f"clkout0 frequency: {clk_hz / 1e6:g} MHz" in result.stdout
    module = (tmp_path / "pll.v").read_text()
    return {name: int(re.search(rf"\.{name}\((\d+)\)", module).group(1))
            for name in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE")}


def test_shipped_pll_is_ecp5_pll():
    board = get_board("ulx3s")
    assert board.pll == ecp5_pll(board.osc_hz, board.clk_hz)
    assert board.with_clock(board.clk_hz) is board


# The ULX3S's 50 MHz, the 100 MHz target, and clocks whose CLKOP_CPHASE
# comes out of ecppll's single-precision arithmetic either way (75 MHz:
# CLKOP_DIV 8, CPHASE 4; 50 MHz: 12, 5), CLKI_DIV above 1, the PLL's limits.
@pytest.mark.parametrize("clk_mhz", [50, 100, 60, 62.5, 75, 40, 80, 125, 200, 3.125])
def test_ecp5_pll_is_what_ecppll_gives(tmp_path, clk_mhz):
    clk_hz = round(clk_mhz * 1e6)
    assert ecp5_pll(25_000_000, clk_hz) == ecppll(tmp_path, 25_000_000, clk_hz)


@pytest.mark.parametrize("clk_mhz", [60, 100])
def test_board_at_another_clock(clk_mhz):
    board = get_board("ulx3s").with_clock(round(clk_mhz * 1e6))   # the Board checks its PLL
    assert board.pll == ecp5_pll(25_000_000, board.clk_hz) and board.idle_cycles == 50_000 * clk_mhz
    assert board.accel == get_board("ulx3s").accel


@pytest.mark.parametrize("board, clk_hz, message", [
    ("ulx3s", 48_000_000, r"no EHXPLLL setting makes exactly 48 MHz from 25 MHz \(it makes "
                          r"25 MHz x CLKFB_DIV / CLKI_DIV, with 3.125 MHz..400 MHz after "
                          r"CLKI_DIV\)"),
    ("ulx3s", 500_000_000, r"clk_hz must be an integer in 3.125 MHz..400 MHz for the EHXPLLL, "
                           r"not 500000000"),
    ("ulx3s", 60e6, r"clk_hz must be an integer .*, not 60000000.0"),
    # The PLL makes it, the UART's divisor (1 Mbaud) cannot.
    ("ulx3s", 3_125_000, r"board 'ulx3s': baud rate 1000000 is too high for a 3.125 MHz clock"),
    ("icebreaker", 24_000_000, r"board 'icebreaker' has no PLL here: it runs at its "
                               r"oscillator's 12 MHz, not 24 MHz"),
    ("arty", 50_000_000, r"board 'arty' has no PLL here: it runs at its oscillator's 100 MHz"),
])
def test_with_clock_errors(board, clk_hz, message):
    with pytest.raises(BoardError, match=message):
        get_board(board).with_clock(clk_hz)


def test_boards_and_images():
    assert sorted(BOARDS) == ["arty", "icebreaker", "ulx3s"]
    with pytest.raises(BoardError, match="unknown board 'de10'; known boards: arty, "
                                         "icebreaker, ulx3s"):
        get_board("de10")
    with pytest.raises(BoardError, match="unknown image"):
        BoardTop(get_board("ulx3s"), image="demo")
    with pytest.raises(TypeError, match="Board"):
        BoardTop("ulx3s")
    for board in BOARDS.values():
        assert board.dsp in DSP_POLICIES
        assert board.pll is None or board.family == "ecp5"
        assert board.mem_bytes <= 1 << board.accel.axi_addr_width


ULX3S_PLL = get_board("ulx3s").pll


@pytest.mark.parametrize("name, changes, message", [
    ("ulx3s", {"family": "gowin"}, "family must be one of ice40, ecp5, xilinx, not 'gowin'"),
    ("ulx3s", {"clk_hz": 0}, "clk_hz must be a positive integer, not 0"),
    ("icebreaker", {"mem_bytes": 4096.0}, "mem_bytes must be a positive integer, not 4096.0"),
    ("ulx3s", {"pnr_seeds": ()}, r"pnr_seeds must be positive integers, at least one, "
                                 r"not \(\)"),
    ("ulx3s", {"pnr_seeds": (2, 0)}, "pnr_seeds must be"),
    ("arty", {"reset_dcc": "X3/Y46/LDCC0"}, "reset_dcc must be None or an ECP5 DCC site"),
    ("icebreaker", {"clk_hz": 24_000_000}, "clk_hz 24 MHz needs a PLL: the oscillator "
                                           "gives 12 MHz"),
    ("arty", {"pll": ULX3S_PLL}, "pll is an ECP5 EHXPLLL, the xilinx has none here"),
    ("icebreaker", {"baudrate": 4_000_000}, "baud rate 4000000 is too high for a 12 MHz clock"),
    ("ulx3s", {"pll": {"CLKI_DIV": 1}}, "pll must give CLKI_DIV, CLKFB_DIV, CLKOP_DIV, "
                                        "CLKOP_CPHASE"),
    # 100 MHz with the 50 MHz dividers: the mistake this check is for.
    ("ulx3s", {"clk_hz": 100_000_000}, r"the pll makes 50 MHz from 25 MHz \(x CLKFB_DIV 2 / "
                                       r"CLKI_DIV 1\), not clk_hz 100 MHz"),
    ("ulx3s", {"pll": {**ULX3S_PLL, "CLKOP_DIV": 4}},
     r"the pll.s VCO would run at 200 MHz \(clk_hz x CLKOP_DIV 4\); it must be in 400 MHz..800 MHz"),
])
def test_board_fields_are_checked(name, changes, message):
    with pytest.raises(BoardError, match=f"board '{name}': {message}"):
        replace(get_board(name), **changes)


@pytest.mark.parametrize("name, spare", [("icebreaker", 0), ("ulx3s", 0), ("arty", 2)])
def test_boards_fill_their_dsps(name, spare):
    """One DSP block a PE and four a requantisation lane (16-bit digits), and
    no more than the device has."""
    board = get_board(name)
    accel = board.accel
    assert board.dsp in ("pe+requant", "all") and accel.requant_digit_bits == 16
    needed = accel.pes + 4 * accel.requant_lane_count
    assert needed == board.resources["DSP"] - spare, (accel.pes, accel.requant_lane_count)


def test_board_core_checks():
    cfg = AccelConfig(rows=2, cols=2)
    good = dict(mem_bytes=1024, clk_hz=1000, divisor=4, idle_cycles=100)
    with pytest.raises(ValueError, match="multiple of the bus width"):
        BoardCore(cfg, **{**good, "mem_bytes": 1020})
    with pytest.raises(ValueError, match="address space"):
        BoardCore(AccelConfig(axi_addr_width=16), **{**good, "mem_bytes": 1 << 17})
    with pytest.raises(TypeError, match="AccelConfig or None"):
        BoardCore("2x2", **good)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_ecp5_reset_goes_through_a_global_buffer(name):
    """On the ECP5 the synchronised reset drives the design through a DCCA
    (a global line); elsewhere the synchroniser drives it directly."""
    board = BOARDS[name]
    text = board_verilog(board, image="link")
    buffers = re.findall(r"DCCA reset_buffer \(\s*\.CE\(1'h1\),"
                         r"\s*\.CLKI\((\w+)\),\s*\.CLKO\((\w+)\)", text)
    if board.family == "ecp5":
        assert buffers == [("reset_rst", "rst")]
        assert re.search(r"\.rst\(rst\)", text), "the core is reset from the buffer's output"
        # On its DCC site: left to the placer, it once went where nextpnr found no route.
        site = re.search(r'\(\* BEL = "([^"]+)" \*\)\s*(?:\(\*[^*]*\*\)\s*)*DCCA reset_buffer', text)
        assert site and site.group(1) == board.reset_dcc == "X3/Y46/LDCC0"
    else:
        assert buffers == [] and "DCCA" not in text
