"""The ECP5's MULT18X18D as a registered multiplier (`ecp5_multiplier`).

yosys maps a `*` to a MULT18X18D but leaves the registers around it in the
fabric: the route from an operand register into the DSP and from the DSP
out to the product register then both lie on one path. Instantiated here, the
DSP's own input and output registers hold the operands and the product, so
no path has both routes.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Shape, Signal

__all__ = ["ECP5_DSP_WIDTH", "ecp5_multiplier"]

# Operand width of the ECP5's MULT18X18D.
ECP5_DSP_WIDTH = 18


def ecp5_multiplier(m, a, b, name):
    """`a * b` from one MULT18X18D (submodule `name` of `m`) with its input
    and output registers: the product of the operands driven before a clock
    edge appears two edges later (latency 2), as `a * b` between two
    registers would. `a` and `b` are both signed or both unsigned, at most
    18 bits; returns the product, `len(a) + len(b)` bits of that signedness.

    The operands go to the top bits of A and B, zeros below: the DSP computes
    `a * b * 2**(low_a + low_b)`, so the product is P's top bits. Constant
    inputs are configuration bits of the DSP, not routed wires, while a sign
    or zero extension would route a signal to every upper input (where the
    12x12 array's routing is congested)."""
    a_shape, b_shape = Shape.cast(a.shape()), Shape.cast(b.shape())
    if a_shape.signed != b_shape.signed:
        raise TypeError(f"a and b must be both signed or both unsigned, not {a_shape} and "
                        f"{b_shape}")
    for operand, shape in (("a", a_shape), ("b", b_shape)):
        if not 1 <= shape.width <= ECP5_DSP_WIDTH:
            raise ValueError(f"{operand} must be 1..{ECP5_DSP_WIDTH} bits wide, not "
                             f"{shape.width}")
    low_a, low_b = ECP5_DSP_WIDTH - a_shape.width, ECP5_DSP_WIDTH - b_shape.width
    wide_a, wide_b = Cat(Const(0, low_a), a), Cat(Const(0, low_b), b)
    p = Signal(2 * ECP5_DSP_WIDTH, name=f"{name}_p")
    product = Signal(Shape(a_shape.width + b_shape.width, a_shape.signed), name=f"{name}_product")
    m.d.comb += product.eq(p[low_a + low_b:])
    ports = {f"i_A{i}": wide_a[i] for i in range(ECP5_DSP_WIDTH)}
    ports.update({f"i_B{i}": wide_b[i] for i in range(ECP5_DSP_WIDTH)})
    ports.update({f"i_C{i}": Const(0) for i in range(ECP5_DSP_WIDTH)})
    ports.update({f"o_P{i}": p[i] for i in range(2 * ECP5_DSP_WIDTH)})
    registers = {f"p_REG_{reg}_{what}": value
                 for reg in ("INPUTA", "INPUTB", "OUTPUT")
                 for what, value in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))}
    # nextpnr routes a MULT18X18D's constant CE, RST, SIGNED and SOURCE inputs
    # from one chip-wide constant net each (its A, B and C inputs it ties
    # off in the DSP); LUTs beside the DSP drive them instead.
    one, zero = _local_constant(m, f"{name}_one", 1), _local_constant(m, f"{name}_zero", 0)
    signed = one if a_shape.signed else zero
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_GSR="DISABLED", p_RESETMODE="SYNC", **registers,
        i_SIGNEDA=signed, i_SIGNEDB=signed, i_SOURCEA=zero, i_SOURCEB=zero,
        i_CLK0=ClockSignal("sync"), i_CE0=one, i_RST0=zero,
        **ports)
    return product


def _local_constant(m, name, value):
    """A LUT4 without inputs that outputs `value`: a constant driver of its own."""
    out = Signal(name=name)
    m.submodules[name] = Instance("LUT4", p_INIT=Const(0xFFFF if value else 0, 16),
                                  i_A=0, i_B=0, i_C=0, i_D=0, o_Z=out)
    return out
