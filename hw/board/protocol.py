"""The UART bridge protocol, shared by the bridge (`hw.board.bridge`) and the
host (`sw_driver.board`). Plain Python: no Amaranth here.

Request (host to board), multi-byte fields little endian:

    SYNC_REQUEST  CMD  TAG  ADDR[4]  LEN[2]  PAYLOAD[n]  CRC[2]

Response (board to host):

    SYNC_RESPONSE  STATUS  TAG  LEN[2]  PAYLOAD[LEN]  CRC[2]

CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
reflection, no final XOR) over every byte after the sync byte up to the end of
the payload, sent most significant byte first, so the CRC of a whole frame
after its sync byte is 0. TAG is chosen by the host and echoed, so the host
can tell a late response to an earlier request from the one it waits for.

Commands (`n` is the request's payload length: LEN for the write commands,
0 for the others):

    INFO       LEN 0          -> INFO_FORMAT payload (identification)
    READ_REG   ADDR, LEN 4    -> 4 bytes: the AXI4-Lite register at ADDR
    WRITE_REG  ADDR, LEN 4, 4 payload bytes: AXI4-Lite write  -> no payload
    READ_MEM   ADDR, LEN      -> LEN bytes of memory from ADDR
    WRITE_MEM  ADDR, LEN, LEN payload bytes -> no payload
    WAIT       ADDR = max cycles, LEN 0 -> 4 bytes: cycles waited until the
               accelerator's irq was high (status OK), or max cycles (TIMEOUT)

A frame is checked in this order, the first failure giving the status:

    UART       a byte of the frame had a bad stop bit
    TRUNCATED  the line went idle (`idle_cycles` without a byte) inside a frame
    LENGTH     a write command with LEN above the bridge's max payload
    CRC        the CRC does not match
    COMMAND    CMD is unknown
    LENGTH     LEN is wrong for CMD (INFO and WAIT: 0; registers: 4;
               memory: 1..max payload)
    ADDRESS    a register offset not word aligned or beyond the register
               window, or a memory range beyond the memory
    BUS        the AXI4-Lite response was not OKAY

After UART, LENGTH (too long) and CRC errors, where the frame's end is not
known, the bridge discards bytes until the line has been idle for
`idle_cycles` and only then responds. Every error response has no payload.
"""

import struct

__all__ = ["SYNC_REQUEST", "SYNC_RESPONSE", "Command", "Status", "STATUS_NAMES",
           "REQUEST_HEADER", "RESPONSE_HEADER", "CRC_BYTES", "INFO_MAGIC", "INFO_FORMAT",
           "INFO_BYTES", "PROTOCOL_VERSION", "REGISTER_WINDOW", "crc16", "encode_request",
           "encode_response", "payload_length"]

SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
REQUEST_HEADER = 9          # sync, cmd, tag, addr[4], len[2]
RESPONSE_HEADER = 5         # sync, status, tag, len[2]
CRC_BYTES = 2
REGISTER_WINDOW = 0x1000    # bytes of the accelerator's AXI4-Lite register space
PROTOCOL_VERSION = 1

# INFO payload: magic, protocol version, max payload, memory bytes, clock Hz,
# idle cycles (the bridge's inter-byte timeout).
INFO_MAGIC = 0x42564E43     # "CNVB", little endian
INFO_FORMAT = "<IHHIII"
INFO_BYTES = struct.calcsize(INFO_FORMAT)


class Command:
    INFO = 0x01
    READ_REG = 0x02
    WRITE_REG = 0x03
    READ_MEM = 0x04
    WRITE_MEM = 0x05
    WAIT = 0x06


class Status:
    OK = 0x00
    CRC = 0x01
    COMMAND = 0x02
    LENGTH = 0x03
    ADDRESS = 0x04
    TRUNCATED = 0x05
    UART = 0x06
    TIMEOUT = 0x07
    BUS = 0x08


STATUS_NAMES = {value: name for name, value in vars(Status).items() if name.isupper()}

_WRITE_COMMANDS = (Command.WRITE_REG, Command.WRITE_MEM)


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of `data`, continuing from `crc`."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def payload_length(command, length):
    """Payload bytes a request with `command` and LEN `length` carries."""
    return length if command in _WRITE_COMMANDS else 0


def _with_crc(sync, body):
    return bytes([sync]) + body + crc16(body).to_bytes(2, "big")


def encode_request(command, tag, addr=0, length=0, payload=b""):
    """A request frame. `payload` must have `payload_length(command, length)` bytes."""
    payload = bytes(payload)
    if len(payload) != payload_length(command, length):
        raise ValueError(f"command {command:#x} with LEN {length} carries "
                         f"{payload_length(command, length)} payload bytes, not {len(payload)}")
    body = struct.pack("<BBIH", command, tag, addr, length) + payload
    return _with_crc(SYNC_REQUEST, body)


def encode_response(status, tag, payload=b""):
    """A response frame (what the bridge sends; used by tests and models)."""
    payload = bytes(payload)
    return _with_crc(SYNC_RESPONSE, struct.pack("<BBH", status, tag, len(payload)) + payload)
