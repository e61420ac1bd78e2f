"""8N1 UART transmitter and receiver with a fixed divisor (clock cycles per bit).

Both ends are byte streams (`amaranth.lib.stream`, 8-bit payload). A byte on
the line is a start bit (0), eight data bits LSB first and a stop bit (1), each
`divisor` clock cycles long; the line idles high.

`UARTTx` sends a byte every `10 * divisor` cycles when fed back to back: it
takes a byte (`data.ready` high) when idle or in the last cycle of the
previous stop bit, and the start bit begins on the next clock edge.

`UARTRx` synchronises `rx` with two flip-flops, detects the falling edge of a
start bit, checks the start bit again half a bit later and samples each data
bit and the stop bit in the middle. A byte whose stop bit reads 0 is dropped
and flagged on `error` (framing error: wrong baud rate, noise or a break).
A received byte waits in a one-byte register (`data.valid`) until taken; a
byte arriving before the previous one was taken replaces it.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "MIN_DIVISOR", "divisor_for"]

MIN_DIVISOR = 4
MAX_BAUD_ERROR = 0.02


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer >= {MIN_DIVISOR} (clock cycles per bit), "
                         f"not {divisor!r}")


def divisor_for(clk_hz, baudrate):
    """The divisor (clock cycles per bit) for `baudrate` at `clk_hz`.

    Raises ValueError when the nearest divisor is below MIN_DIVISOR or misses
    the baud rate by more than 2 % (a receiver then samples the wrong bits
    towards the end of a byte).
    """
    for name, value in (("clk_hz", clk_hz), ("baudrate", baudrate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    divisor = round(clk_hz / baudrate)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud rate {baudrate} is too high for a {clk_hz / 1e6:g} MHz clock: "
                         f"at least {MIN_DIVISOR} clock cycles per bit are needed")
    error = abs(clk_hz / divisor - baudrate) / baudrate
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud rate {baudrate} cannot be made from a {clk_hz / 1e6:g} MHz clock: "
                         f"the nearest divisor {divisor} gives {clk_hz / divisor:.0f} baud "
                         f"({100 * error:.1f} % off, at most {100 * MAX_BAUD_ERROR:g} % allowed)")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Members:
      data: In(stream.Signature(8)), the bytes to send
      tx: Out(1), the serial line (idles high), driven from a register
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        shift = Signal(9)                    # data bits then the stop bit, next one at bit 0
        bits_left = Signal(range(11))        # bit periods left, the current one included
        timer = Signal(range(divisor))       # cycles left in the current bit period

        # Ready when idle or in the last cycle of a stop bit: bytes follow without a gap.
        m.d.comb += self.data.ready.eq((bits_left == 0) | (bits_left == 1) & (timer == 0))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(Cat(self.data.payload, 1)),
                bits_left.eq(10),
                timer.eq(divisor - 1),
            ]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [bits_left.eq(bits_left - 1), timer.eq(divisor - 1)]
                with m.If(bits_left != 1):
                    m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver.

    Members:
      rx: In(1), the serial line (asynchronous; idles high)
      data: Out(stream.Signature(8)), the bytes received
      error: Out(1), one-cycle pulse when a byte is dropped for a bad stop bit
      busy: Out(1), a byte is being received (from its start bit to the middle
        of its stop bit)
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        bit = Signal(range(10))              # 0 start, 1..8 data, 9 stop
        timer = Signal(range(divisor))
        shift = Signal(8)

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [bit.eq(0), timer.eq(divisor // 2 - 1)]
                    m.next = "BITS"
            with m.State("BITS"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(bit + 1)]
                    with m.If(bit == 0):
                        with m.If(line):             # a glitch, not a start bit
                            m.next = "IDLE"
                    with m.Elif(bit != 9):
                        m.d.sync += shift.eq(Cat(shift[1:], line))
                    with m.Else():
                        with m.If(line):
                            m.d.sync += [self.data.valid.eq(1), self.data.payload.eq(shift)]
                        with m.Else():
                            m.d.comb += self.error.eq(1)
                        m.next = "IDLE"
        return m
