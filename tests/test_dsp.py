"""`hw.dsp.ecp5_multiplier`'s refusals (its products are checked through the
PE and the requantisation lane, `tests/test_pe.py`, `tests/test_requant_hw.py`)."""

import re

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned

from hw.dsp import ecp5_multiplier


@pytest.mark.parametrize("a_shape, b_shape", [(signed(8), unsigned(8)), (unsigned(16), signed(16))])
def test_refuses_mixed_signedness(a_shape, b_shape):
    with pytest.raises(TypeError, match=re.escape(
            f"a and b must be both signed or both unsigned, not {a_shape} and {b_shape}")):
        ecp5_multiplier(Module(), Signal(a_shape), Signal(b_shape), "dsp")


@pytest.mark.parametrize("operand, widths", [("a", (19, 8)), ("b", (16, 32))])
def test_refuses_operands_wider_than_the_dsp(operand, widths):
    a, b = (Signal(width) for width in widths)
    width = dict(zip("ab", widths))[operand]
    with pytest.raises(ValueError, match=f"^{operand} must be 1..18 bits wide, not {width}$"):
        ecp5_multiplier(Module(), a, b, "dsp")


@pytest.mark.parametrize("shape, signed_by", [(signed(8), "one"), (unsigned(16), "zero")])
def test_constant_inputs_come_from_the_dsps_own_luts(shape, signed_by):
    """CE0, RST0, SIGNEDA/B and SOURCEA/B, which nextpnr would route from one
    chip-wide constant net, are driven by two LUT4s of the multiplier's own."""
    from amaranth.back import rtlil
    from amaranth.hdl import Elaboratable

    class One(Elaboratable):
        def __init__(self):
            self.a, self.b, self.p = Signal(shape), Signal(shape), Signal(2 * shape.width)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.p.eq(ecp5_multiplier(m, self.a, self.b, "dsp"))
            return m

    top = One()
    text = rtlil.convert(top, name="top", ports=[top.a, top.b, top.p])
    assert text.count("cell \\LUT4") == 2
    assert "parameter \\INIT 16'1111111111111111" in text
    assert "parameter \\INIT 16'0000000000000000" in text
    for port, driver in [("CE0", "one"), ("RST0", "zero"), ("SOURCEA", "zero"),
                         ("SOURCEB", "zero"), ("SIGNEDA", signed_by), ("SIGNEDB", signed_by)]:
        assert f"connect \\{port} \\dsp_{driver} [0]" in text
