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
