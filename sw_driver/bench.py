"""Benchmarks: `python -m sw_driver bench` (`make bench`, `make bench-quick`).

    python -m sw_driver bench [--quick] [--verilog PATH] [--out-dir DIR] [--docs-dir DIR]
    python -m sw_driver bench --sweep [--quick] [--out-dir DIR]

The main bench runs, on the default accelerator (AccelConfig()) in RTL
cosimulation through one CosimTransport kept open for the whole run, every
transposed-convolution layer of every network in `sw_driver.networks` with
each method (split, split-fused, zero-insert), on random int8 data with
requantised int8 outputs, and checks every result bit-exactly against
`conv_transpose2d_reference` + `requantize` (BenchError on a mismatch). For
every run it also asks the cycle model (ModelTransport with the same driver)
for its prediction, and fails the bench when one differs from the RTL's
CYCLES counter by more than MODEL_TOLERANCE (2%). A second section runs a
Conv2d 3x3 64->64 32x32 in cosimulation (utilisation target 85%) and
compares the cosimulation speed with the pure-Verilog testbench on the same
descriptor and memory image (target 0.7).

A full run (not --quick) then appends a design-space sweep: the cycle model
(the same driver on a ModelTransport that skips the arithmetic) over array
shapes (R, C) and buffer sizes (in_depth, acc_depth) for the DCGAN and FST
stacks (`run_sweep`).

Outputs: `results.json`, `benchmarks.md` and PNG plots (bench-speedup.png,
bench-utilisation.png, bench-sweep.png) in --out-dir (default results/full,
or results/quick with --quick). A full run also writes the report and the
plots to --docs-dir (default docs/, the committed copy); quick runs never
touch docs/ unless --docs-dir is given. `--render results.json` re-renders
the report and plots of an earlier run.

--sweep runs only the sweep (no cosimulation) and writes sweep.json,
bench-sweep.png and benchmarks-sweep.md to --out-dir (default results/sweep).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
import datetime
import json
import math
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

from hw.config import AccelConfig, CTRL_START, DESC_FIELDS, REG, desc_offset

from . import energy
from .driver import Accelerator
from .layers import Conv2dParams
from .model import ModelTransport, decode_descriptor
from .networks import NETWORKS, network, scaled_network
from .program import METHODS
from .quant import quantize_multiplier, requantize
from .reference import conv2d_reference, conv_transpose2d_reference
from .split import fused_phases, mac_counts
from .transport import Transport
from sim.bench import RecordingTransport

__all__ = ["add_arguments", "run", "BenchError", "BenchOptions", "Recorder",
           "TimingModelTransport", "run_bench", "check_model_error", "check_results",
           "write_outputs", "run_sweep", "layer_data", "layer_bounds", "MODEL_TOLERANCE",
           "CONV_UTIL_TARGET", "SPEED_TARGET", "DECONV_UTIL_TARGET", "TARGET_CHANNELS",
           "DCGAN_SPEEDUP_TARGET", "QUICK_DIVISOR"]

REPO = Path(__file__).resolve().parent.parent
MODEL_TOLERANCE = 0.02      # largest |model - RTL| / RTL cycles
CONV_UTIL_TARGET = 0.85     # Conv2d 3x3 64->64 32x32 useful-MAC utilisation
DECONV_UTIL_TARGET = 0.90   # split utilisation on layers with >= TARGET_CHANNELS in and out
TARGET_CHANNELS = 64
DCGAN_SPEEDUP_TARGET = 3.5  # split over zero-insert on DCGAN's K4 s2 p1 layers of >= 64 channels
SPEED_TARGET = 0.7          # cocotb harness cycles/s over the pure-Verilog testbench's
QUICK_DIVISOR = 8           # --quick divides every channel count by this (at least 1)
OUTPUT_SIGMA = 40.0         # requantised output standard deviation the scales aim at
INT8_SIGMA = math.sqrt((256 ** 2 - 1) / 12)   # of uniform int8 data
RUN_OVERHEAD_CYCLES = 30_000    # per-run wall overhead in cycle equivalents (ETA only)
DEFAULT_SWEEP_SHAPES = tuple((r, c) for r in (4, 8, 16) for c in (4, 8, 16, 32))
DEFAULT_SWEEP_BUFFERS = ((512, 256), (2048, 1024), (8192, 4096))
SWEEP_NETWORKS = ("dcgan", "fst")


class BenchError(RuntimeError):
    """A benchmark check failed (bit mismatch, model error beyond tolerance, ...)."""


# ---------------------------------------------------------------------------
# Transports


class Recorder(RecordingTransport):
    """A RecordingTransport that also decodes every descriptor started and times
    the waits.

    `descriptors`: the decoded descriptor of every CTRL.start; `image` and
    `regs`: the memory and register writes before the first start (the job's
    memory image and register writes, start excluded); `reads`: memory reads
    after it; `wait_cycles` / `wait_seconds`: totals of wait_done.
    """

    def __init__(self, inner):
        super().__init__(inner)
        self.clear()

    def clear(self):
        self._raw = {name: 0 for name, _, _ in DESC_FIELDS}
        self.descriptors, self.image, self.regs, self.reads = [], [], [], []
        self.started = False
        self.wait_cycles, self.wait_seconds = 0, 0.0

    def write_reg(self, offset, value):
        if offset == REG["CTRL"] and value & CTRL_START:
            self.descriptors.append(decode_descriptor(self._raw)[0])
        for name, _, _ in DESC_FIELDS:
            if desc_offset(name) == offset:
                self._raw[name] = value
        super().write_reg(offset, value)

    def wait_done(self, max_cycles):
        start = time.perf_counter()
        cycles = super().wait_done(max_cycles)
        self.wait_seconds += time.perf_counter() - start
        self.wait_cycles += cycles
        return cycles

    def first_job(self):
        """The first descriptor's job: image, register writes, and the range read after it."""
        if not self.started:
            raise BenchError("no descriptor was started")
        return self.job()


class TimingModelTransport(ModelTransport):
    """A ModelTransport that skips the arithmetic: registers, counters and timing
    exactly as ModelTransport (the counters come from the cycle model alone), the
    output memory is left as it was. For predictions and sweeps of big layers."""

    def _execute(self, d):
        return None


# ---------------------------------------------------------------------------
# Workload data, references and bounds


def _seed(*parts):
    return zlib.crc32("/".join(map(str, parts)).encode())


def layer_data(layer, seed=0):
    """Random int8 input and weights, int32 bias and a per-channel requantisation
    scaled so the int8 outputs have a standard deviation of about OUTPUT_SIGMA.

    Returns (x, w, bias, requant dict, (multiplier, shift) arrays).
    """
    rng = np.random.default_rng(seed)
    params = layer.params
    c, h, w_ = layer.input
    x = rng.integers(-128, 128, (1, c, h, w_), dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    out_c, out_h, out_w = layer.output
    products = params.macs(h, w_) / (out_c * out_h * out_w)     # per output, on average
    sigma = max(math.sqrt(products), 1.0) * INT8_SIGMA ** 2
    bias = np.round(rng.normal(0.0, sigma / 4, out_c)).astype(np.int32)
    scale = OUTPUT_SIGMA / sigma * rng.uniform(0.8, 1.25, out_c)
    multiplier, shift = quantize_multiplier(np.minimum(scale, 0.99))
    requant = dict(multiplier=multiplier, shift=shift, zero_point=0, act_min=-128, act_max=127)
    return x, w, bias, requant


def _requantized(acc, requant):
    return requantize(acc.transpose(0, 2, 3, 1), requant["multiplier"], requant["shift"],
                      requant["zero_point"], requant["act_min"],
                      requant["act_max"]).transpose(0, 3, 1, 2)


def _check_equal(y, expected, what):
    if y.shape != expected.shape or y.dtype != expected.dtype:
        raise BenchError(f"{what}: result {y.dtype}{y.shape} differs from the reference "
                         f"{expected.dtype}{expected.shape}")
    wrong = np.argwhere(y != expected)
    if len(wrong):
        first = tuple(int(v) for v in wrong[0])
        raise BenchError(f"{what}: {len(wrong)} of {y.size} outputs differ from the "
                         f"reference, first at {first}: {int(y[first])} != "
                         f"{int(expected[first])}")


def _round_up(n, m):
    return -(-n // m) * m


def layer_bounds(cfg, layer, requant=True):
    """Utilisation bounds of a layer from its geometry, per method.

    mac: useful / issued MACs, where issued counts every product the method's
    dense convolutions compute (border products that read padding, zero-inserted
    pixels, channels rounded up to R and C): the best utilisation an array that
    is busy every cycle reaches. dma: useful MACs / (PEs x the cycles the bus
    needs to read every weight and input byte once and write every output byte
    once, B bytes per cycle per direction): binding when each weight is used on
    few pixels (1x1 inputs). Returns {method: {"issued", "mac", "dma", "bound",
    "binding"}}.
    """
    params = layer.params
    c_in, h, w = layer.input
    out_c, out_h, out_w = layer.output
    counts = mac_counts(params, h, w)
    pes, bus = cfg.pes, cfg.bus_bytes
    ci_pad = _round_up(c_in, cfg.rows) / c_in
    k = params.kernel_size[0] * params.kernel_size[1]
    weight_bytes = _round_up(c_in, cfg.rows) * _round_up(out_c, cfg.cols) * k
    in_bytes = h * w * _round_up(c_in, cfg.rows)
    out_bytes = out_h * out_w * _round_up(out_c, cfg.cols) * (1 if requant else 4)
    dma_cycles = max((weight_bytes + in_bytes) / bus, out_bytes / bus)
    fused_channels = fused_phases(params, h, w).channels
    issued = {
        "split": counts.split * ci_pad * _round_up(out_c, cfg.cols) / out_c,
        "split-fused": counts.fused * ci_pad * _round_up(fused_channels, cfg.cols)
        / fused_channels,
        "zero-insert": counts.zero_insert * ci_pad * _round_up(out_c, cfg.cols) / out_c,
    }
    bounds = {}
    for method, macs in issued.items():
        mac = counts.useful / macs
        dma = counts.useful / (pes * dma_cycles)
        bounds[method] = {"issued": int(round(macs)), "mac": mac, "dma": dma,
                          "bound": min(mac, dma),
                          "binding": "padding products" if mac <= dma else "DMA (weights)"}
    return bounds


# ---------------------------------------------------------------------------
# Options and progress


@dataclass
class BenchOptions:
    """What `run_bench` runs. `networks`: keys (None: all); `layers`: names of layers
    to keep (None: all); `divisor`: channel divisor; `backend`: "cosim" or "model"."""

    quick: bool = False
    networks: tuple | None = None
    layers: tuple | None = None
    methods: tuple = METHODS
    divisor: int = 1
    backend: str = "cosim"
    verilog: Path | None = None
    seed: int = 0
    conv: bool = True
    speed: bool = True
    speed_repeat: int = 5
    transport: Transport | None = None      # use this instead of opening `backend` (tests)
    partial_path: Path | None = None        # the layer results are saved here before the
                                            # Conv2d section (kept if a later step fails)
    log: object = field(default=print)


class Progress:
    """One line per finished step with elapsed time and an estimate of the rest,
    the rest's weight being its modelled cycles plus a per-run overhead."""

    def __init__(self, weights, log):
        self.weights = weights
        self.total = sum(weights)
        self.done = 0
        self.index = 0
        self.start = time.monotonic()
        self.log = log

    def step(self, text):
        self.done += self.weights[self.index]
        self.index += 1
        elapsed = time.monotonic() - self.start
        left = elapsed * (self.total - self.done) / self.done if self.done else 0.0
        self.log(f"[{self.index:3d}/{len(self.weights)}] {text}  "
                 f"elapsed {_clock(elapsed)}  remaining ~{_clock(left)}")


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------
# The bench


def _selected_networks(options):
    nets = NETWORKS if options.networks is None else tuple(network(k) for k in options.networks)
    result = []
    for net in nets:
        net = scaled_network(net, options.divisor)
        if options.layers is not None:
            net = replace(net, layers=tuple(l for l in net.layers if l.name in options.layers
                                            or f"{net.key}/{l.name}" in options.layers))
        if net.layers:
            result.append(net)
    if not result:
        raise ValueError("no layer selected")
    return result


def _stats_record(cfg, stats, recorder, requant=True):
    """Counters of a run plus the derived utilisation and energy."""
    words = {"input": 0, "weights": 0, "params": 0}
    for desc in recorder.descriptors:
        for kind, n in energy.dma_words(cfg, desc).items():
            words[kind] += n
    record = {key: stats[key] for key in ("cycles", "macs_issued", "macs_useful",
                                          "bytes_read", "bytes_written", "stall_cycles",
                                          "active_cycles", "descriptors")}
    record["utilization"] = stats["macs_useful"] / (cfg.pes * stats["cycles"])
    record["busy"] = stats["macs_issued"] / (cfg.pes * stats["cycles"])
    record["dma_words"] = words
    record["dma_words_match"] = sum(words.values()) * cfg.bus_bytes == stats["bytes_read"]
    record["energy_pj"] = energy.estimate(cfg, stats, words["weights"], requant)
    record["energy_pj_dram_high"] = energy.estimate(
        cfg, stats, words["weights"], requant,
        replace(energy.HOROWITZ_45NM, dram_word=2600.0))["total"]
    return record


def _model_accelerator(cfg, mem_size):
    return Accelerator(TimingModelTransport(cfg, mem_size=mem_size))


def _open_backend(options, cfg, stack_cleanup):
    """(transport, verilog path) of the backend under test."""
    if options.transport is not None:
        return options.transport, None
    if options.backend == "model":
        return ModelTransport(cfg), None
    from sim.cosim import CosimTransport
    if options.conv and options.speed:
        import sim.pure_tb  # noqa: F401 - imported now, with the cosim it must match
    verilog = options.verilog
    if verilog is None:
        from gen import generate
        tmp = tempfile.TemporaryDirectory()
        stack_cleanup.append(tmp.cleanup)
        verilog = generate(cfg, tmp.name)["verilog"]
    return CosimTransport(cfg, str(verilog)), Path(verilog)


def _check_verilog_config(verilog, cfg):
    manifest = Path(verilog).with_suffix(".json")
    try:
        params = json.loads(manifest.read_text())["parameters"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"--verilog {verilog}: cannot read its manifest {manifest} "
                         f"({error})") from error
    if AccelConfig(**params) != cfg:
        raise ValueError(f"--verilog {verilog} is not the default accelerator "
                         f"(manifest parameters {params}); the bench runs AccelConfig()")


def run_bench(options):
    """Run the bench; returns the results dict (see write_outputs for the files).

    Raises BenchError on a bit mismatch; the model tolerance is checked by
    `check_model_error` (run() calls it after writing the outputs).
    """
    log = options.log
    cfg = AccelConfig()
    if options.verilog is not None:
        _check_verilog_config(options.verilog, cfg)
    wall_start = time.monotonic()
    nets = _selected_networks(options)

    # Data, references and the cycle model's predictions first: they also weigh
    # the progress estimate.
    log(f"bench: {sum(len(n.layers) for n in nets)} layers x {len(options.methods)} methods "
        f"on {options.backend}{' (quick: channels / %d)' % options.divisor if options.quick else ''}")
    cleanup = []
    transport, verilog = None, None
    try:
        t0 = time.monotonic()
        transport, verilog = _open_backend(options, cfg, cleanup)
        log(f"bench: {options.backend} backend ready in {time.monotonic() - t0:.1f} s")
        mem_size = transport.mem_size
        model = _model_accelerator(cfg, mem_size)
        plan, weights = [], []
        for net in nets:
            for layer in net.layers:
                for method in options.methods:
                    x_shape = (1, *layer.input)
                    x = np.zeros(x_shape, np.int8)
                    w = np.zeros(layer.weight_shape, np.int8)
                    try:
                        _, predicted = model.conv_transpose2d(
                            x, w, stride=layer.stride, padding=layer.padding,
                            output_padding=layer.output_padding, method=method,
                            requant=dict(multiplier=1 << 30, shift=0))
                    except ValueError as error:
                        predicted = {"error": str(error)}
                    plan.append((net, layer, method, predicted))
                    weights.append(predicted.get("cycles", 0) + RUN_OVERHEAD_CYCLES)
        conv_pred = None
        if options.conv:
            conv_pred = _conv_prediction(cfg, mem_size)
            weights.append(conv_pred["cycles"] * (3 if options.speed else 1)
                           + RUN_OVERHEAD_CYCLES)
        progress = Progress(weights, log)

        recorder = Recorder(transport)
        accelerator = Accelerator(recorder)
        layers = {}
        current = None
        for net, layer, method, predicted in plan:
            key = f"{net.key}/{layer.name}"
            if key not in layers:
                t0 = time.monotonic()
                data = layer_data(layer, _seed(options.seed, net.key, layer.name))
                x, w, bias, requant = data
                expected = _requantized(conv_transpose2d_reference(x, w, bias, layer.params),
                                        requant)
                current = (data, expected)
                layers[key] = _layer_record(cfg, net, layer)
                layers[key]["reference_seconds"] = time.monotonic() - t0
            (x, w, bias, requant), expected = current
            record = layers[key]
            recorder.clear()
            t0 = time.monotonic()
            try:
                y, stats = accelerator.conv_transpose2d(
                    x, w, bias, stride=layer.stride, padding=layer.padding,
                    output_padding=layer.output_padding, method=method, requant=requant)
            except ValueError as error:
                record["methods"][method] = {"runnable": False, "reason": str(error)}
                progress.step(f"{key:26s} {method:12s} not runnable: {error}")
                continue
            seconds = time.monotonic() - t0
            _check_equal(y, expected, f"{key} {method} ({options.backend})")
            run_record = _stats_record(cfg, stats, recorder)
            run_record.update(runnable=True, bit_exact=True, wall_seconds=seconds,
                              sim_seconds=recorder.wait_seconds,
                              model_cycles=predicted["cycles"],
                              model_error=(predicted["cycles"] - stats["cycles"])
                              / stats["cycles"])
            record["methods"][method] = run_record
            progress.step(f"{key:26s} {method:12s} {stats['cycles']:>10,d} cycles "
                          f"util {run_record['utilization']:6.1%} "
                          f"model {run_record['model_error']:+.2%} "
                          f"({seconds:.1f} s)")

        results = {
            "meta": _meta(options, cfg, verilog),
            "config": cfg.as_dict(),
            "energy_table": energy.table_dict(),
            "layers": [_finish_layer(r, cfg) for r in layers.values()],
        }
        results["networks"] = [_network_record(cfg, net, results["layers"])
                               for net in nets]
        if options.partial_path is not None:
            Path(options.partial_path).parent.mkdir(parents=True, exist_ok=True)
            Path(options.partial_path).write_text(
                json.dumps(results, indent=1, default=_json_default) + "\n")
        if options.conv:
            results["conv2d"] = _conv_section(cfg, options, transport, verilog, conv_pred,
                                              log)
            progress.step(f"conv2d 3x3 64->64 32x32 "
                          f"{results['conv2d']['cycles']:>10,d} cycles "
                          f"util {results['conv2d']['utilization']:6.1%}")
    finally:
        if transport is not None:
            transport.close()
        for fn in cleanup:
            fn()
    results["meta"]["wall_seconds"] = time.monotonic() - wall_start
    results["summary"] = _summary(results)
    return results


def _layer_record(cfg, net, layer):
    c, h, w = layer.input
    counts = mac_counts(layer.params, h, w)
    return {
        "network": net.key, "layer": layer.name, "describe": layer.describe(),
        "input": list(layer.input), "output": list(layer.output),
        "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
        "output_padding": layer.output_padding,
        "macs_useful": counts.useful, "ideal_cycles": counts.useful / cfg.pes,
        "mac_counts": {"useful": counts.useful, "split": counts.split,
                       "split-fused": counts.fused, "zero-insert": counts.zero_insert},
        "bounds": layer_bounds(cfg, layer),
        "methods": {},
    }


def _finish_layer(record, cfg):
    """Speed-ups and energy savings over zero insertion."""
    methods = record["methods"]
    base = methods.get("zero-insert", {})
    record["speedup"], record["energy_saving"] = {}, {}
    for method in ("split", "split-fused"):
        run = methods.get(method, {})
        if run.get("runnable") and base.get("runnable"):
            record["speedup"][method] = base["cycles"] / run["cycles"]
            record["energy_saving"][method] = energy.saving(run["energy_pj"]["total"],
                                                            base["energy_pj"]["total"])
        else:
            record["speedup"][method] = None
            record["energy_saving"][method] = None
    for method, run in methods.items():
        if run.get("runnable"):
            bound = record["bounds"][method]
            run["mac_bound"] = bound["mac"]
            run["util_bound"] = bound["bound"]
            run["binding"] = bound["binding"]
            run["of_bound"] = run["utilization"] / bound["bound"]
            run["issued_matches_geometry"] = run["macs_issued"] == bound["issued"]
    return record


def _network_record(cfg, net, layer_records):
    mine = [r for r in layer_records if r["network"] == net.key]
    record = {"key": net.key, "title": net.title, "paper": net.paper,
              "paper_speedup": net.paper_speedup, "layers": [r["layer"] for r in mine],
              "source": net.source, "methods": {}}
    for method in METHODS:
        runs = [r["methods"].get(method) for r in mine]
        done = [(r, run) for r, run in zip(mine, runs) if run and run.get("runnable")]
        if not done:
            continue
        total = {key: sum(run[key] for _, run in done)
                 for key in ("cycles", "macs_issued", "macs_useful", "bytes_read",
                             "bytes_written", "active_cycles")}
        total["energy_pj"] = sum(run["energy_pj"]["total"] for _, run in done)
        total["energy_pj_dram_high"] = sum(run["energy_pj_dram_high"] for _, run in done)
        total["ideal_cycles"] = total["macs_useful"] / cfg.pes
        total["utilization"] = total["macs_useful"] / (cfg.pes * total["cycles"])
        total["busy"] = total["macs_issued"] / (cfg.pes * total["cycles"])
        total["complete"] = len(done) == len(mine)
        total["missing"] = [r["layer"] for r, run in zip(mine, runs)
                            if not (run and run.get("runnable"))]
        record["methods"][method] = total
    # Speed-ups over the layers every compared method ran.
    base = "zero-insert"
    record["speedup"], record["energy_saving"], record["speedup_layers"] = {}, {}, {}
    for method in ("split", "split-fused"):
        common = [r for r in mine
                  if r["methods"].get(method, {}).get("runnable")
                  and r["methods"].get(base, {}).get("runnable")]
        if not common:
            record["speedup"][method] = record["energy_saving"][method] = None
            record["speedup_layers"][method] = []
            continue
        cycles = sum(r["methods"][method]["cycles"] for r in common)
        base_cycles = sum(r["methods"][base]["cycles"] for r in common)
        joules = sum(r["methods"][method]["energy_pj"]["total"] for r in common)
        base_joules = sum(r["methods"][base]["energy_pj"]["total"] for r in common)
        joules_hi = sum(r["methods"][method]["energy_pj_dram_high"] for r in common)
        base_hi = sum(r["methods"][base]["energy_pj_dram_high"] for r in common)
        record["speedup"][method] = base_cycles / cycles
        record["energy_saving"][method] = energy.saving(joules, base_joules)
        record.setdefault("energy_saving_dram_high", {})[method] = energy.saving(joules_hi,
                                                                                 base_hi)
        record["speedup_layers"][method] = [r["layer"] for r in common]
    return record


# ---------------------------------------------------------------------------
# Conv2d, model accuracy and simulation speed


CONV_SHAPE = dict(in_channels=64, out_channels=64, size=32, kernel=3, padding=1)


def _conv_data(seed=1):
    s = CONV_SHAPE
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, s["in_channels"], s["size"], s["size"]), dtype=np.int8)
    w = rng.integers(-128, 128, (s["out_channels"], s["in_channels"], s["kernel"], s["kernel"]),
                     dtype=np.int8)
    params = Conv2dParams(s["in_channels"], s["out_channels"], s["kernel"],
                          padding=s["padding"])
    sigma = math.sqrt(s["in_channels"] * s["kernel"] ** 2) * INT8_SIGMA ** 2
    bias = np.round(rng.normal(0, sigma / 4, s["out_channels"])).astype(np.int32)
    mult, shift = quantize_multiplier(OUTPUT_SIGMA / sigma * rng.uniform(0.8, 1.25,
                                                                          s["out_channels"]))
    requant = dict(multiplier=mult, shift=shift, zero_point=0, act_min=-128, act_max=127)
    return x, w, bias, params, requant


def _conv_prediction(cfg, mem_size):
    x, w, bias, params, requant = _conv_data()
    _, stats = _model_accelerator(cfg, mem_size).conv2d(x, w, bias, padding=params.padding,
                                                        requant=requant)
    return stats


def _conv_section(cfg, options, transport, verilog, predicted, log):
    """Conv2d 3x3 64->64 32x32 p1 on the backend: utilisation, model error, and the
    cosimulation speed against the pure-Verilog testbench on its descriptor."""
    x, w, bias, params, requant = _conv_data()
    recorder = Recorder(transport)
    accelerator = Accelerator(recorder)
    before = _sim_counters(transport)
    t0 = time.monotonic()
    y, stats = accelerator.conv2d(x, w, bias, padding=params.padding, requant=requant)
    seconds = time.monotonic() - t0
    driver_run = _sim_delta(before, _sim_counters(transport))
    _check_equal(y, _requantized(conv2d_reference(x, w, bias, params), requant),
                 f"conv2d ({options.backend})")
    record = _stats_record(cfg, stats, recorder)
    useful_pairs = (params.macs(32, 32) / (64 * 64)) / (32 * 32 * 9)
    record.update(
        layer="Conv2d 3x3, 64->64, 32x32, padding 1", bit_exact=True, wall_seconds=seconds,
        model_cycles=predicted["cycles"],
        model_error=(predicted["cycles"] - stats["cycles"]) / stats["cycles"],
        mac_bound=useful_pairs, target=CONV_UTIL_TARGET,
        met=record["utilization"] >= CONV_UTIL_TARGET)
    record["speed"] = {"skipped": "needs the cosim backend"}
    if options.speed and options.backend == "cosim" and options.transport is None:
        try:
            record["speed"] = _speed_comparison(cfg, transport, verilog, recorder,
                                                driver_run, options.speed_repeat, log)
        except Exception as error:      # noqa: BLE001 - reported, and fails the bench
            log(f"bench: the speed comparison failed: {error!r}")
            record["speed"] = {"error": f"{type(error).__name__}: {error}"}
    return record


def _sim_counters(transport):
    """(simulated cycles, wall seconds, simulator CPU seconds or None) of CosimTransport's
    wait_done so far."""
    stats = getattr(transport, "stats", None)
    return (getattr(transport, "sim_cycles", None), getattr(transport, "wait_seconds", None),
            getattr(stats, "wait_cpu_seconds", None))


def _sim_delta(before, after):
    return tuple(None if a is None or b is None else a - b for a, b in zip(after, before))


def _replay(transport, job, max_cycles):
    """The recorded job through `transport` by raw register writes: (cycles, wall seconds,
    simulator CPU seconds or None, dump), the times those of wait_done."""
    for addr, data in job["image"]:
        transport.write_mem(addr, data)
    for offset, value in job["regs"]:
        transport.write_reg(offset, value)
    transport.write_reg(REG["CTRL"], CTRL_START)
    before = _sim_counters(transport)
    transport.wait_done(max_cycles)
    cycles, seconds, cpu = _sim_delta(before, _sim_counters(transport))
    return cycles, seconds, cpu, transport.read_mem(*job["dump"])


def _speed_comparison(cfg, transport, verilog, recorder, driver_run, repeat, log):
    """Simulated cycles per second of the cocotb harness (CosimTransport: sim_cycles /
    wait_seconds of wait_done) and of the pure-Verilog testbench on the same job: the
    driver's own run plus `repeat - 1` raw replays against `repeat` testbench runs, best
    of each. Wall clock is the measure; simulator CPU seconds are reported beside it
    (steadier on a loaded machine) when the harnesses provide them."""
    import inspect
    from sim.pure_tb import run_pure_tb
    if len(recorder.descriptors) != 1:
        raise BenchError(f"the speed comparison needs a one-descriptor layer, the Conv2d "
                         f"ran {len(recorder.descriptors)}")
    job = recorder.first_job()
    driver_dump = transport.read_mem(*job["dump"])
    cosim_runs = [(*driver_run, driver_dump)]
    max_cycles = 4 * driver_run[0] + 10_000
    with_stats = "stats" in inspect.signature(run_pure_tb).parameters
    t0 = time.monotonic()
    pure_runs = []
    # Alternate the harnesses so that other jobs on the machine hit both alike.
    for index in range(max(repeat, 1)):
        extra = {}
        kwargs = {"stats": extra} if with_stats else {}
        result = run_pure_tb(cfg, verilog, image=job["image"], regs=job["regs"],
                             dump=job["dump"], max_cycles=max_cycles,
                             options=transport.options, **kwargs)
        pure_runs.append((result.cycles, result.seconds, extra.get("cpu_seconds"),
                          result.data))
        if index:
            cosim_runs.append(_replay(transport, job, max_cycles))
    log(f"bench: speed comparison, {len(cosim_runs)} cosim and {len(pure_runs)} pure-Verilog "
        f"runs in {time.monotonic() - t0:.1f} s (a testbench build included when not cached)")

    def best(runs, column):
        timed = [r for r in runs if r[column]]
        return max(timed, key=lambda r: r[0] / r[column]) if timed else None

    cosim, pure = best(cosim_runs, 1), best(pure_runs, 1)
    cosim_cps, pure_cps = cosim[0] / cosim[1], pure[0] / pure[1]
    ratio = cosim_cps / pure_cps
    median_ratio = (float(np.median([r[0] / r[1] for r in cosim_runs]))
                    / float(np.median([r[0] / r[1] for r in pure_runs])))
    record = {
        "cycles_cosim": cosim[0], "cycles_pure": pure[0],
        "cycles_match": len({r[0] for r in cosim_runs + pure_runs}) == 1,
        "data_match": all(r[3] == driver_dump for r in cosim_runs + pure_runs),
        "cosim_seconds": [r[1] for r in cosim_runs],
        "pure_seconds": [r[1] for r in pure_runs],
        "cosim_cycles_per_second": cosim_cps, "pure_cycles_per_second": pure_cps,
        "ratio": ratio, "ratio_median": median_ratio, "target": SPEED_TARGET,
        "met": ratio >= SPEED_TARGET,
        "repeat": repeat, "image_bytes": sum(len(d) for _, d in job["image"]),
        "register_writes": len(job["regs"]),
    }
    cosim_cpu, pure_cpu = best(cosim_runs, 2), best(pure_runs, 2)
    if cosim_cpu and pure_cpu:
        record.update(
            cosim_cpu_seconds=[r[2] for r in cosim_runs],
            pure_cpu_seconds=[r[2] for r in pure_runs],
            cosim_cycles_per_cpu_second=cosim_cpu[0] / cosim_cpu[2],
            pure_cycles_per_cpu_second=pure_cpu[0] / pure_cpu[2],
            ratio_cpu=(cosim_cpu[0] / cosim_cpu[2]) / (pure_cpu[0] / pure_cpu[2]))
    try:
        record["load_average"] = os.getloadavg()
    except OSError:
        pass
    return record


# ---------------------------------------------------------------------------
# Checks and summary


def _runs(results):
    for layer in results["layers"]:
        for method, run in layer["methods"].items():
            if run.get("runnable"):
                yield f"{layer['network']}/{layer['layer']} {method}", run
    if "conv2d" in results:
        yield "conv2d", results["conv2d"]


def check_model_error(results, tolerance=MODEL_TOLERANCE):
    """BenchError naming the runs whose model cycles miss the RTL's by more than
    `tolerance`; returns the largest |error| otherwise."""
    errors = [(name, run["model_error"]) for name, run in _runs(results)]
    bad = [(name, e) for name, e in errors if abs(e) > tolerance]
    if bad:
        text = ", ".join(f"{name} {e:+.2%}" for name, e in bad)
        raise BenchError(f"cycle model beyond {tolerance:.0%} of the RTL on {len(bad)} "
                         f"run(s): {text}")
    return max((abs(e) for _, e in errors), default=0.0)


def _summary(results):
    errors = [(name, run["model_error"]) for name, run in _runs(results)]
    worst = max(errors, key=lambda item: abs(item[1]), default=(None, 0.0))
    summary = {
        "runs": len(errors),
        "bit_exact": all(run.get("bit_exact") for _, run in _runs(results)),
        "model_max_error": abs(worst[1]), "model_worst_run": worst[0],
        "model_within_tolerance": abs(worst[1]) <= MODEL_TOLERANCE,
        "not_runnable": [f"{l['network']}/{l['layer']} {m}: {run['reason']}"
                         for l in results["layers"] for m, run in l["methods"].items()
                         if not run.get("runnable")],
    }
    split_layers = [(l, l["methods"]["split"]) for l in results["layers"]
                    if l["methods"].get("split", {}).get("runnable") and _wide(l)]
    summary["split_util_met"] = sum(run["utilization"] >= DECONV_UTIL_TARGET
                                    for _, run in split_layers)
    summary["split_layers"] = len(split_layers)
    return summary


def check_results(results):
    """Every check of the bench: raises BenchError listing the failures."""
    failures = []
    try:
        check_model_error(results)
    except BenchError as error:
        failures.append(str(error))
    if not results["summary"]["bit_exact"]:
        failures.append("a result was not bit-exact")
    speed = results.get("conv2d", {}).get("speed", {})
    if "error" in speed:
        failures.append(f"the simulation-speed measurement failed ({speed['error']})")
    if failures:
        raise BenchError("; ".join(failures))


# ---------------------------------------------------------------------------
# Meta


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _meta(options, cfg, verilog):
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python -m sw_driver bench" + (" --quick" if options.quick else "")
        + (f" --verilog {options.verilog}" if options.verilog else ""),
        "quick": options.quick, "divisor": options.divisor, "backend": options.backend,
        "methods": list(options.methods), "seed": options.seed,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(), "host": platform.node(),
        "cpus": os.cpu_count(), "verilog": str(verilog) if verilog else None,
    }
    if options.backend == "cosim":
        try:
            from sim.build import tool_versions
            meta["tools"] = tool_versions()
        except Exception as error:      # noqa: BLE001 - informative only
            meta["tools"] = {"error": str(error)}
    return meta


# ---------------------------------------------------------------------------
# Report


def _pct(v, digits=1):
    return "n/a" if v is None else f"{100 * v:.{digits}f}%"


def _x(v):
    return "n/a" if v is None else f"{v:.2f}x"


def _int(v):
    return f"{int(round(v)):,}"


def _kib(n):
    return f"{n / 1024:,.1f}"


def _uj(pj):
    return f"{pj / 1e6:,.2f}"


SHORT = {"split": "split", "split-fused": "fused", "zero-insert": "zero-ins"}


def _target_rows(results):
    rows = []
    s = results["summary"]
    rows.append(("All results bit-exact (int8, requantised) vs reference",
                 f"{s['runs']} runs", "met" if s["bit_exact"] else "MISSED", ""))
    rows.append((f"Cycle model within {MODEL_TOLERANCE:.0%} of RTL cycles on every run",
                 f"max {_pct(s['model_max_error'], 2)} ({s['model_worst_run']})",
                 "met" if s["model_within_tolerance"] else "MISSED", ""))
    conv = results.get("conv2d")
    if conv:
        reason = "" if conv["met"] else (
            f"bound {_pct(conv['mac_bound'])} (border products read padding), "
            f"{_pct(conv['utilization'] / conv['mac_bound'])} of it reached")
        rows.append((f"Conv2d 3x3 64->64 32x32 utilisation >= {CONV_UTIL_TARGET:.0%}",
                     _pct(conv["utilization"]), "met" if conv["met"] else "MISSED", reason))
        speed = conv["speed"]
        if "ratio" in speed:
            cpu = (f"; CPU time {speed['ratio_cpu']:.2f}" if "ratio_cpu" in speed else "")
            rows.append((f"Cosim speed / pure-Verilog TB >= {SPEED_TARGET}",
                         f"{speed['ratio']:.2f} ({speed['cosim_cycles_per_second']:,.0f} vs "
                         f"{speed['pure_cycles_per_second']:,.0f} cycles/s wall clock{cpu})",
                         "met" if speed["met"] else "MISSED",
                         "" if speed["cycles_match"] and speed["data_match"] else
                         "cycles or output differ between the harnesses"))
        elif "error" in speed:
            rows.append((f"Cosim speed / pure-Verilog TB >= {SPEED_TARGET}", "not measured",
                         "MISSED", f"the measurement failed: {speed['error']}"))
        else:
            rows.append((f"Cosim speed / pure-Verilog TB >= {SPEED_TARGET}", "not measured",
                         "skipped", speed.get("skipped", "")))
    for network in results["networks"]:
        speedup = network["speedup"].get("split")
        if network.get("paper_speedup") and speedup:
            rows.append((f"{network['key']} split speed-up >= the paper's "
                         f"{network['paper_speedup']:.2f}x", f"{speedup:.2f}x",
                         "met" if speedup >= network["paper_speedup"] else "missed",
                         "" if speedup >= network["paper_speedup"] else
                         "its 1x1-input projection layer dominates: see the per-layer table"))
    for layer in results["layers"]:
        run = layer["methods"].get("split")
        if not run or not run.get("runnable") or not _wide(layer):
            continue
        if layer["network"] == "dcgan" and (layer["kernel"], layer["stride"],
                                            layer["padding"]) == (4, 2, 1):
            speedup = layer["speedup"]["split"]
            rows.append((f"{layer['network']}/{layer['layer']} split >= "
                         f"{DCGAN_SPEEDUP_TARGET}x fewer cycles than zero-insert",
                         f"{speedup:.2f}x", "met" if speedup >= DCGAN_SPEEDUP_TARGET
                         else "missed", ""))
        met = run["utilization"] >= DECONV_UTIL_TARGET
        reason = ""
        if not met:
            reason = (f"geometric bound {_pct(run['util_bound'])} ({run['binding']}); "
                      f"{_pct(run['of_bound'])} of the bound reached")
        rows.append((f"{layer['network']}/{layer['layer']} split utilisation >= "
                     f"{DECONV_UTIL_TARGET:.0%}", _pct(run["utilization"]),
                     "met" if met else "missed", reason))
    return rows


def _wide(layer):
    """Whether the layer has at least TARGET_CHANNELS input and output channels."""
    return min(layer["input"][0], layer["output"][0]) >= TARGET_CHANNELS


def _bound_notes(results):
    notes = []
    for layer in results["layers"]:
        b = layer["bounds"]["split"]
        if b["binding"].startswith("DMA"):
            notes.append(f"{layer['network']}/{layer['layer']}: every weight is used on "
                         f"{layer['input'][1]}x{layer['input'][2]} input pixel(s); reading "
                         f"the weights once at {results['config']['axi_data_width'] // 8} "
                         f"B/cycle bounds utilisation at {_pct(b['dma'])}")
    return notes


def render_report(results, plots):
    """The Markdown report as a string; `plots` maps plot names to file names."""
    meta, cfg, s = results["meta"], results["config"], results["summary"]
    pes = cfg["rows"] * cfg["cols"]
    out = []
    w = out.append
    title = "Benchmarks" + (" (quick: channels / %d)" % meta["divisor"] if meta["quick"] else "")
    w(f"# {title}\n")
    w("Generated by `python -m sw_driver bench` (sw_driver/bench.py); do not edit by hand.\n")
    w(f"- Run: {meta['date']}, commit {meta['git_commit'] or '?'}"
      f"{' (with uncommitted changes)' if meta['git_dirty'] else ''}, host with "
      f"{meta['cpus']} CPUs, backend **{meta['backend']}**, wall time "
      f"**{_clock(meta['wall_seconds'])}** ({meta['wall_seconds']:.0f} s)"
      + (f" plus {_clock(results['sweep']['meta']['wall_seconds'])} for the design-space "
         "sweep" if results.get("sweep") else "") + ".")
    w(f"- Command: `{meta['command']}`")
    w(f"- Accelerator: default `AccelConfig()`: {cfg['rows']}x{cfg['cols']} = {pes} PEs, "
      f"{cfg['axi_data_width']}-bit AXI, in_depth {cfg['in_depth']}, acc_depth "
      f"{cfg['acc_depth']}, kernel_max {cfg['kernel_max']}, stride_max {cfg['stride_max']}.")
    w("- Data: random int8 inputs and weights, int32 bias, per-channel requantisation to "
      "int8 (outputs std about 40, act range -128..127); every output checked "
      "bit-exactly against `conv_transpose2d_reference` + `requantize`.")
    if meta["quick"]:
        w(f"- **Quick run**: every channel count divided by {meta['divisor']} (at least 1); "
          "utilisation and speed-ups are not those of the real networks.")
    w("")
    w("Definitions: *cycles* = the accelerator's CYCLES counter summed over the layer's "
      "descriptors; *ideal* = useful MACs / PEs (useful: products of an input pixel and a "
      "tap that land inside the output); *util* = useful MACs / (PEs x cycles); *busy* = "
      "MACs issued / (PEs x cycles) (array-busy); *bound* = the best util the geometry "
      "allows: useful / issued MACs (padding products, zero-inserted pixels, channels "
      "rounded up to 8) or, when lower, the bus time to read every weight and input byte "
      "once; *speed-up* = zero-insert cycles / method cycles; *model err* = (cycle model - "
      "RTL) / RTL; energy from the Horowitz 45 nm table (below).\n")

    w("## Targets\n")
    w("| target | measured | status | reason when missed |")
    w("|---|---|---|---|")
    for row in _target_rows(results):
        w("| " + " | ".join(row) + " |")
    w(f"\nSplit layers with >= {TARGET_CHANNELS} input and output channels at or above "
      f"{DECONV_UTIL_TARGET:.0%} utilisation: "
      f"{s['split_util_met']} of {s['split_layers']}. A missed layer is bounded by its "
      "geometry, computed from the layer alone: for K4 s2 p1 each phase is a 2x2 "
      "convolution over the whole input, so on a 4x4 input only 49/64 of the issued "
      "products are useful, on 8x8 (15/16)^2, on 16x16 (31/32)^2; 3 output channels "
      "fill 3 of 8 array columns; a 1x1 input uses every weight once, so reading the "
      "weights bounds it.")
    for note in _bound_notes(results):
        w(f"- {note}")
    if s["not_runnable"]:
        w("\nNot runnable (refused by the driver before touching the device):")
        for item in s["not_runnable"]:
            w(f"- {item}")
    w("")

    w("## Per network (the deconvolution stack)\n")
    w("| network | method | cycles | ideal | util | busy | speed-up | paper (Edge TPU) | "
      "DRAM rd KiB | DRAM wr KiB | energy uJ | saving |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for net in results["networks"]:
        for method, t in net["methods"].items():
            speed = net["speedup"].get(method) if method != "zero-insert" else None
            saving = net["energy_saving"].get(method) if method != "zero-insert" else None
            paper = _x(net["paper_speedup"]) if method == "split" and net["paper_speedup"] \
                else ""
            note = "" if t["complete"] else f" (without {', '.join(t['missing'])})"
            w(f"| {net['key']} | {method}{note} | {_int(t['cycles'])} | "
              f"{_int(t['ideal_cycles'])} | {_pct(t['utilization'])} | {_pct(t['busy'])} | "
              f"{_x(speed) if method != 'zero-insert' else '1.00x'} | {paper} | "
              f"{_kib(t['bytes_read'])} | {_kib(t['bytes_written'])} | "
              f"{_uj(t['energy_pj'])} | "
              f"{'' if saving is None else f'{saving:.1f}%'} |")
    partial = [n for n in results["networks"]
               if n["speedup"].get("split") is not None
               and len(n["speedup_layers"]["split"]) < len(n["layers"])]
    for net in partial:
        w(f"\n{net['key']}: speed-up and saving over "
          f"{', '.join(net['speedup_layers']['split'])} only (the layers zero insertion "
          "can run).")
    w("\nEnergy saving of split over zero insertion with DRAM at 2.6 nJ/word instead of "
      "1.3: " + ", ".join(
          f"{n['key']} {n['energy_saving_dram_high']['split']:.1f}%"
          for n in results["networks"] if n.get("energy_saving_dram_high")) + ".\n")
    if "speedup" in plots:
        w(f"![speed-up]({plots['speedup']})\n")

    w("## Per layer\n")
    w("| layer | geometry | method | cycles | ideal | util | busy | bound | model err | "
      "speed-up | DRAM rd KiB | DRAM wr KiB | energy uJ | saving |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layer in results["layers"]:
        name = f"{layer['network']}/{layer['layer']}"
        for method in METHODS:
            run = layer["methods"].get(method)
            if run is None:
                continue
            if not run.get("runnable"):
                w(f"| {name} | {layer['describe']} | {method} | not runnable: "
                  f"{run['reason']} | | | | | | | | | | |")
                continue
            speed = layer["speedup"].get(method)
            saving = layer["energy_saving"].get(method)
            w(f"| {name} | {layer['describe']} | {method} | {_int(run['cycles'])} | "
              f"{_int(layer['ideal_cycles'])} | {_pct(run['utilization'])} | "
              f"{_pct(run['busy'])} | {_pct(run['util_bound'])} | "
              f"{100 * run['model_error']:+.2f}% | "
              f"{'' if method == 'zero-insert' else _x(speed)} | {_kib(run['bytes_read'])} | "
              f"{_kib(run['bytes_written'])} | {_uj(run['energy_pj']['total'])} | "
              f"{'' if saving is None else f'{saving:.1f}%'} |")
    w("")
    if "utilisation" in plots:
        w(f"![utilisation]({plots['utilisation']})\n")

    conv = results.get("conv2d")
    if conv:
        w("## Conv2d, cycle model and simulation speed\n")
        w(f"**{conv['layer']}** in {meta['backend']}: {_int(conv['cycles'])} cycles, "
          f"utilisation **{_pct(conv['utilization'])}** (target {CONV_UTIL_TARGET:.0%}; "
          f"geometric bound {_pct(conv['mac_bound'])}: the border products read padding), "
          f"array busy {_pct(conv['busy'])}, cycle model {_int(conv['model_cycles'])} "
          f"({100 * conv['model_error']:+.2f}%), DRAM {_kib(conv['bytes_read'])} KiB read, "
          f"{_kib(conv['bytes_written'])} KiB written, {_uj(conv['energy_pj']['total'])} uJ.\n")
        speed = conv["speed"]
        if "ratio" in speed:
            w("Simulation speed on this layer's descriptor and memory image (the driver's "
              "register writes and memory image recorded, replayed through both harnesses "
              "in the same run, alternating; best of "
              f"{speed['repeat']} each; wall time of the wait for the interrupt only):\n")
            w("| harness | cycles | seconds | cycles/s |")
            w("|---|---:|---:|---:|")
            w(f"| cocotb + Verilator (CosimTransport) | {_int(speed['cycles_cosim'])} | "
              f"{min(speed['cosim_seconds']):.2f} | {speed['cosim_cycles_per_second']:,.0f} |")
            w(f"| pure Verilog testbench (Verilator --binary) | {_int(speed['cycles_pure'])} | "
              f"{min(speed['pure_seconds']):.2f} | {speed['pure_cycles_per_second']:,.0f} |")
            w(f"\nRatio **{speed['ratio']:.2f}** (target {SPEED_TARGET}; the ratio of the "
              f"medians is {speed.get('ratio_median', float('nan')):.2f}); cycle counts "
              f"{'agree' if speed['cycles_match'] else 'DIFFER'}, outputs "
              f"{'agree' if speed['data_match'] else 'DIFFER'}.")
            if "ratio_cpu" in speed:
                w(f"Measured with the simulator processes' CPU time instead of the wall "
                  f"clock (steadier when other jobs share the machine): "
                  f"{speed['cosim_cycles_per_cpu_second']:,.0f} vs "
                  f"{speed['pure_cycles_per_cpu_second']:,.0f} cycles per CPU second, "
                  f"ratio {speed['ratio_cpu']:.2f}.")
            if "load_average" in speed:
                w(f"Load average during the run: "
                  f"{', '.join(f'{v:.1f}' for v in speed['load_average'])} "
                  f"(1, 5, 15 min) on {meta['cpus']} CPUs.")
            w("")
        else:
            w(f"Simulation speed not measured: "
              f"{speed.get('skipped') or speed.get('error')}.\n")
    w(f"Cycle model (`sw_driver.cycles.simulate` through `ModelTransport` and the same "
      f"driver) against the RTL: largest error {_pct(s['model_max_error'], 2)} "
      f"({s['model_worst_run']}) over {s['runs']} runs; tolerance {MODEL_TOLERANCE:.0%}.\n")

    table = results["energy_table"]
    w("## Energy model\n")
    w(f"Per-operation energies from {table['source']}: 8-bit multiply {table['mult8']} pJ, "
      f"32-bit add {table['add32']} pJ (8-bit add {table['add8']} pJ, unused), 64-bit read "
      f"from an 8 KB SRAM {table['sram_word']:g} pJ, 64-bit DRAM access "
      f"{table['dram_word'] / 1000:g} nJ (the table's range is 1.3-2.6 nJ).\n")
    w("Energy = MACs issued x (multiply + 32-bit add) + SRAM words x 10 pJ + DRAM words x "
      "1.3 nJ, with SRAM words = input reads (one 64-bit word per active cycle) + "
      "accumulator read and write (2 x 4 words per active cycle) + accumulator reads by the "
      "store (4 words per output pixel) + buffer fills (one write per DRAM word read) + "
      "weight reads into the array (one per weight word loaded); DRAM words = "
      "(BYTES_RD + BYTES_WR) / 8. Control, clocks and leakage are not modelled; split-fused's "
      "depth-to-space happens on the host when unpacking and is not charged.\n")
    w("## Workloads\n")
    w("See `sw_driver/networks.py` for the sources and the choices (DCGAN TF's K5 s2 SAME "
      "is PyTorch p=2, op=1; FCN-8s's upscore8 K16 s8 p4 exceeds kernel_max 7, so zero "
      "insertion cannot run it while split runs it as 64 phases of 2x2).\n")
    w("| network | layers | paper speed-up (Edge TPU) |")
    w("|---|---|---:|")
    for net in results["networks"]:
        geoms = "; ".join(l["describe"] for l in results["layers"]
                          if l["network"] == net["key"])
        w(f"| {net['title']} | {geoms} | {_x(net['paper_speedup']) if net['paper_speedup'] else ''} |")
    w("")
    sweep = results.get("sweep")
    if sweep:
        w("## Design-space sweep (cycle model)\n")
        w(_sweep_intro(sweep["meta"]))
        if "sweep" in plots:
            w(f"![sweep]({plots['sweep']})\n")
        out.extend(_sweep_table(sweep["points"]))
        w("")
    else:
        w("Design-space sweep (array shapes and buffer sizes, cycle model): "
          "`python -m sw_driver bench --sweep`.\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_speedup(results, path):
    plt = _pyplot()
    layers = [l for l in results["layers"] if any(v is not None
                                                  for v in l["speedup"].values())]
    nets = results["networks"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5),
                                   gridspec_kw={"width_ratios": [max(len(layers), 1),
                                                                 max(len(nets), 1) * 1.3]})
    xs = np.arange(len(layers))
    for i, method in enumerate(("split", "split-fused")):
        values = [l["speedup"][method] or 0 for l in layers]
        ax1.bar(xs + (i - 0.5) * 0.38, values, 0.38, label=method)
    ax1.set_xticks(xs, [f"{l['network']}/{l['layer']}" for l in layers], rotation=75,
                   fontsize=7)
    ax1.axhline(1, color="gray", lw=0.8)
    ax1.set_ylabel("speed-up over zero insertion (RTL cycles)")
    ax1.set_title("per layer")
    ax1.legend(fontsize=8)
    xs = np.arange(len(nets))
    for i, method in enumerate(("split", "split-fused")):
        values = [n["speedup"].get(method) or 0 for n in nets]
        ax2.bar(xs + (i - 1) * 0.27, values, 0.27, label=f"{method} (this accelerator)")
    paper = [n["paper_speedup"] or 0 for n in nets]
    ax2.bar(xs + 0.27, paper, 0.27, label="paper, Edge TPU (split)", color="gray")
    ax2.set_xticks(xs, [n["key"] for n in nets], rotation=30, fontsize=8)
    ax2.axhline(1, color="gray", lw=0.8)
    ax2.set_title("per network (deconvolution stack)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_utilisation(results, path):
    plt = _pyplot()
    layers = results["layers"]
    fig, ax = plt.subplots(figsize=(14, 5))
    xs = np.arange(len(layers))
    for i, method in enumerate(METHODS):
        values = [l["methods"].get(method, {}).get("utilization", 0) or 0 for l in layers]
        ax.bar(xs + (i - 1) * 0.27, [100 * v for v in values], 0.27, label=method)
    bounds = [100 * l["bounds"]["split"]["bound"] for l in layers]
    ax.scatter(xs - 0.27, bounds, marker="_", s=120, color="black", zorder=3,
               label="split: geometric bound")
    ax.axhline(100 * DECONV_UTIL_TARGET, color="red", lw=0.8, ls="--", label=f"{DECONV_UTIL_TARGET:.0%} target")
    ax.set_xticks(xs, [f"{l['network']}/{l['layer']}" for l in layers], rotation=75,
                  fontsize=7)
    ax.set_ylabel("useful-MAC utilisation (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS = {"speedup": ("bench-speedup.png", plot_speedup),
         "utilisation": ("bench-utilisation.png", plot_utilisation)}


def write_outputs(results, out_dir, docs_dir=None, write_json=True):
    """results.json, benchmarks.md and the plots into out_dir (and the report and
    plots into docs_dir when given). Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if write_json:
        json_path = out_dir / "results.json"
        json_path.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
        written.append(json_path)
    dirs = [out_dir] + ([Path(docs_dir)] if docs_dir is not None else [])
    plots = {name: file for name, (file, _) in PLOTS.items()}
    if results.get("sweep"):
        plots["sweep"] = "bench-sweep.png"
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
        for name, (file, fn) in PLOTS.items():
            fn(results, directory / file)
            written.append(directory / file)
        if results.get("sweep"):
            plot_sweep(results["sweep"]["points"], directory / plots["sweep"])
            written.append(directory / plots["sweep"])
        report = directory / "benchmarks.md"
        report.write_text(render_report(results, plots))
        written.append(report)
    return written


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------------------
# Design-space sweep


def sweep_section(network_keys=SWEEP_NETWORKS, divisor=1, log=print, **kwargs):
    """run_sweep with its meta: {"meta": ..., "points": ...}."""
    start = time.monotonic()
    points = run_sweep(network_keys=network_keys, divisor=divisor, log=log, **kwargs)
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "wall_seconds": time.monotonic() - start, "divisor": divisor,
            "networks": list(network_keys)}
    return {"meta": meta, "points": points}


def run_sweep(shapes=DEFAULT_SWEEP_SHAPES, buffers=DEFAULT_SWEEP_BUFFERS,
              network_keys=SWEEP_NETWORKS, divisor=1, log=print):
    """The cycle model over array shapes (R, C) and buffer sizes (in_depth, acc_depth).

    Each point runs the driver on a TimingModelTransport of that configuration
    for every layer of the networks and every method; returns a list of points
    {rows, cols, pes, in_depth, acc_depth, network, cycles, utilization, speedup}.
    """
    requant = dict(multiplier=1 << 30, shift=0)
    points = []
    start = time.monotonic()
    nets = [scaled_network(network(k), divisor) for k in network_keys]
    total = len(shapes) * len(buffers)
    for index, ((rows, cols), (in_depth, acc_depth)) in enumerate(
            (s, b) for s in shapes for b in buffers):
        cfg = AccelConfig(rows=rows, cols=cols, in_depth=in_depth, acc_depth=acc_depth)
        accelerator = Accelerator(TimingModelTransport(cfg))
        for net in nets:
            cycles = dict.fromkeys(METHODS, 0)
            useful = issued = 0
            for layer in net.layers:
                x = np.zeros((1, *layer.input), np.int8)
                w = np.zeros(layer.weight_shape, np.int8)
                for method in METHODS:
                    _, stats = accelerator.conv_transpose2d(
                        x, w, stride=layer.stride, padding=layer.padding,
                        output_padding=layer.output_padding, method=method, requant=requant)
                    cycles[method] += stats["cycles"]
                    if method == "split":
                        useful += stats["macs_useful"]
                        issued += stats["macs_issued"]
            points.append({
                "rows": rows, "cols": cols, "pes": cfg.pes, "in_depth": in_depth,
                "acc_depth": acc_depth, "network": net.key, "cycles": cycles,
                "utilization": {m: useful / (cfg.pes * c) for m, c in cycles.items()},
                "busy_split": issued / (cfg.pes * cycles["split"]),
                "speedup": {m: cycles["zero-insert"] / cycles[m]
                            for m in ("split", "split-fused")},
            })
        log(f"[{index + 1:3d}/{total}] sweep R={rows} C={cols} in_depth={in_depth} "
            f"acc_depth={acc_depth}: " + ", ".join(
                f"{p['network']} split {p['speedup']['split']:.2f}x "
                f"util {p['utilization']['split']:.0%}" for p in points[-len(nets):])
            + f"  elapsed {_clock(time.monotonic() - start)}")
    return points


def plot_sweep(points, path):
    plt = _pyplot()
    nets = list(dict.fromkeys(p["network"] for p in points))
    buffers = sorted({(p["in_depth"], p["acc_depth"]) for p in points})
    markers = "os^dv"
    fig, axes = plt.subplots(2, len(nets), figsize=(6 * len(nets), 8), squeeze=False)
    for col, key in enumerate(nets):
        for b_index, buffer in enumerate(buffers):
            mine = [p for p in points if p["network"] == key
                    and (p["in_depth"], p["acc_depth"]) == buffer]
            for row, (metric, label) in enumerate((("speedup", "split / zero-insert speed-up"),
                                                   ("utilization", "split utilisation"))):
                ax = axes[row][col]
                ys = [p[metric]["split"] * (100 if metric == "utilization" else 1)
                      for p in mine]
                ax.scatter([p["pes"] * (1 + 0.04 * (b_index - 1)) for p in mine], ys,
                           marker=markers[b_index % len(markers)],
                           label=f"in_depth {buffer[0]}, acc_depth {buffer[1]}")
                for p, y in zip(mine, ys):
                    if b_index == len(buffers) // 2:
                        ax.annotate(f"{p['rows']}x{p['cols']}", (p["pes"], y), fontsize=6,
                                    xytext=(3, 3), textcoords="offset points")
                ax.set_xscale("log", base=2)
                ax.set_xlabel("PEs (R x C)")
                ax.set_ylabel(label + (" (%)" if metric == "utilization" else ""))
                ax.set_title(key)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sweep_table(points):
    """Markdown rows: per network and array shape, split's speed-up over zero insertion
    and its utilisation for each buffer size, and split-fused's speed-up."""
    buffers = sorted({(p["in_depth"], p["acc_depth"]) for p in points})
    heads = [f"{i}/{a}" for i, a in buffers]
    out = ["| network | R x C | PEs | "
           + " | ".join(f"split speed-up {h}" for h in heads) + " | "
           + " | ".join(f"split util {h}" for h in heads) + " | "
           + " | ".join(f"fused speed-up {h}" for h in heads) + " |",
           "|---|---|---:|" + "---:|" * (3 * len(buffers))]
    nets = list(dict.fromkeys(p["network"] for p in points))
    shapes = sorted({(p["rows"], p["cols"]) for p in points},
                    key=lambda rc: (rc[0] * rc[1], rc))
    index = {(p["network"], p["rows"], p["cols"], p["in_depth"], p["acc_depth"]): p
             for p in points}
    for net in nets:
        for rows, cols in shapes:
            mine = [index.get((net, rows, cols, *b)) for b in buffers]
            if not any(mine):
                continue
            cells = ([_x(p["speedup"]["split"]) if p else "" for p in mine]
                     + [_pct(p["utilization"]["split"]) if p else "" for p in mine]
                     + [_x(p["speedup"]["split-fused"]) if p else "" for p in mine])
            out.append(f"| {net} | {rows}x{cols} | {rows * cols} | " + " | ".join(cells) + " |")
    return out


def _sweep_intro(meta):
    return (f"The driver on `ModelTransport` with the cycle model only (no arithmetic; "
            f"the counters are the cycle model's, as in every ModelTransport run) for each "
            f"configuration: array R x C, buffers in_depth/acc_depth (elements per bank), "
            f"everything else default (64-bit AXI). Whole deconvolution stacks of "
            f"{', '.join(dict.fromkeys(p for p in meta['networks']))}"
            f"{' with channels / %d' % meta['divisor'] if meta['divisor'] > 1 else ''}; "
            f"speed-up = zero-insert cycles / split (split-fused) cycles; util = useful MACs "
            f"/ (PEs x cycles). Wall time {_clock(meta['wall_seconds'])}.\n")


def render_sweep_report(points, meta):
    out = ["# Design-space sweep (cycle model)\n",
           "Generated by `python -m sw_driver bench --sweep` (sw_driver/bench.py); do not "
           "edit by hand.\n", _sweep_intro(meta), "![sweep](bench-sweep.png)\n"]
    return "\n".join(out + _sweep_table(points)) + "\n"


# ---------------------------------------------------------------------------
# Command line


def add_arguments(parser):
    """Options of the bench subcommand."""
    parser.add_argument("--quick", action="store_true",
                        help=f"channels divided by {QUICK_DIVISOR} (at least 1): the whole "
                             "bench in under two minutes once the simulator is built")
    parser.add_argument("--sweep", action="store_true",
                        help="only the design-space sweep with the cycle model (no cosim); "
                             "a full run (not --quick) appends it to its report anyway")
    parser.add_argument("--verilog", type=Path, metavar="PATH",
                        help="conv_accel.v of the default configuration, written by "
                             "`python -m gen` (default: generate it)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="results.json, benchmarks.md and plots (default results/full, "
                             "results/quick, results/sweep)")
    parser.add_argument("--docs-dir", type=Path, metavar="DIR",
                        help="where a full run also writes benchmarks.md and bench-*.png "
                             "(default docs; quick runs only when given)")
    parser.add_argument("--backend", choices=("cosim", "model"), default="cosim",
                        help="cosim (default) or the NumPy model (tests)")
    parser.add_argument("--networks", metavar="KEYS",
                        help="comma-separated network keys: "
                             + ", ".join(n.key for n in NETWORKS))
    parser.add_argument("--layers", metavar="NAMES",
                        help="comma-separated layer names (or network/layer) to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-conv", action="store_true",
                        help="skip the Conv2d / simulation-speed section")
    parser.add_argument("--no-sweep", action="store_true",
                        help="a full run without the design-space sweep it appends")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only re-render benchmarks.md and the plots from a results.json "
                             "of an earlier run (into --out-dir, default the JSON's directory, "
                             "and --docs-dir when given)")


def _split_list(text):
    return None if text is None else tuple(part.strip() for part in text.split(",")
                                           if part.strip())


def run(args):
    """`python -m sw_driver bench`: returns the exit status (1 when a check fails)."""
    docs_dir = args.docs_dir
    if args.sweep:
        return _run_sweep_command(args)
    if args.render is not None:
        results = json.loads(args.render.read_text())
        results["summary"] = _summary(results)     # targets as this version defines them
        written = write_outputs(results, args.out_dir or args.render.parent, docs_dir,
                                write_json=False)
        print("bench --render: wrote " + ", ".join(str(p) for p in written), flush=True)
        return 0
    out_dir = args.out_dir or REPO / "results" / ("quick" if args.quick else "full")
    if docs_dir is None and not args.quick and args.backend == "cosim" \
            and args.networks is None and args.layers is None:
        docs_dir = REPO / "docs"
    options = BenchOptions(
        quick=args.quick, networks=_split_list(args.networks), layers=_split_list(args.layers),
        divisor=QUICK_DIVISOR if args.quick else 1, backend=args.backend,
        verilog=args.verilog, seed=args.seed, conv=not args.no_conv,
        partial_path=out_dir / "results.partial.json",
        log=lambda text: print(text, flush=True))
    if args.verilog is not None and not args.verilog.is_file():
        raise ValueError(f"--verilog {args.verilog}: no such file")
    try:
        results = run_bench(options)
    except BenchError as error:
        print(f"bench FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    if not (args.quick or args.no_sweep or args.networks or args.layers):
        print("bench: design-space sweep (cycle model)", flush=True)
        results["sweep"] = sweep_section(log=lambda text: print(text, flush=True))
    written = write_outputs(results, out_dir, docs_dir)
    (out_dir / "results.partial.json").unlink(missing_ok=True)
    print("bench: wrote " + ", ".join(str(p) for p in written), flush=True)
    _print_summary(results)
    try:
        check_results(results)
    except BenchError as error:
        print(f"bench FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def _print_summary(results):
    s = results["summary"]
    sweep = results.get("sweep")
    print(f"bench: wall time {_clock(results['meta']['wall_seconds'])}"
          + (f" (+ sweep {_clock(sweep['meta']['wall_seconds'])})" if sweep else "")
          + f"; {s['runs']} runs "
          f"bit-exact: {s['bit_exact']}; model max error {_pct(s['model_max_error'], 2)} "
          f"({s['model_worst_run']})")
    for net in results["networks"]:
        print(f"  {net['key']:9s} split {_x(net['speedup'].get('split'))} "
              f"fused {_x(net['speedup'].get('split-fused'))} "
              f"(paper {_x(net['paper_speedup'])}) util split "
              f"{_pct(net['methods'].get('split', {}).get('utilization'))} energy saving "
              f"{net['energy_saving'].get('split') or 0:.1f}%")
    conv = results.get("conv2d")
    if conv:
        print(f"  conv2d util {_pct(conv['utilization'])} (target {CONV_UTIL_TARGET:.0%})"
              + (f"; cosim/pure-TB speed {conv['speed']['ratio']:.2f} "
                 f"(target {SPEED_TARGET})" if "ratio" in conv["speed"] else ""))


def _run_sweep_command(args):
    out_dir = args.out_dir or REPO / "results" / ("sweep-quick" if args.quick else "sweep")
    keys = _split_list(args.networks) or SWEEP_NETWORKS
    sweep = sweep_section(keys, QUICK_DIVISOR if args.quick else 1,
                          log=lambda text: print(text, flush=True))
    sweep["meta"]["command"] = "python -m sw_driver bench --sweep" + (
        " --quick" if args.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    written = [out_dir / "sweep.json"]
    for directory in [out_dir] + ([args.docs_dir] if args.docs_dir is not None else []):
        directory.mkdir(parents=True, exist_ok=True)
        plot_sweep(sweep["points"], directory / "bench-sweep.png")
        (directory / "benchmarks-sweep.md").write_text(
            render_sweep_report(sweep["points"], sweep["meta"]))
        written += [directory / "bench-sweep.png", directory / "benchmarks-sweep.md"]
    print("bench --sweep: wrote " + ", ".join(map(str, written)) +
          f" in {_clock(sweep['meta']['wall_seconds'])}", flush=True)
    return 0
