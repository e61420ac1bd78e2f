"""Board tops: the accelerator, the on-chip memory standing in for external
memory, the UART bridge, and (per board) the clock and reset.

`BoardCore` is the platform-independent part, clocked by the `sync` domain
(ports `clk`, `rst` in Verilog): it is what the cosimulation runs.
`BoardTop` wraps it for one `Board`: the oscillator pin, a PLL where the
board needs one, the reset button and the LEDs. Its ports are
`hw.board.boards.PORTS`, the names the constraint files use.

LEDs: `led[0]` is the accelerator's irq (a run finished), `led[1]` is lit
while the bridge handles a frame, the others are off.

`image="link"` replaces the accelerator by four scratch registers at
0x000..0x00C (a bring-up image that checks the serial link and the memory;
it also synthesises in seconds).
"""

from amaranth import Array, ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from ..accel import ConvAccel
from ..axi import AXI4LiteSignature, connect_flat
from ..axil import AXILiteSlave
from ..config import AccelConfig
from ..sram import AXI4SRAM
from ..uart import divisor_for
from .boards import Board, BoardError
from .bridge import AXIL_ADDR_WIDTH, UARTBridge

__all__ = ["BoardCore", "BoardTop", "IMAGES", "LINK_REGISTERS", "board_verilog",
           "synchronised_reset"]

IMAGES = ("accel", "link")
LINK_REGISTERS = 4
LINK_BUS_WIDTH = 32
LINK_ADDR_WIDTH = 16


class _LinkRegisters(wiring.Component):
    """Scratch registers behind an AXI4-Lite slave (the link image's register space)."""

    def __init__(self):
        super().__init__({"axil": In(AXI4LiteSignature(addr_width=AXIL_ADDR_WIDTH))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = slave = AXILiteSlave(AXIL_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.axil), slave.axil)
        regs = Array(Signal(32, name=f"scratch{i}") for i in range(LINK_REGISTERS))
        index = slave.addr[2:4]
        in_window = slave.addr[4:] == 0
        with m.If(slave.write & in_window):
            m.d.sync += regs[index].eq(slave.wdata)
        rdata = Signal(32)
        with m.If(slave.read):
            m.d.sync += rdata.eq(Mux(in_window, regs[index], 0))
        m.d.comb += slave.rdata.eq(rdata)
        return m


class BoardCore(wiring.Component):
    """Accelerator (or link registers), memory and UART bridge on one clock.

    cfg: the AccelConfig, or None for the link image
    mem_bytes: on-chip memory, a multiple of the bus width in bytes
    clk_hz: the clock (reported to the host); divisor: clock cycles per UART
    bit; idle_cycles, max_payload: see `UARTBridge`

    Members: uart_rx In(1), uart_tx Out(1), led Out(2).
    """

    def __init__(self, cfg, *, mem_bytes, clk_hz, divisor, idle_cycles, max_payload=256):
        if cfg is not None and not isinstance(cfg, AccelConfig):
            raise TypeError(f"cfg must be an AccelConfig or None, not {cfg!r}")
        self.cfg = cfg
        data_width = cfg.axi_data_width if cfg else LINK_BUS_WIDTH
        addr_width = cfg.axi_addr_width if cfg else LINK_ADDR_WIDTH
        bus_bytes = data_width // 8
        if isinstance(mem_bytes, bool) or not isinstance(mem_bytes, int) \
                or mem_bytes < 2 * bus_bytes or mem_bytes % bus_bytes:
            raise ValueError(f"mem_bytes must be a multiple of the bus width ({bus_bytes} "
                             f"bytes) and at least two words, not {mem_bytes!r}")
        if mem_bytes > 1 << addr_width:
            raise ValueError(f"mem_bytes {mem_bytes} exceeds the {addr_width}-bit AXI "
                             f"address space of the configuration")
        self.mem_bytes = mem_bytes
        self.bridge = UARTBridge(divisor=divisor, idle_cycles=idle_cycles,
                                 mem_depth=mem_bytes // bus_bytes, data_width=data_width,
                                 clk_hz=clk_hz, max_payload=max_payload)
        self.sram = AXI4SRAM(data_width=data_width, addr_width=addr_width,
                             depth=mem_bytes // bus_bytes)
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "led": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.sram = sram = self.sram
        m.submodules.bridge = bridge = self.bridge
        wiring.connect(m, bridge.mem, sram.host)
        m.d.comb += [bridge.rx.eq(self.uart_rx), self.uart_tx.eq(bridge.tx),
                     self.led[1].eq(bridge.active)]
        if self.cfg is None:
            m.submodules.regs = regs = _LinkRegisters()
            wiring.connect(m, bridge.axil, regs.axil)
        else:
            m.submodules.accel = accel = ConvAccel(self.cfg)
            connect_flat(m, accel, "m_axi_", sram.axi_r)
            connect_flat(m, accel, "m_axi_", sram.axi_w)
            connect_flat(m, accel, "s_axil_", bridge.axil)
            m.d.comb += [bridge.irq.eq(accel.irq), self.led[0].eq(accel.irq)]
        return m


class BoardTop(wiring.Component):
    """The top of one board (see the module docstring): ports `hw.board.boards.PORTS`."""

    def __init__(self, board, *, image="accel"):
        if not isinstance(board, Board):
            raise TypeError(f"board must be a Board, not {board!r}")
        if image not in IMAGES:
            raise BoardError(f"unknown image {image!r}; known images: {', '.join(IMAGES)}")
        self.board = board
        self.image = image
        self.divisor = divisor_for(board.clk_hz, board.baudrate)
        self.core = BoardCore(board.accel if image == "accel" else None,
                              mem_bytes=board.mem_bytes, clk_hz=board.clk_hz,
                              divisor=self.divisor, idle_cycles=board.idle_cycles,
                              max_payload=board.max_payload)
        members = {name: In(width) if direction == "input" else Out(width)
                   for name, (direction, width) in board.ports().items()}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.domains.sync = ClockDomain("sync")
        arst = Signal()
        if board.pll is None:
            m.d.comb += [ClockSignal("sync").eq(self.clk_in), arst.eq(~self.rst_n)]
        else:
            locked = Signal()
            m.submodules.pll = self._ecp5_pll(ClockSignal("sync"), locked)
            m.d.comb += arst.eq(~self.rst_n | ~locked)
        synchronised_reset(m, board, arst)

        m.submodules.core = core = self.core
        m.d.comb += [core.uart_rx.eq(self.uart_rx), self.uart_tx.eq(core.uart_tx)]
        leds = core.led if board.leds >= 2 else core.led[:board.leds]
        m.d.comb += self.led[:len(leds)].eq(~leds if board.led_active_low else leds)
        if board.led_active_low and board.leds > len(leds):
            m.d.comb += self.led[len(leds):].eq(-1)
        return m

    def _ecp5_pll(self, clk_out, locked):
        board, pll = self.board, self.board.pll
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{board.osc_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{board.clk_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
            p_CLKOP_CPHASE=pll["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, i_CLKFB=clk_out, o_CLKOP=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )


def synchronised_reset(m, board, arst):
    """The sync domain's reset: `arst` synchronised to the sync clock.

    It reaches most flip-flops of the design. On the ECP5 it goes through a
    DCCA onto a global line; as a fabric net (thousands of loads on the
    12x12 top) it was the critical path."""
    m.domains.reset = ClockDomain("reset")
    m.d.comb += ClockSignal("reset").eq(ClockSignal("sync"))
    m.submodules.reset = ResetSynchronizer(arst, domain="reset")
    if board.family == "ecp5":
        site = {} if board.reset_dcc is None else {"a_BEL": board.reset_dcc}
        m.submodules.reset_buffer = Instance("DCCA", **site,
                                             i_CLKI=ResetSignal("reset"), i_CE=1,
                                             o_CLKO=ResetSignal("sync"))
    else:
        m.d.comb += ResetSignal("sync").eq(ResetSignal("reset"))


def board_verilog(board, *, image="accel", name="board_top"):
    """Verilog text of the BoardTop of `board`, elaborated for the board's FPGA
    (`board` is the platform: its `family` selects primitives such as the PEs'
    DSPs on the ECP5)."""
    return verilog.convert(BoardTop(board, image=image), name=name, platform=board)
