"""UART bridge: the host reads and writes the accelerator's registers and the
board's memory through framed, CRC-checked requests (`hw.board.protocol`).

Registers are reached through an AXI4-Lite master (the accelerator's
`s_axil_*` slave); memory through the host port of the on-chip memory
(`hw.sram.AXI4SRAM.host`), which has priority over the accelerator's AXI
traffic, one byte per access. A write frame's payload is buffered and only
committed once its CRC has been checked, so a corrupted frame changes
nothing.

One request is handled at a time: the bridge receives a whole frame, checks
it, executes it, sends the response, and only then looks for the next sync
byte. Bytes that arrive while it executes or responds are dropped (the host
waits for each response).
"""

import struct

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..axi import AXI4LiteSignature, RESP_OKAY
from ..sram import SRAMPortSignature
from ..uart import MIN_DIVISOR, UARTRx, UARTTx
from .protocol import (Command, INFO_FORMAT, INFO_MAGIC, PROTOCOL_VERSION, REGISTER_WINDOW,
                       Status, SYNC_REQUEST, SYNC_RESPONSE, crc16)

__all__ = ["UARTBridge", "crc16_step", "AXIL_ADDR_WIDTH"]

AXIL_ADDR_WIDTH = 12


def _crc_taps():
    """For each CRC register bit after one byte: the register bits and byte bits it
    is the XOR of (the CRC step is linear over GF(2))."""
    taps = []
    for bit in range(16):
        register = [i for i in range(16) if crc16(b"\x00", 1 << i) >> bit & 1]
        data = [i for i in range(8) if crc16(bytes([1 << i]), 0) >> bit & 1]
        taps.append((register, data))
    return taps


_CRC_TAPS = _crc_taps()


def crc16_step(crc, byte):
    """CRC-16/CCITT-FALSE register after shifting in `byte` (Amaranth values):
    one XOR of register and byte bits per result bit."""
    return Cat(Cat(*(crc[i] for i in register), *(byte[i] for i in data)).xor()
               for register, data in _CRC_TAPS)


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")


class UARTBridge(wiring.Component):
    """The board side of the UART protocol.

    Parameters:
      divisor: clock cycles per UART bit (see `hw.uart`)
      idle_cycles: cycles without a received byte that end a frame early
        (TRUNCATED) and that end the discarding after a damaged frame
      mem_depth, data_width: the memory behind `mem` (words, bits per word)
      clk_hz: the clock frequency reported by INFO (the host's time-outs)
      max_payload: largest write payload (the size of the payload buffer) and
        largest READ_MEM length, in bytes

    Members:
      rx: In(1), tx: Out(1), the UART lines
      axil: Out(AXI4LiteSignature(addr_width=12)), register master
      mem: Out(SRAMPortSignature), memory master (byte address a is word
        a // bytes, lane a % bytes)
      irq: In(1), the accelerator's interrupt, watched by WAIT
      active: Out(1), a frame is being received, executed or answered
    """

    def __init__(self, *, divisor, idle_cycles, mem_depth, data_width, clk_hz,
                 max_payload=256):
        _check_int("divisor", divisor, MIN_DIVISOR, 1 << 24)
        _check_int("idle_cycles", idle_cycles, 16, (1 << 32) - 1)
        _check_int("mem_depth", mem_depth, 2, 1 << 26)
        _check_int("clk_hz", clk_hz, 1, (1 << 32) - 1)
        _check_int("max_payload", max_payload, 4, 4096)
        if (isinstance(data_width, bool) or not isinstance(data_width, int)
                or data_width not in (8, 16, 32, 64, 128, 256, 512)):
            raise ValueError(f"data_width must be a power of two in 8..512, not {data_width!r}")
        self.divisor = divisor
        self.idle_cycles = idle_cycles
        self.mem_depth = mem_depth
        self.data_width = data_width
        self.bus_bytes = data_width // 8
        self.mem_bytes = mem_depth * self.bus_bytes
        if self.mem_bytes >= 1 << 32:
            raise ValueError(f"memory of {self.mem_bytes} bytes exceeds the 32-bit address space")
        self.clk_hz = clk_hz
        self.max_payload = max_payload
        self.word_bits = max(1, (mem_depth - 1).bit_length())
        self.rx_unit = UARTRx(divisor)
        self.tx_unit = UARTTx(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "axil": Out(AXI4LiteSignature(addr_width=AXIL_ADDR_WIDTH)),
            "mem": Out(SRAMPortSignature(addr_width=self.word_bits, data_width=data_width)),
            "irq": In(1),
            "active": Out(1),
        })

    def info(self):
        """The INFO response payload."""
        return struct.pack(INFO_FORMAT, INFO_MAGIC, PROTOCOL_VERSION, self.max_payload,
                           self.mem_bytes, self.clk_hz, self.idle_cycles)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx_unit
        m.submodules.tx = tx = self.tx_unit
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        axil, mem = self.axil, self.mem
        lane_bits = (self.bus_bytes - 1).bit_length()

        m.submodules.buffer = buffer = Memory(shape=8, depth=self.max_payload, init=[])
        buf_wr = buffer.write_port()
        buf_rd = buffer.read_port()

        hdr = Signal(64)                     # cmd, tag, addr[4], len[2]
        cmd, tag = hdr[0:8], hdr[8:16]
        addr, length = hdr[16:48], hdr[48:64]
        count = Signal(16)
        crc = Signal(16)
        word = Signal(32)                    # register data, or WAIT's cycle count
        # In WAIT, word == addr (the maximum), kept in a register: the 32-bit
        # compare would otherwise sit on the enables of `word`.
        wait_over = Signal()
        status = Signal(8)
        data_byte = Signal(8)
        mem_word = Signal.like(mem.rdata, reset_less=True)  # READ_MEM: the word read
        m.d.sync += mem_word.eq(mem.rdata)
        aw_done = Signal()
        w_done = Signal()
        ar_done = Signal()

        byte = rx.data.payload
        got = rx.data.valid & rx.data.ready
        idle = Signal(range(self.idle_cycles + 1))
        timeout = idle == self.idle_cycles
        with m.If(rx.busy | rx.data.valid):
            m.d.sync += idle.eq(0)
        with m.Elif(~timeout):
            m.d.sync += idle.eq(idle + 1)

        is_write = (cmd == Command.WRITE_REG) | (cmd == Command.WRITE_MEM)
        # The byte at `count` of a memory access, `addr + count`, kept in a
        # register that steps with `count`: the sum's carry chain in front of
        # the memory's address and lane select was a critical path.
        mem_addr = Signal(range(self.mem_bytes))
        # The memory request from registers, set a state ahead of the state
        # that waits for `mem.ready`: the memory's port multiplexers over its
        # block RAMs do not hang off the FSM's state decode.
        mem_valid = Signal()
        mem_write = Signal()
        lane = mem_addr[:lane_bits] if lane_bits else Const(0, 1)
        m.d.comb += [
            mem.addr.eq(mem_addr[lane_bits:]),
            mem.valid.eq(mem_valid),
            mem.write.eq(mem_write),
            mem.wdata.eq(buf_rd.data.replicate(self.bus_bytes)),
            mem.wstrb.eq(Const(1, self.bus_bytes) << lane),
            buf_wr.addr.eq(count),
            buf_wr.data.eq(byte),
            buf_rd.addr.eq(count),
            axil.awaddr.eq(addr[:AXIL_ADDR_WIDTH]),
            axil.araddr.eq(addr[:AXIL_ADDR_WIDTH]),
            axil.wdata.eq(word),
            axil.wstrb.eq(0b1111),
        ]

        # Lengths and bounds the FSM compares against are registered a state
        # before they are used (DECODE, RESPOND), so its next-state logic
        # does not start with a 16- or 33-bit carry chain.
        last_index = Signal(16)              # length - 1: the payload's last byte
        mem_end = Signal(33)                 # addr + length
        info = Array(Const(b, 8) for b in self.info())
        with_payload = (status == Status.OK) | (status == Status.TIMEOUT)
        response_length = Signal(16)
        with m.Switch(cmd):
            with m.Case(Command.INFO):
                m.d.comb += response_length.eq(Mux(with_payload, len(info), 0))
            with m.Case(Command.READ_REG, Command.WAIT):
                m.d.comb += response_length.eq(Mux(with_payload, 4, 0))
            with m.Case(Command.READ_MEM):
                m.d.comb += response_length.eq(Mux(with_payload, length, 0))
        resp_len = Signal(16)                # response_length, registered in RESPOND
        resp_last = Signal(16)               # resp_len - 1

        def receive_errors():
            """A framing error or an idle line ends a frame being received."""
            with m.If(rx.error):
                m.d.sync += status.eq(Status.UART)
                m.next = "DRAIN"
            with m.Elif(~got & timeout):
                m.d.sync += status.eq(Status.TRUNCATED)
                m.next = "RESPOND"

        def send(value, next_state, update_crc=True):
            m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(value)]
            with m.If(tx.data.ready):
                if update_crc:
                    m.d.sync += crc.eq(crc16_step(crc, value))
                m.next = next_state

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(got & (byte == SYNC_REQUEST)):
                    m.d.sync += [crc.eq(0xFFFF), count.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += [rx.data.ready.eq(1), self.active.eq(1)]
                receive_errors()
                with m.If(got & ~rx.error):
                    m.d.sync += [hdr.word_select(count[:3], 8).eq(byte),
                                 crc.eq(crc16_step(crc, byte)), count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "DECODE"

            with m.State("DECODE"):
                m.d.comb += self.active.eq(1)
                m.d.sync += [count.eq(0), last_index.eq(length - 1), mem_end.eq(addr + length)]
                with m.If(is_write & (length > self.max_payload)):
                    m.d.sync += status.eq(Status.LENGTH)
                    m.next = "DRAIN"
                with m.Elif(is_write & (length != 0)):
                    m.next = "PAYLOAD"
                with m.Else():
                    m.next = "CRC"

            with m.State("PAYLOAD"):
                m.d.comb += [rx.data.ready.eq(1), self.active.eq(1), buf_wr.en.eq(got)]
                receive_errors()
                with m.If(got & ~rx.error):
                    m.d.sync += [word.eq(Cat(word[8:], byte)), crc.eq(crc16_step(crc, byte)),
                                 count.eq(count + 1)]
                    with m.If(count == last_index):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"

            with m.State("CRC"):
                m.d.comb += [rx.data.ready.eq(1), self.active.eq(1)]
                receive_errors()
                with m.If(got & ~rx.error):
                    m.d.sync += [crc.eq(crc16_step(crc, byte)), count.eq(count + 1)]
                    with m.If(count == 1):
                        m.d.sync += count.eq(0)
                        with m.If(crc16_step(crc, byte) == 0):
                            m.next = "CHECK"
                        with m.Else():
                            m.d.sync += status.eq(Status.CRC)
                            m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += [rx.data.ready.eq(1), self.active.eq(1)]
                with m.If(timeout):
                    m.next = "RESPOND"

            with m.State("CHECK"):              # count is 0
                m.d.comb += self.active.eq(1)
                m.d.sync += [status.eq(Status.OK), aw_done.eq(0), w_done.eq(0), ar_done.eq(0),
                             mem_addr.eq(addr)]
                bad_reg = (addr >= REGISTER_WINDOW) | (addr[:2] != 0)
                bad_mem = mem_end > self.mem_bytes
                bad_mem_len = (length == 0) | (length > self.max_payload)

                def fail(code):
                    m.d.sync += status.eq(code)
                    m.next = "RESPOND"

                with m.Switch(cmd):
                    with m.Case(Command.INFO):
                        with m.If(length != 0):
                            fail(Status.LENGTH)
                        with m.Else():
                            m.next = "RESPOND"
                    with m.Case(Command.WAIT):
                        with m.If(length != 0):
                            fail(Status.LENGTH)
                        with m.Else():
                            m.d.sync += [word.eq(0), wait_over.eq(addr == 0)]
                            m.next = "WAIT"
                    with m.Case(Command.READ_REG, Command.WRITE_REG):
                        with m.If(length != 4):
                            fail(Status.LENGTH)
                        with m.Elif(bad_reg):
                            fail(Status.ADDRESS)
                        with m.Elif(cmd == Command.READ_REG):
                            m.next = "REG_READ"
                        with m.Else():
                            m.next = "REG_WRITE"
                    with m.Case(Command.READ_MEM, Command.WRITE_MEM):
                        with m.If(bad_mem_len):
                            fail(Status.LENGTH)
                        with m.Elif(bad_mem):
                            fail(Status.ADDRESS)
                        with m.Elif(cmd == Command.READ_MEM):
                            m.next = "RESPOND"
                        with m.Else():
                            m.next = "MEM_FETCH"
                    with m.Default():
                        fail(Status.COMMAND)

            with m.State("REG_WRITE"):
                m.d.comb += [self.active.eq(1), axil.awvalid.eq(~aw_done),
                             axil.wvalid.eq(~w_done), axil.bready.eq(1)]
                with m.If(axil.awvalid & axil.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(axil.wvalid & axil.wready):
                    m.d.sync += w_done.eq(1)
                with m.If(axil.bvalid):
                    m.d.sync += status.eq(Mux(axil.bresp == RESP_OKAY, Status.OK, Status.BUS))
                    m.next = "RESPOND"

            with m.State("REG_READ"):
                m.d.comb += [self.active.eq(1), axil.arvalid.eq(~ar_done), axil.rready.eq(1)]
                with m.If(axil.arvalid & axil.arready):
                    m.d.sync += ar_done.eq(1)
                with m.If(axil.rvalid):
                    m.d.sync += [word.eq(axil.rdata),
                                 status.eq(Mux(axil.rresp == RESP_OKAY, Status.OK, Status.BUS))]
                    m.next = "RESPOND"

            with m.State("MEM_FETCH"):          # the payload byte at `count` comes out
                m.d.comb += self.active.eq(1)
                m.d.sync += [mem_valid.eq(1), mem_write.eq(1)]
                m.next = "MEM_STORE"

            with m.State("MEM_STORE"):
                m.d.comb += self.active.eq(1)
                with m.If(mem.ready):
                    m.d.sync += [count.eq(count + 1), mem_addr.eq(mem_addr + 1),
                                 mem_valid.eq(0)]
                    with m.If(count == last_index):
                        m.d.sync += count.eq(0)
                        m.next = "RESPOND"
                    with m.Else():
                        m.next = "MEM_FETCH"

            with m.State("WAIT"):
                m.d.comb += self.active.eq(1)
                with m.If(self.irq):
                    m.next = "RESPOND"
                with m.Elif(wait_over):
                    m.d.sync += status.eq(Status.TIMEOUT)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += [word.eq(word + 1), wait_over.eq(word + 1 == addr)]

            with m.State("RESPOND"):
                m.d.comb += self.active.eq(1)
                m.d.sync += [count.eq(0), resp_len.eq(response_length),
                             resp_last.eq(response_length - 1)]
                send(SYNC_RESPONSE, "R_STATUS", update_crc=False)
                with m.If(tx.data.ready):
                    m.d.sync += crc.eq(0xFFFF)
            with m.State("R_STATUS"):
                m.d.comb += self.active.eq(1)
                send(status, "R_TAG")
            with m.State("R_TAG"):
                m.d.comb += self.active.eq(1)
                send(tag, "R_LEN0")
            with m.State("R_LEN0"):
                m.d.comb += self.active.eq(1)
                send(resp_len[:8], "R_LEN1")
            with m.State("R_LEN1"):
                m.d.comb += self.active.eq(1)
                send(resp_len[8:], "R_FETCH")
                with m.If(tx.data.ready & (resp_len == 0)):
                    m.next = "R_CRC0"
            with m.State("R_FETCH"):
                m.d.comb += self.active.eq(1)
                with m.If(cmd == Command.READ_MEM):
                    m.d.sync += [mem_valid.eq(1), mem_write.eq(0)]
                    m.next = "R_REQUEST"
                with m.Else():
                    m.next = "R_LATCH"
            with m.State("R_REQUEST"):
                m.d.comb += self.active.eq(1)
                with m.If(mem.ready):
                    m.d.sync += mem_valid.eq(0)
                    m.next = "R_WORD"
            with m.State("R_WORD"):
                # The memory's word is registered before its byte is selected:
                # block RAM output and the multiplexer over its blocks take most
                # of a cycle. (The register loads in every cycle, so no state
                # decode reaches its 64 enables: R_LATCH reads it right after.)
                m.d.comb += self.active.eq(1)
                m.next = "R_LATCH"
            with m.State("R_LATCH"):
                m.d.comb += self.active.eq(1)
                with m.Switch(cmd):
                    with m.Case(Command.READ_MEM):
                        m.d.sync += data_byte.eq(mem_word.word_select(lane, 8))
                    with m.Case(Command.INFO):
                        m.d.sync += data_byte.eq(info[count])
                    with m.Default():
                        m.d.sync += data_byte.eq(word.word_select(count[:2], 8))
                m.next = "R_DATA"
            with m.State("R_DATA"):
                m.d.comb += self.active.eq(1)
                send(data_byte, "R_FETCH")
                with m.If(tx.data.ready):
                    m.d.sync += [count.eq(count + 1), mem_addr.eq(mem_addr + 1)]
                    with m.If(count == resp_last):
                        m.next = "R_CRC0"
            with m.State("R_CRC0"):
                m.d.comb += self.active.eq(1)
                send(crc[8:], "R_CRC1", update_crc=False)
            with m.State("R_CRC1"):
                m.d.comb += self.active.eq(1)
                send(crc[:8], "HUNT", update_crc=False)
        return m
