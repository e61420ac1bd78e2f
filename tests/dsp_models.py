"""A behavioural model of the ECP5's MULT18X18D for the simulator, and a
wrapper that elaborates a design for the ULX3S with the model in place of
the DSP instances (`hw.dsp.ecp5_multiplier`)."""

from amaranth.hdl import Assert, Cat, Const, Elaboratable, Fragment, Module, Mux, Signal

import hw.dsp
from hw.board.boards import get_board


class MULT18X18DModel(Elaboratable):
    """Behaviour of the ECP5's MULT18X18D as `ecp5_multiplier` configures it, from Lattice's
    sysDSP user guide: P = A * B (18 x 18 -> 36 bits, each operand signed when
    its SIGNED input is high), A, B and P each registered on CLK0 when their
    REG_*_CLK is "CLK0", the registers loading while CE0 is high and cleared
    while RST0 is (synchronous reset). Anything else `ecp5_multiplier` does
    not use is refused, so the model cannot pass silently."""

    def __init__(self, **ports):
        self.ports = ports

    def elaborate(self, platform):
        ports = self.ports
        assert ports["p_RESETMODE"] == "SYNC"
        assert all(int(ports[f"i_C{i}"].value) == 0 for i in range(18))
        assert {name for name, value in ports.items()
                if name.startswith("p_REG_") and name.endswith("_CLK")} == \
            {"p_REG_INPUTA_CLK", "p_REG_INPUTB_CLK", "p_REG_OUTPUT_CLK"}
        for name, value in ports.items():
            if name.startswith("p_REG_"):
                assert value == {"CLK": "CLK0", "CE": "CE0", "RST": "RST0"}[name.rsplit("_", 1)[1]]
        m = Module()
        enable, reset = ports["i_CE0"], ports["i_RST0"]
        m.d.comb += Assert(~ports["i_SOURCEA"] & ~ports["i_SOURCEB"])

        def registered(value):
            register = Signal(value.shape())
            with m.If(reset):
                m.d.sync += register.eq(0)
            with m.Elif(enable):
                m.d.sync += register.eq(value)
            return register

        def operand(name):
            value = Cat(ports[f"i_{name}{i}"] for i in range(18))
            return registered(Cat(value, Mux(ports[f"i_SIGNED{name}"], value[17], 0)).as_signed())

        product = registered(operand("A") * operand("B"))
        m.d.comb += [ports[f"o_P{i}"].eq(product[i]) for i in range(36)]
        return m


class LUT4Model(Elaboratable):
    """The ECP5's LUT4: Z is bit {D,C,B,A} of INIT."""

    def __init__(self, **ports):
        self.ports = ports

    def elaborate(self, platform):
        ports = self.ports
        m = Module()
        index = Cat(ports["i_A"], ports["i_B"], ports["i_C"], ports["i_D"])
        m.d.comb += ports["o_Z"].eq(ports["p_INIT"].as_unsigned().bit_select(index, 1))
        return m


def model_instance(kind, **ports):
    """A model in place of the Instance of `kind` that `hw.dsp` makes."""
    return {"MULT18X18D": MULT18X18DModel, "LUT4": LUT4Model}[kind](**ports)


class OnPlatform(Elaboratable):
    """Elaborates `inner` for `platform` (the simulator elaborates for None)."""

    def __init__(self, inner, platform):
        self.inner, self.platform = inner, platform

    def elaborate(self, platform):
        return Fragment.get(self.inner, self.platform)


def on_modelled_ecp5(design, monkeypatch):
    """`design` elaborated for the ULX3S (an ECP5), its MULT18X18Ds simulated by the model."""
    monkeypatch.setattr(hw.dsp, "Instance", model_instance)
    return OnPlatform(design, get_board("ulx3s"))
