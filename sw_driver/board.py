"""Board backend of the driver: `BoardTransport` talks to the UART bridge of a
board top (`hw.board`) over a serial port.

    with BoardTransport("/dev/ttyUSB1", 1_000_000) as t:
        accel = Accelerator(t)

Every call is one or more request/response exchanges of the protocol in
`hw.board.protocol`. Memory transfers are cut into requests of at most the
bridge's max payload. `wait_done` asks the bridge to watch the irq line
(WAIT), so it returns the cycles waited, counted by the board.

Failures never hang and always raise `TransportError` (`DoneTimeout` for a
WAIT that ran out of cycles): a response that does not come within the
time-out, a response with a bad CRC or sync byte, or a bridge that rejected
the request (its status: CRC, TRUNCATED, UART, ...). Before each request
the input buffer is flushed, and responses carrying another request's tag
(late answers to a request that timed out) are skipped.
"""

import struct
import time

from hw.board.protocol import (CRC_BYTES, Command, INFO_BYTES, INFO_FORMAT, INFO_MAGIC,
                               PROTOCOL_VERSION, REGISTER_WINDOW, RESPONSE_HEADER,
                               STATUS_NAMES, SYNC_RESPONSE, Status, crc16, encode_request)

from .transport import DoneTimeout, Transport, TransportError

__all__ = ["BoardTransport", "BridgeError", "DEFAULT_BAUDRATE"]

DEFAULT_BAUDRATE = 1_000_000
# A rejection the bridge may send with a damaged tag: accepted whatever the tag.
_FRAME_ERRORS = (Status.CRC, Status.TRUNCATED, Status.UART, Status.LENGTH)


class BridgeError(TransportError):
    """The bridge rejected a request; `status` is its STATUS_NAMES name."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class BoardTransport(Transport):
    """`Transport` to a board over its UART bridge.

    port: a serial device (e.g. /dev/ttyUSB1) or any pyserial URL
    baudrate: the bridge's baud rate (the board top's `baudrate`)
    timeout: seconds allowed on top of the transfer time of each exchange
      (the time the bytes take on the line at `baudrate`, and for WAIT the
      cycles at the board's clock)
    serial: an open pyserial-like object to use instead of opening `port`
      (read, write, reset_input_buffer, close; `read` must return what it has
      after a short time, as pyserial's does with a read timeout)
    """

    def __init__(self, port=None, baudrate=DEFAULT_BAUDRATE, *, timeout=2.0, serial=None):
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, not {baudrate!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if (port is None) == (serial is None):
            raise ValueError("give either a serial port name or an open serial object")
        if serial is None:
            import serial as pyserial
            try:
                serial = pyserial.serial_for_url(port, baudrate=baudrate, timeout=0.05)
            except (pyserial.SerialException, ValueError) as error:
                raise TransportError(f"cannot open serial port {port}: {error}") from error
        self.port = port
        self.baudrate = baudrate
        self.timeout = float(timeout)
        self._serial = serial
        self._tag = 0
        self._closed = False
        try:
            info = self._exchange(Command.INFO, 0, 0, expect=INFO_BYTES)
        except TransportError:
            self.close()
            raise
        magic, version, self.max_payload, self._mem_size, self.clk_hz, self.idle_cycles = \
            struct.unpack(INFO_FORMAT, info)
        if magic != INFO_MAGIC or version != PROTOCOL_VERSION:
            self.close()
            raise TransportError(f"{port}: not a supported bridge (magic {magic:#010x}, "
                                 f"protocol {version})")

    # ------------------------------------------------------------ Transport
    def write_reg(self, offset, value):
        _check_reg(offset)
        if not 0 <= value < 1 << 32:
            raise ValueError(f"register value out of range: {value}")
        self._exchange(Command.WRITE_REG, offset, 4, value.to_bytes(4, "little"))

    def read_reg(self, offset):
        _check_reg(offset)
        return int.from_bytes(self._exchange(Command.READ_REG, offset, 4, expect=4), "little")

    def write_mem(self, addr, data):
        data = bytes(data)
        self._check_range(addr, len(data))
        for start in range(0, len(data), self.max_payload):
            chunk = data[start:start + self.max_payload]
            self._exchange(Command.WRITE_MEM, addr + start, len(chunk), chunk)

    def read_mem(self, addr, length):
        self._check_range(addr, length)
        parts = []
        for start in range(0, length, self.max_payload):
            count = min(self.max_payload, length - start)
            parts.append(self._exchange(Command.READ_MEM, addr + start, count, expect=count))
        return b"".join(parts)

    def wait_done(self, max_cycles):
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 0:
            raise ValueError(f"max_cycles must be an int >= 0, not {max_cycles!r}")
        waited = 0
        while True:                          # WAIT counts at most 2**32 - 1 cycles
            step = min(max_cycles - waited, (1 << 32) - 1)
            try:
                cycles = self._exchange(Command.WAIT, step, 0, expect=4,
                                        seconds=step / self.clk_hz)
                return waited + int.from_bytes(cycles, "little")
            except BridgeError as error:
                if error.status != "TIMEOUT":
                    raise
            waited += step
            if waited >= max_cycles:
                raise DoneTimeout(f"irq not raised within {max_cycles} cycles")

    @property
    def mem_size(self):
        return self._mem_size

    def close(self):
        if not self._closed:
            self._closed = True
            self._serial.close()

    # -------------------------------------------------------------- protocol
    def _exchange(self, command, addr, length, payload=b"", *, expect=0, seconds=0.0):
        """Send one request and return the payload of its OK response."""
        if self._closed:
            raise TransportError("the board transport is closed")
        self._tag = (self._tag + 1) & 0xFF
        tag = self._tag
        frame = encode_request(command, tag, addr, length, payload)
        line_seconds = 10 * (len(frame) + RESPONSE_HEADER + expect + CRC_BYTES) / self.baudrate
        deadline = time.monotonic() + self.timeout + line_seconds + seconds
        try:
            self._serial.reset_input_buffer()
            self._serial.write(frame)
        except OSError as error:
            raise TransportError(f"serial port write failed: {error}") from error
        name = _COMMAND_NAMES[command]
        while True:
            status, got_tag, body = self._read_response(deadline, name)
            if got_tag == tag or (status != Status.OK and status in _FRAME_ERRORS):
                break
        if status == Status.TIMEOUT and command == Command.WAIT:
            raise BridgeError("WAIT ran out of cycles", "TIMEOUT")
        if status != Status.OK:
            status_name = STATUS_NAMES.get(status, f"unknown status {status:#04x}")
            raise BridgeError(f"the bridge rejected {name} at {addr:#x} (length {length}): "
                              f"{status_name}", status_name)
        if len(body) != expect:
            raise TransportError(f"{name}: expected {expect} payload bytes, got {len(body)}")
        return body

    def _read_exact(self, count, deadline, what):
        data = bytearray()
        while len(data) < count:
            if time.monotonic() > deadline:
                raise TransportError(f"no complete response to {what} from the board "
                                     f"(got {len(data)} of {count} bytes before the time-out)")
            try:
                data += self._serial.read(count - len(data))
            except OSError as error:
                raise TransportError(f"serial port read failed: {error}") from error
        return bytes(data)

    def _read_response(self, deadline, what):
        """(status, tag, payload) of the next response frame."""
        skipped = 0
        while self._read_exact(1, deadline, what)[0] != SYNC_RESPONSE:
            skipped += 1
        head = self._read_exact(RESPONSE_HEADER - 1, deadline, what)
        status, tag, length = struct.unpack("<BBH", head)
        rest = self._read_exact(length + CRC_BYTES, deadline, what)
        if crc16(head + rest) != 0:
            raise TransportError(f"corrupted response to {what} (CRC mismatch"
                                 f"{f', {skipped} stray bytes before it' if skipped else ''})")
        return status, tag, rest[:length]

    def _check_range(self, addr, length):
        if addr < 0 or length < 0 or addr + length > self._mem_size:
            raise ValueError(f"memory range 0x{addr:x}+{length} outside "
                             f"0..0x{self._mem_size:x}")


_COMMAND_NAMES = {value: name for name, value in vars(Command).items() if name.isupper()}


def _check_reg(offset):
    if not (0 <= offset < REGISTER_WINDOW) or offset % 4:
        raise ValueError(f"register offset must be a multiple of 4 below "
                         f"{REGISTER_WINDOW:#x}: {offset!r}")
