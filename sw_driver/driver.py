"""The accelerator driver: the same code runs on every `Transport`.

`Accelerator(transport)` identifies the hardware from its registers, keeps a
bump allocator over its memory, runs descriptors and runs whole Conv2d
layers. Parameter names are those of the command line (`python -m
sw_driver conv`): `stride`, `padding`, `dilation`, `groups`, and the
requantisation's `multiplier`, `shift`, `scale`, `zero_point`, `act_min`,
`act_max` (`--out-multiplier`, `--out-shift`, `--out-scale`,
`--out-zero-point`, `--act-min`, `--act-max`).
"""

from dataclasses import dataclass, fields as dataclass_fields
from collections.abc import Mapping

import numpy as np

from hw.config import (AccelConfig, ConfigError, COUNTERS, CTRL_CLEAR, CTRL_START,
                       DESC_FIELDS, ERROR, MAGIC, REG, STATUS_ERROR, VERSION,
                       counter_offset, desc_offset)

from .cycles import DEFAULT_TIMING, simulate
from .layers import Conv2dParams, ConvTranspose2dParams
from .layout import pack_blocked, pack_params, pack_weights, unpack_blocked
from .model import check_descriptor, decode_descriptor
from .quant import quantize_multiplier
from .program import METHODS, conv2d_program, conv_transpose2d_program
from .tiler import plan_program

__all__ = ["Accelerator", "AcceleratorError", "Requant", "STATS_KEYS", "BUDGET_FACTOR",
           "BUDGET_MARGIN"]

BUDGET_FACTOR = 4           # wait_done budget: modelled cycles x BUDGET_FACTOR + BUDGET_MARGIN
BUDGET_MARGIN = 10_000
STATS_KEYS = ("cycles", "macs_issued", "macs_useful", "utilization", "bytes_read",
              "bytes_written", "stall_cycles", "active_cycles", "descriptors")
_ERROR_NAMES = {code: name for name, code in ERROR.items()}
_WORD_MASK = 0xFFFF_FFFF


class AcceleratorError(RuntimeError):
    """The device is not a supported accelerator, or it reported an error.

    `code` is the ERROR name the accelerator reported (None when the device
    was not recognised).
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Requant:
    """Per-channel requantisation of int32 accumulators to int8 outputs.

    Give either `multiplier` and `shift` (int32 and 0..31, per output channel
    or one value for all) or `scale` (floats in (0, 1), converted with
    `quantize_multiplier`). `zero_point`, `act_min` and `act_max` are int8.
    """

    multiplier: object = None
    shift: object = None
    scale: object = None
    zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

    def __post_init__(self):
        for name in ("zero_point", "act_min", "act_max"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                    or not -128 <= value <= 127:
                raise ValueError(f"{name} must be an int in -128..127, not {value!r}")
            object.__setattr__(self, name, int(value))
        if self.act_min > self.act_max:
            raise ValueError(f"act_min must be <= act_max, not {self.act_min} > {self.act_max}")
        if self.multiplier is not None and self.scale is not None:
            raise ValueError("requant multiplier and scale exclude each other")
        if self.multiplier is None and self.scale is None:
            raise ValueError("requant needs either multiplier (with shift) or scale")
        if self.multiplier is not None and self.shift is None:
            raise ValueError("requant multiplier needs shift")
        if self.scale is not None and self.shift is not None:
            raise ValueError("requant scale and shift exclude each other: scale gives the shift")

    @classmethod
    def of(cls, requant):
        """A Requant from a Requant, a mapping of its field names, or None (returns None)."""
        if requant is None or isinstance(requant, cls):
            return requant
        if isinstance(requant, Mapping):
            unknown = set(requant) - {field.name for field in dataclass_fields(cls)}
            if unknown:
                raise ValueError(f"requant has unknown keys {sorted(unknown)}")
            return cls(**requant)
        raise ValueError(f"requant must be None, a Requant or a dict, "
                         f"not {type(requant).__name__}")

    def per_channel(self, out_channels):
        """(multiplier, shift) as int32 arrays of `out_channels` entries."""
        if self.scale is not None:
            scale = _per_channel("scale", self.scale, out_channels, "f")
            return tuple(np.asarray(v, dtype=np.int32) for v in quantize_multiplier(scale))
        multiplier = _per_channel("multiplier", self.multiplier, out_channels, "i")
        shift = _per_channel("shift", self.shift, out_channels, "i")
        for name, values, low, high in (("multiplier", multiplier, -(1 << 31), (1 << 31) - 1),
                                        ("shift", shift, 0, 31)):
            bad = values[(values < low) | (values > high)]
            if bad.size:
                raise ValueError(f"{name} must be in {low}..{high}, not {int(bad[0])}")
        return multiplier.astype(np.int32), shift.astype(np.int32)


def _per_channel(name, value, out_channels, kind):
    """`value` (a scalar or an array of 1 or out_channels entries) as out_channels entries."""
    array = np.asarray(value)
    allowed = "iu" if kind == "i" else "iuf"
    if array.dtype.kind not in allowed:
        what = "integers" if kind == "i" else "real numbers"
        raise ValueError(f"{name} must hold {what}, not {array.dtype.name}")
    if array.size not in (1, out_channels) or array.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape ({out_channels},) "
                         f"(one per output channel), not {array.shape}")
    dtype = np.int64 if kind == "i" else np.float64
    return np.broadcast_to(array.reshape(-1).astype(dtype), (out_channels,)).copy()


class Accelerator:
    """One accelerator reached through `transport`.

    At open the identification registers are checked (MAGIC, VERSION major)
    and give `cfg`, the AccelConfig of the hardware, and the irq is enabled
    (IRQ_ENABLE = 1): `Transport.wait_done` waits for the irq line. `timing`
    is the cycle model used for the wait budget and the tile choice.
    """

    def __init__(self, transport, timing=DEFAULT_TIMING):
        self.transport = transport
        self.timing = timing
        magic = transport.read_reg(REG["MAGIC"])
        if magic != MAGIC:
            raise AcceleratorError(f"no accelerator found: MAGIC reads {magic:#010x}, "
                                   f"expected {MAGIC:#010x}")
        version = transport.read_reg(REG["VERSION"])
        if version >> 16 != VERSION >> 16:
            raise AcceleratorError(f"unsupported accelerator version {version >> 16}."
                                   f"{version & 0xFFFF}: this driver supports "
                                   f"{VERSION >> 16}.x")
        identification = {name[3:].lower(): transport.read_reg(offset)
                          for name, offset in REG.items() if name.startswith("HW_")}
        try:
            self.cfg = AccelConfig(**identification)
        except ConfigError as error:
            raise AcceleratorError(f"the identification registers describe an unsupported "
                                   f"configuration: {error}") from error
        self.memory_limit = min(transport.mem_size, 1 << self.cfg.axi_addr_width)
        self._top = 0
        # Transports wait on the irq line, which follows STATUS.done when enabled.
        transport.write_reg(REG["IRQ_ENABLE"], 1)

    # Memory.
    @property
    def available(self):
        """Bytes left for allocation."""
        return self.memory_limit - self._top

    def alloc(self, nbytes):
        """Address of `nbytes` new bytes aligned to the bus width; ValueError when full."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be an int >= 0, not {nbytes!r}")
        bus = self.cfg.bus_bytes
        size = -(-nbytes // bus) * bus
        if size > self.available:
            raise ValueError(f"accelerator memory full: {nbytes} bytes requested, "
                             f"{self.available} available")
        address, self._top = self._top, self._top + size
        return address

    def release(self, address):
        """Free everything allocated at or after `address` (an address alloc returned)."""
        if not 0 <= address <= self._top:
            raise ValueError(f"address {address:#x} was not allocated (top {self._top:#x})")
        self._top = address

    # Descriptors.
    def run_descriptor(self, fields):
        """Run one descriptor and return its counters.

        `fields` maps every DESC_FIELDS name to an int (signed fields may be
        negative); each must fit its 32-bit register. Raises AcceleratorError
        with the ERROR name when the accelerator reports an error, and
        DoneTimeout when it does not finish within BUDGET_FACTOR times the
        modelled cycles plus BUDGET_MARGIN.
        """
        registers = _registers(fields)
        modelled = 0
        if check_descriptor(self.cfg, registers) is None:
            modelled = simulate(self.cfg, decode_descriptor(registers)[0], self.timing)["CYCLES"]
        for name, value in registers.items():
            self.transport.write_reg(desc_offset(name), value)
        self.transport.write_reg(REG["CTRL"], CTRL_CLEAR)
        self.transport.write_reg(REG["CTRL"], CTRL_START)
        self.transport.wait_done(BUDGET_FACTOR * modelled + BUDGET_MARGIN)
        status = self.transport.read_reg(REG["STATUS"])
        if status & STATUS_ERROR:
            code = (status >> 8) & 0xFF
            name = _ERROR_NAMES.get(code, "UNKNOWN")
            raise AcceleratorError(f"accelerator error {name} (code {code})", code=name)
        return {name: self.transport.read_reg(counter_offset(name))
                | self.transport.read_reg(counter_offset(name) + 4) << 32
                for name in COUNTERS}

    # Layers.
    def conv2d(self, x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
               requant=None):
        """Conv2d with PyTorch semantics on the accelerator; returns (y, stats).

        x int8 (N, C_in, H, W), w int8 (C_out, C_in/groups, KH, KW), bias int32
        (C_out,) or None. `requant` None gives int32 outputs; a Requant (or a
        dict of its fields) gives int8 outputs. y is (N, C_out, OH, OW). stats
        maps STATS_KEYS to totals over the descriptors run (see `_stats`).
        Dilation runs as dense passes over sub-sampled views (no hardware
        dilation). Layers the hardware cannot take raise ValueError before the
        device is touched.
        """
        _check_arrays(x, w)
        params = Conv2dParams(x.shape[1], w.shape[0], w.shape[2:], stride=stride,
                              padding=padding, dilation=dilation, groups=groups)
        params.check_tensors(x, w, bias)
        requant = Requant.of(requant)
        bias, multiplier, shift = _channel_params(params.out_channels, bias, requant)
        y, runs = self.run_program(conv2d_program(x, w, params, bias, multiplier, shift),
                                   requant)
        return y, self._stats(runs, x.shape[0] * params.macs(*x.shape[2:]))

    def conv_transpose2d(self, x, w, bias=None, *, stride=1, padding=0, output_padding=0,
                         dilation=1, groups=1, method="auto", requant=None):
        """ConvTranspose2d with PyTorch semantics on the unmodified accelerator.

        x int8 (N, C_in, H, W), w int8 (C_in, C_out/groups, KH, KW), bias int32
        (C_out,) or None; `requant` as for conv2d. `method` is one of
        "split", "split-fused", "zero-insert" (see sw_driver.program) or
        "auto", the one the cycle model finds fastest. Returns (y, stats);
        stats adds "method" to the conv2d keys.
        """
        _check_arrays(x, w)
        params = ConvTranspose2dParams(x.shape[1], w.shape[1] * groups, w.shape[2:],
                                       stride=stride, padding=padding,
                                       output_padding=output_padding, groups=groups,
                                       dilation=dilation)
        params.check_tensors(x, w, bias)
        requant = Requant.of(requant)
        bias, multiplier, shift = _channel_params(params.out_channels, bias, requant)

        def program_of(name):
            return conv_transpose2d_program(x, w, params, bias, multiplier, shift, name)

        if method == "auto":
            method = self.fastest_method(program_of, requant)
        y, runs = self.run_program(program_of(method), requant)
        return y, {**self._stats(runs, x.shape[0] * params.macs(*x.shape[2:])),
                   "method": method}

    def fastest_method(self, program_of, requant):
        """The METHODS entry whose program the cycle model finds fastest; methods
        the hardware cannot run (ValueError) are skipped."""
        modelled = {}
        for name in METHODS:
            try:
                plan = self.plan(program_of(name), requant)
            except ValueError:
                continue
            bases = dict.fromkeys(plan.regions, 0)
            modelled[name] = sum(simulate(self.cfg, desc, self.timing)["CYCLES"]
                                 for desc in plan.descriptors(bases))
        if not modelled:
            # Every method failed: let the first one raise its own error.
            self.plan(program_of(METHODS[0]), requant)
        return min(modelled, key=modelled.get)

    def plan(self, program, requant):
        """The tiler's Plan of `program` on this accelerator (ValueError if it cannot run)."""
        return plan_program(self.cfg, program, requant=requant is not None,
                            capacity=self.available, timing=self.timing)

    def run_program(self, program, requant):
        """Upload, run and download a Program; returns (y, the counters of each descriptor)."""
        plan = self.plan(program, requant)
        output_fields = {} if requant is None else {
            "zero_point": requant.zero_point, "act_min": requant.act_min,
            "act_max": requant.act_max}
        mark = self._top
        try:
            bases = {name: self.alloc(size) for name, size in plan.regions.items()}
            self.transport.write_mem(bases["input"], pack_blocked(program.input, plan.input))
            for pass_plan in plan.passes:
                conv_pass = pass_plan.conv_pass
                for blocks in pass_plan.block_ranges:
                    self.transport.write_mem(
                        bases["weights"] + blocks.weight_offset,
                        pack_weights(self.cfg, conv_pass.weight, conv_pass.groups,
                                     range(blocks.cob_start, blocks.cob_stop),
                                     range(blocks.cib_start, blocks.cib_stop)))
            self.transport.write_mem(bases["params"], pack_params(
                self.cfg, program.bias, program.multiplier, program.shift))
            runs = [self.run_descriptor(desc)
                    for desc in plan.descriptors(bases, **output_fields)]
            y = unpack_blocked(self.transport.read_mem(bases["output"], plan.output.nbytes),
                               plan.output)
        finally:
            self.release(mark)
        return program.finish(y), runs

    def _stats(self, runs, macs_useful):
        """Totals of the counters of `runs`.

        cycles, macs_issued (MACS), bytes_read, bytes_written, stall_cycles,
        active_cycles: sums of the counters; macs_useful: the layer's
        multiply-accumulates that do not read padding; utilization:
        macs_useful / (R*C*cycles); descriptors: how many ran.
        """
        total = {name: sum(run[name] for run in runs) for name in COUNTERS}
        return {
            "cycles": total["CYCLES"],
            "macs_issued": total["MACS"],
            "macs_useful": macs_useful,
            "utilization": macs_useful / (self.cfg.pes * total["CYCLES"]),
            "bytes_read": total["BYTES_RD"],
            "bytes_written": total["BYTES_WR"],
            "stall_cycles": total["STALL"],
            "active_cycles": total["ACTIVE"],
            "descriptors": len(runs),
        }


def _check_arrays(x, w):
    for name, array in (("x", x), ("w", w)):
        if not isinstance(array, np.ndarray) or array.ndim != 4:
            raise ValueError(f"{name} must be a 4-D numpy array, got "
                             f"{getattr(array, 'shape', type(array).__name__)}")


def _channel_params(out_channels, bias, requant):
    """(bias, multiplier, shift) int32 per output channel; zeros where not given."""
    if bias is None:
        bias = np.zeros(out_channels, dtype=np.int32)
    if requant is None:
        zeros = np.zeros(out_channels, dtype=np.int32)
        return bias, zeros, zeros
    return (bias, *requant.per_channel(out_channels))


def _registers(fields):
    """32-bit register values of descriptor `fields`; ValueError naming a bad field."""
    names = [name for name, _, _ in DESC_FIELDS]
    missing = [name for name in names if name not in fields]
    unknown = sorted(set(fields) - set(names))
    if missing or unknown:
        raise ValueError(f"descriptor fields: missing {missing}, unknown {unknown}")
    registers = {}
    for name, _, signed in DESC_FIELDS:
        value = fields[name]
        low = -(1 << 31) if signed else 0
        high = (1 << 31) - 1 if signed else _WORD_MASK
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                or not low <= value <= high:
            raise ValueError(f"descriptor field {name} must be an int in {low}..{high} "
                             f"(its 32-bit register), not {value!r}")
        registers[name] = int(value) & _WORD_MASK
    return registers
