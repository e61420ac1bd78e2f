"""A behavioural model of the ECP5's MULT18X18D for the simulator, and a
wrapper that elaborates a design for the ULX3S with the model in place of
the DSP instances (`hw.dsp.ecp5_multiplier`)."""

from amaranth.hdl import Cat, Elaboratable, Fragment, Module, Signal

import hw.dsp
from hw.board.boards import get_board


class MULT18X18DModel(Elaboratable):
    """Behaviour of the ECP5's MULT18X18D as `ecp5_multiplier` configures it, from Lattice's
    sysDSP user guide: P = A * B (18 x 18 -> 36 bits, signed by SIGNEDA/B),
    A, B and P each registered on CLK0 when their REG_*_CLK is "CLK0". Anything
    else it does not use is refused, so the model cannot pass silently."""

    def __init__(self, kind, **ports):
        assert kind == "MULT18X18D"
        self.ports = ports

    def elaborate(self, platform):
        ports = self.ports
        assert (ports["i_CE0"], ports["i_RST0"], ports["i_SOURCEA"], ports["i_SOURCEB"]) == (1, 0, 0, 0)
        assert all(int(ports[f"i_C{i}"].value) == 0 for i in range(18))
        assert {name for name, value in ports.items()
                if name.startswith("p_REG_") and name.endswith("_CLK")} == \
            {"p_REG_INPUTA_CLK", "p_REG_INPUTB_CLK", "p_REG_OUTPUT_CLK"}
        m = Module()

        def operand(name):
            value = Cat(ports[f"i_{name}{i}"] for i in range(18))
            value = value.as_signed() if ports[f"i_SIGNED{name}"] else value
            if ports[f"p_REG_INPUT{name}_CLK"] != "CLK0":
                return value
            registered = Signal(value.shape())
            m.d.sync += registered.eq(value)
            return registered

        product = Signal(36)
        if ports["p_REG_OUTPUT_CLK"] == "CLK0":
            m.d.sync += product.eq(operand("A") * operand("B"))
        else:
            m.d.comb += product.eq(operand("A") * operand("B"))
        m.d.comb += [ports[f"o_P{i}"].eq(product[i]) for i in range(36)]
        return m


class OnPlatform(Elaboratable):
    """Elaborates `inner` for `platform` (the simulator elaborates for None)."""

    def __init__(self, inner, platform):
        self.inner, self.platform = inner, platform

    def elaborate(self, platform):
        return Fragment.get(self.inner, self.platform)


def on_modelled_ecp5(design, monkeypatch):
    """`design` elaborated for the ULX3S (an ECP5), its MULT18X18Ds simulated by the model."""
    monkeypatch.setattr(hw.dsp, "Instance", MULT18X18DModel)
    return OnPlatform(design, get_board("ulx3s"))
