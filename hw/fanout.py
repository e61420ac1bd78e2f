"""Registered copies of a control signal, each driving a part of its fan-out.

One register whose output reaches hundreds of flip-flops over the chip is a
long route on an FPGA (nextpnr does not duplicate registers); copies of it,
each loading the same value, let each part of the fan-out have its own. Such
copies are identical, so synthesis would merge them back into one: they
carry a `keep` attribute, which the board flow (`hw.board.synth`) turns into
kept cells (the Arty's Vivado project gets the same attribute on each
register in its Verilog).
"""

from amaranth import Signal, Value

__all__ = ["registered_copies"]


def registered_copies(m, value, count, name, *, reset_less=False):
    """`count` registers `name`_0.. each loaded with `value` every cycle (so
    each is `value` one cycle late); `reset_less` for data, whose valid bits
    are reset beside it."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    shape = Value.cast(value).shape()
    copies = [Signal(shape, name=f"{name}_{index}", reset_less=reset_less,
                     attrs={"keep": 1}) for index in range(count)]
    m.d.sync += [copy.eq(value) for copy in copies]
    return copies
