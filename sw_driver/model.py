"""NumPy model of the accelerator behind the `Transport` interface.

`ModelTransport` has the register map of `hw.config` and a byte memory. A
write of `CTRL.start` checks the descriptor as the hardware does
(`check_descriptor`), executes it functionally with NumPy following
docs/architecture.md, and sets the counters from the cycle model
(`sw_driver.cycles`). The accelerator then stays busy until `wait_done` has
let the modelled number of cycles pass.

As in the RTL (hw/accel.py), descriptor registers and CTRL.clear are ignored
while busy, CTRL.start clears done and error, and a DMA error lets the run go
on to its end and then reports the error code.

Simplifications: the memory is written at start rather than while busy, so a
descriptor whose output overlaps its own input reads the input as it was at
start; a DMA access beyond the memory (DECERR) is found before anything is
written, so a descriptor that gets `DMA_READ` or `DMA_WRITE` leaves the memory
unchanged, and when both a read and a write leave the memory `DMA_READ` is
reported (the RTL reports whichever happens first).
"""

import numpy as np

from hw.config import (AccelConfig, COUNTERS, CTRL_CLEAR, CTRL_START, DESC_FIELDS, ERROR,
                       REG, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, counter_offset, desc_offset,
                       identification)

from .cycles import DEFAULT_TIMING, prepare_cycles, simulate, tile_spans
from .quant import requantize
from .transport import DoneTimeout, Transport

__all__ = ["ModelTransport", "decode_descriptor", "check_descriptor", "DEFAULT_MEM_SIZE",
           "REGISTER_SPACE"]

DEFAULT_MEM_SIZE = 64 << 20
REGISTER_SPACE = 0x1000          # bytes of the AXI4-Lite register window
_WORD_MASK = 0xFFFF_FFFF
_CHUNK_ELEMENTS = 1 << 22       # im2col elements gathered at once (bounds the model's memory)


def decode_descriptor(raw):
    """Split 32-bit register values into what the hardware keeps and what it refuses.

    `raw` maps every DESC_FIELDS name to its register value (0..2**32-1).
    Returns `(values, out_of_range)`: `values[name]` is the low `bits` bits of
    the register, sign-extended for signed fields; `out_of_range` lists the
    fields whose register value differs from that (bits set beyond the width,
    or a signed value outside the field's range), which the hardware refuses
    with ERROR["RANGE"].
    """
    values, out_of_range = {}, []
    for name, bits, signed in DESC_FIELDS:
        register = raw[name]
        values[name] = kept = _kept(register, bits, signed)
        if (register - ((register >> 31) << 32) if signed else register) != kept:
            out_of_range.append(name)
    return values, out_of_range


def _kept(register, bits, signed):
    """The low `bits` bits of a 32-bit register value, sign-extended if `signed`."""
    kept = register & ((1 << bits) - 1)
    return kept - ((kept >> (bits - 1)) << bits) if signed else kept


def check_descriptor(cfg, raw):
    """Name of the first ERROR the hardware raises at start for `raw`, or None.

    `raw` maps DESC_FIELDS names to 32-bit register values. The checks run in
    the order of ERROR and the first failure wins. Like the RTL, they see
    unsigned fields as whole 32-bit register values (KH = 0x103 fails KERNEL,
    IN_H = 0x10000 passes SHAPE and fails RANGE) and signed fields
    sign-extended from their width. DMA errors happen while running and are
    not checked here.
    """
    kept, out_of_range = decode_descriptor(raw)
    v = {name: kept[name] if signed else raw[name] for name, _, signed in DESC_FIELDS}
    bus = cfg.bus_bytes
    aligned = ("IN_BASE", "IN_ELEM_PITCH", "IN_ROW_PITCH", "IN_BLK_PITCH",
               "OUT_BASE", "OUT_ELEM_PITCH", "OUT_ROW_PITCH", "OUT_BLK_PITCH",
               "W_BASE", "P_BASE")
    window = (((v["TILE_H"] - 1) * v["SH"] + v["KH"])
              * ((v["TILE_W"] - 1) * v["SW"] + v["KW"]))
    failed = {
        "KERNEL": not (1 <= v["KH"] <= cfg.kernel_max and 1 <= v["KW"] <= cfg.kernel_max),
        "STRIDE": not (1 <= v["SH"] <= cfg.stride_max and 1 <= v["SW"] <= cfg.stride_max),
        "SHAPE": 0 in (v["IN_H"], v["IN_W"], v["OUT_H"], v["OUT_W"]),
        "BLOCKS": 0 in (v["CI_BLOCKS"], v["CO_BLOCKS"]),
        "TILE": 0 in (v["TILE_H"], v["TILE_W"]) or v["TILE_H"] * v["TILE_W"] > cfg.acc_depth,
        "WINDOW": window > cfg.in_depth,
        "ALIGN": any(v[name] % bus for name in aligned),
        "RANGE": bool(out_of_range),
        "ACT": v["ACT_MIN"] > v["ACT_MAX"],
    }
    for name in ERROR:
        if failed.get(name):
            return name
    return None


def _window_indices(spans, length):
    """Sorted input indices covered by the windows of `tile_spans` output."""
    covered = np.zeros(length, dtype=bool)
    for _, _, first, count in spans:
        covered[first:first + count] = True
    return np.flatnonzero(covered)


def _tap_indices(out_len, stride, pad, kernel, read, length):
    """(out_len, kernel) positions in the gathered axis `read`; len(read) for zero padding."""
    position = (np.arange(out_len)[:, None] * stride + np.arange(kernel)[None, :] - pad)
    lookup = np.full(length, len(read), dtype=np.int64)
    lookup[read] = np.arange(len(read))
    inside = (position >= 0) & (position < length)
    return np.where(inside, lookup[np.clip(position, 0, length - 1)], len(read))


def _wrap_int32(values):
    """int64 values reduced modulo 2**32 into int32 (two's complement)."""
    return (((values + (1 << 31)) & _WORD_MASK) - (1 << 31)).astype(np.int32)


class ModelTransport(Transport):
    """A functional and cycle-approximate model of one accelerator.

    `cfg` gives the identification registers and the sizes, `mem_size` the
    bytes of memory from address 0 (default: 64 MiB or the whole address
    space of `cfg.axi_addr_width` bits, whichever is smaller), `timing` the
    cycle constants. `memory` is the model's memory, a NumPy uint8 array.
    """

    def __init__(self, cfg, mem_size=None, timing=DEFAULT_TIMING):
        if not isinstance(cfg, AccelConfig):
            raise TypeError(f"cfg must be an AccelConfig, not {cfg!r}")
        space = 1 << cfg.axi_addr_width
        if mem_size is None:
            mem_size = min(DEFAULT_MEM_SIZE, space)
        if isinstance(mem_size, bool) or not isinstance(mem_size, int) \
                or not 1 <= mem_size <= space:
            raise ValueError(f"mem_size must be an int in 1..{space} (the "
                             f"{cfg.axi_addr_width}-bit address space), not {mem_size!r}")
        self.cfg = cfg
        self.timing = timing
        self.memory = np.zeros(mem_size, dtype=np.uint8)
        self._identification = identification(cfg)
        self._desc_names = {desc_offset(name): name for name, _, _ in DESC_FIELDS}
        self._desc_widths = {name: (bits, signed) for name, bits, signed in DESC_FIELDS}
        self._counter_halves = {}
        for name in COUNTERS:
            self._counter_halves[counter_offset(name)] = (name, 0)
            self._counter_halves[counter_offset(name) + 4] = (name, 32)
        self._desc = {name: 0 for name, _, _ in DESC_FIELDS}
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._irq_enable = 0
        self._status = 0
        self._error = None
        self._remaining = 0

    # Registers.
    def _check_offset(self, offset):
        if isinstance(offset, bool) or not isinstance(offset, int) \
                or not 0 <= offset < REGISTER_SPACE or offset % 4:
            raise ValueError(f"register offset must be a multiple of 4 in "
                             f"0..{REGISTER_SPACE - 4:#x}, not {offset!r}")

    def read_reg(self, offset):
        """Register value at byte `offset`; unmapped and write-only registers read 0.
        A descriptor register reads its field's kept bits (`decode_descriptor`),
        as a 32-bit value."""
        self._check_offset(offset)
        if offset in self._identification:
            return self._identification[offset]
        if offset == REG["STATUS"]:
            return self._status
        if offset == REG["IRQ_ENABLE"]:
            return self._irq_enable
        if offset in self._desc_names:
            # The hardware keeps a field's bits, so that is what reads back.
            name = self._desc_names[offset]
            bits, signed = self._desc_widths[name]
            return _kept(self._desc[name], bits, signed) & _WORD_MASK
        if offset in self._counter_halves:
            name, shift = self._counter_halves[offset]
            counter = self._counters[name] & ((1 << self.cfg.counter_width) - 1)   # it wraps
            return (counter >> shift) & _WORD_MASK
        return 0

    def write_reg(self, offset, value):
        """Write a register; read-only and unmapped registers ignore writes, and so
        do the descriptor registers and CTRL.clear while busy."""
        self._check_offset(offset)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _WORD_MASK:
            raise ValueError(f"register value must be an int in 0..{_WORD_MASK:#x}, "
                             f"not {value!r}")
        if offset == REG["CTRL"]:
            if not self._status & STATUS_BUSY:
                if value & CTRL_CLEAR:
                    self._status = 0
                if value & CTRL_START:
                    self._start()
        elif offset == REG["IRQ_ENABLE"]:
            self._irq_enable = value & 1
        elif offset in self._desc_names and not self._status & STATUS_BUSY:
            self._desc[self._desc_names[offset]] = value

    @property
    def irq(self):
        """The irq output: STATUS.done gated by IRQ_ENABLE bit 0."""
        return bool(self._status & STATUS_DONE and self._irq_enable)

    # Memory.
    @property
    def mem_size(self):
        return len(self.memory)

    def _check_range(self, addr, length):
        for name, value in (("addr", addr), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, not {value!r}")
        if addr + length > self.mem_size:
            raise ValueError(f"memory access {addr:#x}..{addr + length:#x} exceeds the "
                             f"model's {self.mem_size:#x} bytes")

    def write_mem(self, addr, data):
        data = np.frombuffer(data, dtype=np.uint8)
        self._check_range(addr, len(data))
        self.memory[addr:addr + len(data)] = data

    def read_mem(self, addr, length):
        self._check_range(addr, length)
        return self.memory[addr:addr + length].tobytes()

    # Execution.
    def wait_done(self, max_cycles):
        """Let the modelled cycles pass until the irq line rises; return them.

        As on the RTL transports, the irq line is STATUS.done gated by
        IRQ_ENABLE bit 0. Returns 0 when it is already high. Raises
        DoneTimeout when the run needs more than `max_cycles` (the run goes
        on: a later call waits for the rest), when the accelerator is idle,
        and when IRQ_ENABLE is 0 (after letting the run finish).
        """
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 0:
            raise ValueError(f"max_cycles must be an int >= 0, not {max_cycles!r}")
        waited = 0
        if self._status & STATUS_BUSY:
            if self._remaining > max_cycles:
                self._remaining -= max_cycles
                raise DoneTimeout(f"not done after {max_cycles} cycles "
                                  f"({self._remaining} more are needed)")
            waited, self._remaining = self._remaining, 0
            self._status = STATUS_DONE
            if self._error is not None:
                self._status |= STATUS_ERROR | ERROR[self._error] << 8
        if self.irq:
            return waited
        if self._status & STATUS_DONE:
            raise DoneTimeout(f"irq not raised within {max_cycles} cycles: STATUS.done is "
                              f"set but IRQ_ENABLE is 0")
        raise DoneTimeout(f"not done after {max_cycles} cycles: the accelerator is idle")

    def _start(self):
        """CTRL.start: check and execute the descriptor, then stay busy for its cycles."""
        error = check_descriptor(self.cfg, self._desc)
        if error is None:
            values, _ = decode_descriptor(self._desc)
            self._error = self._execute(values)
            self._counters = simulate(self.cfg, values, self.timing)
        else:
            self._error = error
            self._counters = dict.fromkeys(COUNTERS, 0)
            cycles = self.timing.reject + prepare_cycles(self.cfg, decode_descriptor(self._desc)[0])
            self._counters["CYCLES"] = self._counters["STALL"] = cycles
        self._remaining = self._counters["CYCLES"]
        self._status = STATUS_BUSY

    def _fits(self, addresses, element_bytes):
        return addresses.size == 0 or int(addresses.max()) + element_bytes <= self.mem_size

    def _execute(self, d):
        """Run a checked descriptor `d` (decoded values) on the memory.

        Returns "DMA_READ" or "DMA_WRITE" when an element would be read or
        written beyond the memory, None after writing the output.
        """
        cfg = self.cfg
        rows, cols, bus = cfg.rows, cfg.cols, cfg.bus_bytes
        mask = (1 << cfg.axi_addr_width) - 1
        ci_blocks, co_blocks = d["CI_BLOCKS"], d["CO_BLOCKS"]
        kh, kw, out_h, out_w = d["KH"], d["KW"], d["OUT_H"], d["OUT_W"]
        in_bytes = cfg.in_elem_words * bus
        w_bytes = cfg.w_elem_words * bus
        p_bytes = cfg.p_elem_words * bus
        out_bytes = cfg.out_elem_words(d["MODE"] == 1) * bus

        # DMA addresses (32-bit arithmetic on an axi_addr_width-bit bus).
        read_rows = _window_indices(
            tile_spans(out_h, d["TILE_H"], d["SH"], d["PAD_T"], kh, d["IN_H"]), d["IN_H"])
        read_cols = _window_indices(
            tile_spans(out_w, d["TILE_W"], d["SW"], d["PAD_L"], kw, d["IN_W"]), d["IN_W"])
        in_addr = (d["IN_BASE"]
                   + np.arange(ci_blocks, dtype=np.int64)[:, None, None] * d["IN_BLK_PITCH"]
                   + read_rows[None, :, None] * d["IN_ROW_PITCH"]
                   + read_cols[None, None, :] * d["IN_ELEM_PITCH"]) & mask
        w_addr = (d["W_BASE"]
                  + np.arange(co_blocks * ci_blocks * kh * kw, dtype=np.int64) * w_bytes) & mask
        p_addr = (d["P_BASE"] + np.arange(co_blocks, dtype=np.int64) * p_bytes) & mask
        cob, oy, ox = np.meshgrid(np.arange(co_blocks, dtype=np.int64),
                                  np.arange(out_h, dtype=np.int64),
                                  np.arange(out_w, dtype=np.int64), indexing="ij")
        out_addr = (d["OUT_BASE"] + cob * d["OUT_BLK_PITCH"] + oy * d["OUT_ROW_PITCH"]
                    + ox * d["OUT_ELEM_PITCH"]) & mask
        if not (self._fits(in_addr, in_bytes) and self._fits(w_addr, w_bytes)
                and self._fits(p_addr, p_bytes)):
            return "DMA_READ"
        if not self._fits(out_addr, out_bytes):
            return "DMA_WRITE"

        # Operands, with one zero row and column appended for reads outside the input.
        gathered = self.memory[in_addr[..., None] + np.arange(rows)].view(np.int8)
        inputs = np.zeros((ci_blocks, len(read_rows) + 1, len(read_cols) + 1, rows), np.int8)
        inputs[:, :-1, :-1] = gathered
        weights = self.memory[w_addr[:, None] + np.arange(rows * cols)].view(np.int8)
        weights = weights.reshape(co_blocks, ci_blocks, kh, kw, rows, cols)
        weights = weights.transpose(1, 2, 3, 4, 0, 5).reshape(-1, co_blocks * cols)
        weights = weights.astype(np.float64)
        params = self.memory[p_addr[:, None] + np.arange(12 * cols)].view("<i4")
        params = params.reshape(co_blocks, 3, cols).astype(np.int64)
        bias, mult, shift = (params[:, i].reshape(-1) for i in range(3))

        # Accumulators: float64 products and sums of int8 values are exact integers
        # (|sum| < 2**53 for any descriptor), wrapped to int32 with the bias.
        row_taps = _tap_indices(out_h, d["SH"], d["PAD_T"], kh, read_rows, d["IN_H"])
        col_taps = _tap_indices(out_w, d["SW"], d["PAD_L"], kw, read_cols, d["IN_W"])
        acc = np.empty((out_h, out_w, co_blocks * cols), dtype=np.int32)
        chunk = max(1, _CHUNK_ELEMENTS // (out_w * weights.shape[0]))
        for oy0 in range(0, out_h, chunk):
            taps = row_taps[oy0:oy0 + chunk]
            patches = inputs[:, taps[:, :, None, None], col_taps[None, None, :, :], :]
            patches = patches.transpose(1, 3, 0, 2, 4, 5).reshape(-1, weights.shape[0])
            sums = (patches.astype(np.float64) @ weights).astype(np.int64) + bias
            acc[oy0:oy0 + chunk] = _wrap_int32(sums).reshape(len(taps), out_w, -1)

        # Output elements: whole elements, zero bytes after the C channels.
        if d["MODE"] == 1:
            result = requantize(acc, mult, shift & 31, d["OUT_ZP"], d["ACT_MIN"], d["ACT_MAX"])
            values = result.reshape(out_h, out_w, co_blocks, cols).view(np.uint8)
        else:
            values = acc.astype("<i4").reshape(out_h, out_w, co_blocks, cols).view(np.uint8)
        elements = np.zeros((co_blocks, out_h, out_w, out_bytes), dtype=np.uint8)
        elements[..., :values.shape[-1]] = values.transpose(2, 0, 1, 3)

        # Store order: for ty, tx, cob, then the tile's pixels row by row; where
        # elements overlap, the byte written last stays.
        order = np.lexsort((ox.ravel(), oy.ravel(), cob.ravel(),
                            ox.ravel() // d["TILE_W"], oy.ravel() // d["TILE_H"]))
        byte_addr = (out_addr.ravel()[order][:, None] + np.arange(out_bytes)).ravel()
        byte_value = elements.reshape(-1, out_bytes)[order].ravel()
        unique_addr, last = np.unique(byte_addr[::-1], return_index=True)
        self.memory[unique_addr] = byte_value[::-1][last]
        return None
