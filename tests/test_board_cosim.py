"""End to end on a simulated board: the driver's `BoardTransport` talks over a
pseudo-terminal to the UART bridge of the board core running in Verilator
(sim/board_sim.py) and runs layers bit exact; damaged, truncated and lost
frames are rejected by the bridge and reported by the driver, without hanging.

The Verilator build is cached (build/verilator/board-*), so only the first
run pays for it.
"""

import numpy as np
import pytest
import serial

from hw.board.protocol import Status, encode_request, encode_response
from hw.config import AccelConfig, REG
from sim.board_sim import SIM_CLK_HZ, BoardSim
from sw_driver.board import BoardTransport, BridgeError
from sw_driver.driver import Accelerator
from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.quant import requantize
from sw_driver.reference import conv2d_reference, conv_transpose2d_reference
from sw_driver.transport import DoneTimeout, Transport, TransportError

# Requantisation as on the FPGA boards: fewer lanes than columns, DSP-style digits.
CFG = AccelConfig(rows=4, cols=4, kernel_max=3, stride_max=2, in_depth=256, acc_depth=64,
                  requant_lanes=2, requant_digit_bits=16)
MEM_BYTES = 64 << 10
IDLE_CYCLES = 20_000


@pytest.fixture(scope="module")
def board():
    with BoardSim(CFG, mem_bytes=MEM_BYTES, idle_cycles=IDLE_CYCLES) as sim:
        yield sim


@pytest.fixture
def transport(board):
    with BoardTransport(board.port, board.baudrate, timeout=60) as t:
        yield t


class FaultySerial:
    """A pyserial port that damages the next frame written: `flip` XORs byte
    `index` with `mask`, `cut` keeps only the first `index` bytes, `drop`
    loses it."""

    def __init__(self, port):
        self.port = serial.Serial(port, 1_000_000, timeout=0.05)
        self.fault = None

    def write(self, data):
        fault, self.fault = self.fault, None
        data = bytearray(data)
        if fault is not None:
            kind, index, mask = fault
            if kind == "flip":
                data[index] ^= mask
            elif kind == "cut":
                data = data[:index]
            else:
                data = b""
        return self.port.write(bytes(data))

    def read(self, count):
        return self.port.read(count)

    def reset_input_buffer(self):
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()


def test_transport_basics(transport):
    assert isinstance(transport, Transport)
    assert transport.mem_size == MEM_BYTES
    assert transport.clk_hz == SIM_CLK_HZ and transport.idle_cycles == IDLE_CYCLES
    assert transport.read_reg(REG["MAGIC"]) == 0x434E5641
    assert transport.read_reg(REG["HW_ROWS"]) == CFG.rows
    transport.write_reg(REG["DESC"], 0x12345678)
    assert transport.read_reg(REG["DESC"]) == 0x12345678
    data = np.random.default_rng(1).integers(0, 256, 700, dtype=np.uint8).tobytes()
    transport.write_mem(MEM_BYTES - 701, data)       # several frames, unaligned
    assert transport.read_mem(MEM_BYTES - 701, 700) == data
    with pytest.raises(ValueError, match="outside"):
        transport.read_mem(MEM_BYTES - 4, 8)


def test_deconv_bit_exact(transport):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 6, 4, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (6, 5, 3, 3), dtype=np.int8)
    bias = rng.integers(-3000, 3000, 5).astype(np.int32)
    mult = rng.integers(1 << 29, (1 << 31) - 1, 5).astype(np.int32)
    shift = rng.integers(4, 10, 5).astype(np.int32)
    requant = dict(multiplier=mult, shift=shift, zero_point=3, act_min=-120, act_max=110)
    accel = Accelerator(transport)
    y, stats = accel.conv_transpose2d(x, w, bias, stride=2, padding=1, output_padding=1,
                                      method="split", requant=requant)
    params = ConvTranspose2dParams(6, 5, 3, stride=2, padding=1, output_padding=1)
    acc = conv_transpose2d_reference(x, w, bias, params)
    expected = np.moveaxis(requantize(np.moveaxis(acc, 1, -1), mult, shift, 3, -120, 110), -1, 1)
    assert np.array_equal(y, expected)
    assert stats["descriptors"] >= 4 and stats["cycles"] > 0


def test_conv_int32_bit_exact(transport):
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 5, 6, 6), dtype=np.int8)
    w = rng.integers(-128, 128, (7, 5, 3, 3), dtype=np.int8)
    bias = rng.integers(-3000, 3000, 7).astype(np.int32)
    y, _ = Accelerator(transport).conv2d(x, w, bias, stride=2, padding=1)
    assert np.array_equal(y, conv2d_reference(x, w, bias, Conv2dParams(5, 7, 3, stride=2,
                                                                          padding=1)))


def test_wait_done_timeout(transport):
    transport.write_reg(REG["IRQ_ENABLE"], 0)
    with pytest.raises(DoneTimeout, match="1000 cycles"):
        transport.wait_done(1000)
    transport.write_reg(REG["IRQ_ENABLE"], 1)


def test_damaged_frames_are_rejected_and_reported(board):
    faulty = FaultySerial(board.port)
    with BoardTransport(serial=faulty, baudrate=board.baudrate, timeout=60) as t:
        t.write_mem(0, b"\x11" * 16)
        faulty.fault = ("flip", 12, 0x40)          # a payload byte
        with pytest.raises(BridgeError, match="CRC") as error:
            t.write_mem(0, b"\x22" * 16)
        assert error.value.status == "CRC"
        assert t.read_mem(0, 16) == b"\x11" * 16   # nothing was written
        faulty.fault = ("cut", 11, 0)              # the frame stops in its payload
        with pytest.raises(BridgeError, match="TRUNCATED"):
            t.write_mem(0, b"\x33" * 16)
        faulty.fault = ("flip", 8, 0x10)           # LEN high byte: 16 + 4096
        with pytest.raises(BridgeError, match="LENGTH"):
            t.write_mem(0, b"\x44" * 16)
        faulty.fault = ("flip", 1, 0x70)           # CMD becomes unknown: CRC fails first
        with pytest.raises(BridgeError, match="CRC"):
            t.read_reg(REG["MAGIC"])
        assert t.read_mem(0, 16) == b"\x11" * 16
        assert t.read_reg(REG["MAGIC"]) == 0x434E5641


def test_lost_frame_times_out(board):
    faulty = FaultySerial(board.port)
    with BoardTransport(serial=faulty, baudrate=board.baudrate, timeout=1.0) as t:
        faulty.fault = ("drop", 0, 0)
        with pytest.raises(TransportError, match="no complete response"):
            t.read_reg(REG["MAGIC"])
        assert t.read_reg(REG["MAGIC"]) == 0x434E5641


def test_unknown_command_is_answered(board):
    port = serial.Serial(board.port, 1_000_000, timeout=5)
    try:
        port.reset_input_buffer()
        port.write(encode_request(0x42, 9))
        expected = encode_response(Status.COMMAND, 9)
        assert port.read(len(expected)) == expected
    finally:
        port.close()


def test_open_failures():
    with pytest.raises(TransportError, match="cannot open serial port"):
        BoardTransport("/dev/nonexistent-serial-port", 115200)
    with pytest.raises(ValueError, match="baudrate"):
        BoardTransport("/dev/null", 0)
    with pytest.raises(ValueError, match="either"):
        BoardTransport()
