"""The boards a board top is generated for, and what each needs.

A `Board` names its FPGA, its oscillator and the clock the design runs at
(through a PLL where the oscillator is slower than that), the size of the
on-chip memory that stands in for external memory, the accelerator
configuration that fits it, and its constraint file under `constraints/`.
Pin assignments live only in the constraint files; the top's port names
(`PORTS`) are what those files name.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy

from ..config import AccelConfig
from ..uart import divisor_for

__all__ = ["Board", "BOARDS", "BoardError", "get_board", "ecp5_pll", "CONSTRAINTS_DIR", "PORTS"]

CONSTRAINTS_DIR = Path(__file__).resolve().parents[2] / "constraints"

# Top-level ports of every board top: name -> (direction, width). `led` is as
# wide as the board's `leds`.
PORTS = {
    "clk_in": ("input", 1),
    "rst_n": ("input", 1),
    "uart_rx": ("input", 1),
    "uart_tx": ("output", 1),
    "led": ("output", None),
}


class BoardError(ValueError):
    """An unknown board, or a configuration the board cannot take."""


FAMILIES = ("ice40", "ecp5", "xilinx")
PLL_PARAMETERS = ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE")
# EHXPLLL limits (Lattice TN1263): the VCO runs at 400..800 MHz, the phase
# detector at 3.125..400 MHz, the output at 3.125..400 MHz; CLKI_DIV and
# CLKOP_DIV go to 128, CLKFB_DIV to 80.
PLL_VCO_HZ = (400e6, 800e6)
PLL_PFD_HZ = (3.125e6, 400e6)
PLL_OUT_HZ = (3.125e6, 400e6)
PLL_DIV_MAX = {"CLKI_DIV": 128, "CLKFB_DIV": 80, "CLKOP_DIV": 128}


def _mhz(hz):
    return f"{hz / 1e6:g} MHz"


def _ecppll_cphase(osc_hz, clki_div, clkfb_div, clkop_div):
    """CLKOP_CPHASE as ecppll computes it: half the output period in VCO
    cycles (a 180 degree shift), in its single-precision arithmetic, so the
    result is one less than half CLKOP_DIV for some dividers and not others
    (12 -> 5, 8 -> 4)."""
    f32 = numpy.float32
    pfd = f32(f32(osc_hz / 1e6) / f32(clki_div))
    vco = f32(f32(pfd * f32(clkfb_div)) * f32(clkop_div))
    out = f32(vco / f32(clkop_div))
    half_period = f32(1 / (float(out) * 1e6) * 0.5)
    return int(float(half_period) * (float(vco) * 1e6))


def ecp5_pll(osc_hz, clk_hz):
    """EHXPLLL parameters that make exactly `clk_hz` from `osc_hz` with CLKOP
    as the feedback, the ones Project Trellis' ecppll gives: the smallest
    CLKI_DIV, then the VCO nearest 600 MHz, and its CLKOP_CPHASE (with CLKOP
    as the feedback the phase does not change the clock). BoardError when no
    setting makes the clock exactly."""
    if not _positive_int(clk_hz) or not PLL_OUT_HZ[0] <= clk_hz <= PLL_OUT_HZ[1]:
        raise BoardError(f"clk_hz must be an integer in {_mhz(PLL_OUT_HZ[0])}.."
                         f"{_mhz(PLL_OUT_HZ[1])} for the EHXPLLL, not {clk_hz!r}")
    for clki_div in range(1, PLL_DIV_MAX["CLKI_DIV"] + 1):
        if not PLL_PFD_HZ[0] <= osc_hz / clki_div <= PLL_PFD_HZ[1]:
            continue
        clkfb_div, remainder = divmod(clk_hz * clki_div, osc_hz)
        if remainder or not 1 <= clkfb_div <= PLL_DIV_MAX["CLKFB_DIV"]:
            continue
        vco_divs = [div for div in range(1, PLL_DIV_MAX["CLKOP_DIV"] + 1)
                    if PLL_VCO_HZ[0] <= clk_hz * div <= PLL_VCO_HZ[1]]
        if vco_divs:
            clkop_div = min(vco_divs, key=lambda div: abs(clk_hz * div - 600e6))
            return {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                    "CLKOP_CPHASE": _ecppll_cphase(osc_hz, clki_div, clkfb_div, clkop_div)}
    raise BoardError(f"no EHXPLLL setting makes exactly {_mhz(clk_hz)} from "
                     f"{_mhz(osc_hz)} (it makes {_mhz(osc_hz)} x CLKFB_DIV / CLKI_DIV, "
                     f"with {_mhz(PLL_PFD_HZ[0])}..{_mhz(PLL_PFD_HZ[1])} after CLKI_DIV)")


def _positive_int(value):
    return not isinstance(value, bool) and isinstance(value, int) and value > 0


def seeds_problem(name, seeds):
    """What is wrong with `seeds` as nextpnr seeds (a non-empty tuple, list or
    range of positive integers), or None."""
    if (not isinstance(seeds, (tuple, list, range)) or not seeds
            or not all(_positive_int(seed) for seed in seeds)):
        return f"{name} must be positive integers, at least one, not {seeds!r}"
    return None


@dataclass(frozen=True)
class Board:
    """One board (see the module docstring).

    family: "ice40", "ecp5" or "xilinx" (the tool flow)
    device, package, speed: as the place-and-route tool names them
    osc_hz: the oscillator on `clk_in`; clk_hz: the design's clock
    pll: EHXPLLL parameters (ECP5) turning osc_hz into clk_hz, or None when
      the design runs on the oscillator
    resources: what the device has, by report name (LUT, FF, DSP, BRAM_KBIT)
    led_active_low: the LEDs light on a low level
    dsp: the synthesis flow's default DSP policy (`hw.board.synth.DSP_POLICIES`);
      the iCE40 and ECP5 boards put the PEs' and requantiser's products in DSPs
    reset_dcc: the ECP5 DCC site (nextpnr's name) of the reset's global
      buffer, or None to leave it to the placer
    pnr_seeds: the nextpnr seeds the flow tries in turn until router2
      converges (`hw.board.synth.place_and_route`)

    The constructor (also `replace` and `with_accel`) checks the fields and
    that clk_hz is what the oscillator and the PLL give, raising BoardError
    with the board's name.
    """

    name: str
    family: str
    device: str
    package: str
    speed: str
    osc_hz: int
    clk_hz: int
    mem_bytes: int
    accel: AccelConfig
    constraints: str
    leds: int
    resources: dict
    led_active_low: bool = False
    pll: dict | None = None
    dsp: str = "pe"
    reset_dcc: str | None = None
    pnr_seeds: tuple = (1, 2, 3)
    baudrate: int = 1_000_000
    max_payload: int = 256
    idle_seconds: float = 0.05
    notes: str = ""

    def __post_init__(self):
        where = f"board {self.name!r}:"
        if self.family not in FAMILIES:
            raise BoardError(f"{where} family must be one of {', '.join(FAMILIES)}, "
                             f"not {self.family!r}")
        for name in ("osc_hz", "clk_hz", "mem_bytes", "leds", "baudrate", "max_payload"):
            if not _positive_int(getattr(self, name)):
                raise BoardError(f"{where} {name} must be a positive integer, "
                                 f"not {getattr(self, name)!r}")
        if not isinstance(self.accel, AccelConfig):
            raise BoardError(f"{where} accel must be an AccelConfig, not {self.accel!r}")
        if problem := seeds_problem("pnr_seeds", self.pnr_seeds):
            raise BoardError(f"{where} {problem}")
        if self.reset_dcc is not None and (self.family != "ecp5" or not self.reset_dcc
                                           or not isinstance(self.reset_dcc, str)):
            raise BoardError(f"{where} reset_dcc must be None or an ECP5 DCC site name, "
                             f"not {self.reset_dcc!r}")
        self._check_clock(where)
        try:
            divisor_for(self.clk_hz, self.baudrate)
        except ValueError as error:
            raise BoardError(f"{where} {error}") from None

    def _check_clock(self, where):
        """clk_hz is the oscillator's, or what the PLL makes of it."""
        if self.pll is None:
            if self.clk_hz != self.osc_hz:
                raise BoardError(f"{where} clk_hz {_mhz(self.clk_hz)} needs a PLL: the "
                                 f"oscillator gives {_mhz(self.osc_hz)}")
            return
        if self.family != "ecp5":
            raise BoardError(f"{where} pll is an ECP5 EHXPLLL, the {self.family} has none here")
        if (not isinstance(self.pll, dict) or sorted(self.pll) != sorted(PLL_PARAMETERS)
                or not all(_positive_int(self.pll[name]) or name == "CLKOP_CPHASE"
                           and self.pll[name] == 0 for name in PLL_PARAMETERS)):
            raise BoardError(f"{where} pll must give {', '.join(PLL_PARAMETERS)} as integers "
                             f"(dividers positive), not {self.pll!r}")
        # The feedback is CLKOP: clk = osc * CLKFB_DIV / CLKI_DIV.
        made = self.osc_hz * self.pll["CLKFB_DIV"] / self.pll["CLKI_DIV"]
        if made != self.clk_hz:
            raise BoardError(f"{where} the pll makes {_mhz(made)} from {_mhz(self.osc_hz)} "
                             f"(x CLKFB_DIV {self.pll['CLKFB_DIV']} / CLKI_DIV "
                             f"{self.pll['CLKI_DIV']}), not clk_hz {_mhz(self.clk_hz)}")
        vco = made * self.pll["CLKOP_DIV"]
        if not PLL_VCO_HZ[0] <= vco <= PLL_VCO_HZ[1]:
            raise BoardError(f"{where} the pll's VCO would run at {_mhz(vco)} (clk_hz x "
                             f"CLKOP_DIV {self.pll['CLKOP_DIV']}); it must be in "
                             f"{_mhz(PLL_VCO_HZ[0])}..{_mhz(PLL_VCO_HZ[1])}")

    @property
    def constraint_file(self):
        return CONSTRAINTS_DIR / self.constraints

    @property
    def idle_cycles(self):
        return round(self.clk_hz * self.idle_seconds)

    def ports(self):
        """{port name: (direction, width)} of this board's top."""
        return {name: (direction, self.leds if width is None else width)
                for name, (direction, width) in PORTS.items()}

    def with_accel(self, accel):
        if not isinstance(accel, AccelConfig):
            raise TypeError(f"accel must be an AccelConfig, not {accel!r}")
        return replace(self, accel=accel)

    def with_clock(self, clk_hz):
        """This board with its design clock at `clk_hz`: on an ECP5 board the
        PLL set for it (`ecp5_pll`); a board without a PLL runs only at its
        oscillator's clock. Raises BoardError naming the reason otherwise
        (the UART's divisor is checked as for any board)."""
        if clk_hz == self.clk_hz:
            return self
        if self.family != "ecp5":
            raise BoardError(f"board {self.name!r} has no PLL here: it runs at its "
                             f"oscillator's {_mhz(self.osc_hz)}, not {_mhz(clk_hz)}")
        return replace(self, clk_hz=clk_hz, pll=ecp5_pll(self.osc_hz, clk_hz))


BOARDS = {
    "icebreaker": Board(
        name="icebreaker", family="ice40", device="up5k", package="sg48", speed="",
        osc_hz=12_000_000, clk_hz=12_000_000, mem_bytes=4096,
        # 2x2 PEs and one requantisation lane of four 16 x 16 products: the 8
        # SB_MAC16s.
        # 32-bit counters: they wrap after 358 s at 12 MHz.
        accel=AccelConfig(rows=2, cols=2, axi_data_width=32, axi_addr_width=16,
                          kernel_max=3, stride_max=2, in_depth=64, acc_depth=32,
                          requant_lanes=1, requant_digit_bits=16, counter_width=32),
        constraints="icebreaker.pcf", leds=2, led_active_low=True, dsp="pe+requant",
        resources={"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM_KBIT": 120},
        notes="iCE40UP5K: 5280 LUT4, 8 SB_MAC16, 30 EBR (4 kbit each)",
    ),
    "ulx3s": Board(
        name="ulx3s", family="ecp5", device="85k", package="CABGA381", speed="6",
        osc_hz=25_000_000, clk_hz=50_000_000, mem_bytes=64 << 10,
        # 144 PEs and three requantisation lanes of four 16 x 16 products: the
        # 156 MULT18X18Ds.
        accel=AccelConfig(rows=12, cols=12, kernel_max=3, stride_max=2,
                          in_depth=1024, acc_depth=512, requant_lanes=3,
                          requant_digit_bits=16),
        # 50 MHz: the 12x12 top routes there at 63.7 MHz; with the PLL at
        # 100 MHz it routes at 63.5 MHz (docs/fpga.md).
        pll={"CLKI_DIV": 1, "CLKFB_DIV": 2, "CLKOP_DIV": 12, "CLKOP_CPHASE": 5},
        constraints="ulx3s.lpf", leds=8, dsp="pe+requant",
        # Placed by the placer, one 12x12 netlist's reset buffer went to the
        # top edge's TDCC0, where nextpnr found no route from the fabric to
        # its input; the same netlist routed with it on LDCC0.
        reset_dcc="X3/Y46/LDCC0",
        # nextpnr's default seed left router2 diverging on the 12x12 top
        # (least overuse 947 at iteration 25, 2273 at 41); seed 2 routed it in
        # 66 iterations (docs/fpga.md).
        pnr_seeds=(2, 1, 3),
        resources={"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM_KBIT": 3744},
        notes="LFE5U-85F: 83640 LUT4, 156 MULT18X18D, 208 DP16KD (18 kbit each)",
    ),
    "arty": Board(
        name="arty", family="xilinx", device="xc7a35ticsg324-1L", package="csg324",
        speed="-1L", osc_hz=100_000_000, clk_hz=100_000_000, mem_bytes=64 << 10,
        # 8x8 with every product in a DSP48E1: 64 PEs + 6 lanes x 4 = 88 of 90,
        # 65 % of the LUTs (yosys estimate, docs/fpga.md).
        accel=AccelConfig(rows=8, cols=8, kernel_max=3, stride_max=2,
                          in_depth=1024, acc_depth=512, requant_lanes=6,
                          requant_digit_bits=16),
        constraints="arty_a7_35.xdc", leds=4, dsp="all",
        resources={"LUT": 20800, "FF": 41600, "DSP": 90, "BRAM_KBIT": 1800},
        notes="XC7A35T: 20800 LUT6, 90 DSP48E1, 50 RAMB36 (36 kbit each)",
    ),
}


def get_board(name):
    """The Board called `name`; BoardError naming the known boards otherwise."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise BoardError(f"unknown board {name!r}; known boards: "
                         f"{', '.join(sorted(BOARDS))}") from None
