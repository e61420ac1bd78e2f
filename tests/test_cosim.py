"""RTL cosimulation (cocotb + Verilator) of the generated Verilog, driven by the
same driver as the model: random Conv2d and ConvTranspose2d layers with every
method, bit-exact against the NumPy references; the model's cycle counts
against the RTL's; descriptor errors and bus errors that must not hang."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gen import generate
from hw.config import AccelConfig, DESC_FIELDS, REG, ERROR, STATUS_DONE, STATUS_ERROR, \
    CTRL_START, CTRL_CLEAR, desc_offset
from sim.cosim import CosimTransport
from sw_driver.cycles import DEFAULT_TIMING, prepare_cycles
from sw_driver.driver import Accelerator, AcceleratorError
from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.model import ModelTransport, decode_descriptor
from sw_driver.program import METHODS
from sw_driver.quant import requantize
from sw_driver.reference import conv2d_reference, conv_transpose2d_reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def verilog(tmp_path_factory):
    """Generated Verilog per configuration, by (rows, cols)."""
    root = tmp_path_factory.mktemp("gen")
    return lambda cfg: generate(cfg, root / f"{cfg.rows}x{cfg.cols}")["verilog"]


@pytest.fixture(scope="module")
def default_cosim(verilog):
    cfg = AccelConfig()
    with CosimTransport(cfg, str(verilog(cfg))) as transport:
        yield transport


@pytest.fixture(scope="module")
def wide_cosim(verilog):
    cfg = AccelConfig(rows=4, cols=16)
    with CosimTransport(cfg, str(verilog(cfg))) as transport:
        yield transport


def _requant(rng, channels):
    return dict(multiplier=rng.integers(1 << 29, (1 << 31) - 1, channels).astype(np.int32),
                shift=rng.integers(4, 14, channels).astype(np.int32),
                zero_point=int(rng.integers(-20, 20)), act_min=-120, act_max=110)


def _expected(acc, requant):
    if requant is None:
        return acc
    out = requantize(np.moveaxis(acc, 1, -1), requant["multiplier"], requant["shift"],
                     requant["zero_point"], requant["act_min"], requant["act_max"])
    return np.moveaxis(out, -1, 1)


def _check_against_model(cfg, run_layer, transport_stats):
    """The cycle model predicts the RTL's cycles within 2%."""
    with ModelTransport(cfg) as model:
        _, model_stats = run_layer(Accelerator(model))
    rtl, predicted = transport_stats["cycles"], model_stats["cycles"]
    assert abs(predicted - rtl) <= 0.02 * rtl + 8, (rtl, predicted)
    for key in ("macs_issued", "bytes_read", "bytes_written", "active_cycles"):
        assert model_stats[key] == transport_stats[key], key


def _conv_case(seed, cfg):
    """A random Conv2d covering the shapes the hardware must take."""
    rng = np.random.default_rng(seed)
    groups = [1, 1, 2, "depthwise"][seed % 4]
    base = int(rng.integers(1, 3 * max(cfg.rows, cfg.cols) // 2))
    in_channels = base if groups == 1 else (2 * base if groups == 2 else base + 2)
    groups = in_channels if groups == "depthwise" else groups
    out_channels = groups * int(rng.integers(1, 3 * cfg.cols // groups + 2)) \
        if groups < in_channels else in_channels
    kernel = (1 + seed % 7, int(rng.integers(1, 8)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = (int(rng.integers(0, kernel[0])), int(rng.integers(0, kernel[1])))
    height = max(kernel[0] - 2 * padding[0], 1) + int(rng.integers(0, 9))
    width = max(kernel[1] - 2 * padding[1], 1) + int(rng.integers(0, 9))
    params = Conv2dParams(in_channels, out_channels, kernel, stride=stride, padding=padding,
                          groups=groups)
    x = rng.integers(-128, 128, (1, in_channels, height, width), dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    bias = rng.integers(-50_000, 50_000, out_channels, dtype=np.int32)
    requant = _requant(rng, out_channels) if seed % 2 else None
    return params, x, w, bias, requant


@pytest.mark.parametrize("seed", range(24))
def test_conv2d_default_array(default_cosim, seed):
    _run_conv(default_cosim, seed)


@pytest.mark.parametrize("seed", range(100, 108))
def test_conv2d_4x16_array(wide_cosim, seed):
    _run_conv(wide_cosim, seed)


def _run_conv(transport, seed):
    accelerator = Accelerator(transport)
    params, x, w, bias, requant = _conv_case(seed, accelerator.cfg)

    def run_layer(target):
        return target.conv2d(x, w, bias, stride=params.stride, padding=params.padding,
                             groups=params.groups, requant=requant)

    y, stats = run_layer(accelerator)
    np.testing.assert_array_equal(y, _expected(conv2d_reference(x, w, bias, params), requant))
    _check_against_model(accelerator.cfg, run_layer, stats)


# Transposed convolutions: (C_in, C_out, H, W, kernel, stride, padding, output_padding,
# dilation, groups).
DECONV_CASES = [
    (16, 8, 5, 5, 4, 2, 1, 0, 1, 1),          # DCGAN
    (9, 11, 6, 5, 3, 2, 1, 0, 1, 1),          # 2H - 1 outputs: phases of unequal length
    (9, 7, 4, 4, 3, 2, 1, 1, 1, 1),           # TF-SAME K3 s2
    (8, 8, 4, 4, 5, 2, 2, 1, 1, 1),           # TF-SAME K5 s2
    (6, 10, 3, 4, 1, 2, 0, 1, 1, 1),          # kernel smaller than stride: bias-only phases
    (5, 4, 3, 3, 2, 3, 0, 2, 1, 1),           # K2 s3: a third of the phases are empty
    (7, 6, 4, 3, 3, 2, 1, 1, 2, 1),           # gcd(dilation, stride) = 2
    (4, 9, 3, 3, 3, 4, 2, 3, 2, 1),           # gcd 2 with stride 4
    (6, 6, 4, 5, 3, 2, 2, 0, 3, 1),           # dilation 3, stride 2: dilated sub-kernels
    (8, 12, 5, 4, (4, 3), (2, 3), (1, 0), (1, 2), 1, 1),   # non-square everything
    (10, 6, 4, 6, (2, 5), (3, 1), (0, 2), 0, (1, 2), 1),
    (12, 12, 1, 1, 4, 2, 1, 0, 1, 1),         # 1x1 input
    (17, 5, 1, 1, 4, 1, 0, 0, 1, 1),          # DCGAN projection: 1x1 -> 4x4
    (3, 3, 1, 7, 3, 3, 1, 2, 1, 1),           # one-row input
    (16, 16, 4, 4, 4, 2, 1, 0, 1, 2),         # groups
    (12, 12, 5, 5, 3, 2, 1, 1, 1, 12),        # depthwise
    (24, 18, 3, 3, 4, 2, 1, 0, 1, 3),         # groups spanning blocks
    (20, 30, 6, 6, 4, 2, 1, 0, 1, 1),         # channels several times the array
    (4, 5, 3, 3, 16, 8, 4, 0, 1, 1),          # FCN-8s x8 upsampling (K16 s8 p4)
    (5, 3, 5, 6, 7, 4, 3, 3, 1, 1),
    (6, 7, 4, 4, 6, 3, 2, 2, 1, 1),
    (3, 8, 6, 3, 7, 1, 3, 0, 1, 1),           # stride 1: a single phase
    (8, 4, 5, 5, 5, 2, 0, 0, 1, 1),
    (9, 9, 2, 7, 3, (1, 4), (1, 0), (0, 3), 1, 1),
    (7, 5, 3, 3, 2, 2, 0, 1, 3, 1),           # dilation 3 over stride 2, op 1
    (6, 6, 3, 4, 3, 3, 2, 1, 3, 2),           # dilation = stride: empty phases, groups
    (16, 3, 8, 8, 4, 2, 1, 0, 1, 1),          # few output channels (split-fused helps)
    (5, 5, 7, 2, 1, 1, 0, 0, 1, 1),           # 1x1 kernel, stride 1
    (2, 2, 9, 9, 4, 4, 0, 0, 1, 1),           # K = s: phases of one tap
    (11, 13, 3, 5, (6, 2), (3, 2), (2, 1), (2, 1), (2, 1), 1),
    (8, 8, 2, 2, 7, 4, 6, 3, 1, 1),           # padding crops most of the output
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", range(len(DECONV_CASES)))
def test_conv_transpose2d(default_cosim, case, method):
    c_in, c_out, height, width, kernel, stride, padding, output_padding, dilation, groups = \
        DECONV_CASES[case]
    rng = np.random.default_rng(case)
    params = ConvTranspose2dParams(c_in, c_out, kernel, stride=stride, padding=padding,
                                   output_padding=output_padding, groups=groups,
                                   dilation=dilation)
    x = rng.integers(-128, 128, (1, c_in, height, width), dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    bias = rng.integers(-50_000, 50_000, c_out, dtype=np.int32)
    requant = _requant(rng, c_out) if case % 2 else None
    accelerator = Accelerator(default_cosim)

    def run_layer(target):
        return target.conv_transpose2d(x, w, bias, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=groups, method=method, requant=requant)

    if method == "zero-insert" and max(params.kernel_size) > accelerator.cfg.kernel_max:
        with pytest.raises(ValueError, match=r"kernel_size \(16, 16\) is not supported"):
            run_layer(accelerator)
        return
    y, stats = run_layer(accelerator)
    assert stats["method"] == method
    expected = _expected(conv_transpose2d_reference(x, w, bias, params), requant)
    np.testing.assert_array_equal(y, expected)
    _check_against_model(accelerator.cfg, run_layer, stats)


def test_deconvolution_runs_on_the_convolution_verilog(default_cosim, verilog, tmp_path):
    """One Verilog file serves both operators: the cosimulation was built from the
    generator's output for the default configuration, which does not depend on
    what will run on it, and no hardware source knows about deconvolution."""
    cfg = AccelConfig()
    used = hashlib.sha256(Path(verilog(cfg)).read_bytes()).hexdigest()
    again = hashlib.sha256(generate(cfg, tmp_path)["verilog"].read_bytes()).hexdigest()
    assert used == again
    accelerator = Accelerator(default_cosim)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 8, 4, 4), dtype=np.int8)
    conv_w = rng.integers(-128, 128, (8, 8, 3, 3), dtype=np.int8)
    deconv_w = rng.integers(-128, 128, (8, 8, 4, 4), dtype=np.int8)
    accelerator.conv2d(x, conv_w, padding=1)
    accelerator.conv_transpose2d(x, deconv_w, stride=2, padding=1, method="split")
    for source in (REPO / "hw").rglob("*.py"):
        text = source.read_text().lower()
        for word in ("deconv", "transpose"):
            assert word not in text, f"{source.name} mentions {word!r}"


def test_invalid_descriptor_written_to_the_registers(default_cosim):
    transport = default_cosim
    transport.write_reg(REG["IRQ_ENABLE"], 1)
    transport.write_reg(desc_offset("KH"), 0)
    transport.write_reg(REG["CTRL"], CTRL_CLEAR)
    registers = {name: transport.read_reg(desc_offset(name)) for name, _, _ in DESC_FIELDS}
    transport.write_reg(REG["CTRL"], CTRL_START)
    # Refused once the dispatcher has prepared the descriptor, as the model counts.
    assert transport.wait_done(1000) == DEFAULT_TIMING.reject + prepare_cycles(
        transport.cfg, decode_descriptor(registers)[0])
    status = transport.read_reg(REG["STATUS"])
    assert status & (STATUS_DONE | STATUS_ERROR) == STATUS_DONE | STATUS_ERROR
    assert status >> 8 == ERROR["KERNEL"]


def test_bus_errors_end_the_run_with_an_error(default_cosim):
    """Reads or writes beyond the memory get SLVERR: the run still ends, with the code."""
    accelerator = Accelerator(default_cosim)
    outside = default_cosim.mem_size + 4096
    fields = {"IN_BASE": 0, "IN_ELEM_PITCH": 8, "IN_ROW_PITCH": 32, "IN_BLK_PITCH": 8,
              "OUT_BASE": 0x1000, "OUT_ELEM_PITCH": 8, "OUT_ROW_PITCH": 32,
              "OUT_BLK_PITCH": 8, "W_BASE": 0x2000, "P_BASE": 0x3000, "IN_H": 4, "IN_W": 4,
              "OUT_H": 4, "OUT_W": 4, "CI_BLOCKS": 1, "CO_BLOCKS": 1, "KH": 3, "KW": 3,
              "SH": 1, "SW": 1, "PAD_T": 1, "PAD_L": 1, "TILE_H": 4, "TILE_W": 4, "MODE": 1,
              "OUT_ZP": 0, "ACT_MIN": -128, "ACT_MAX": 127}
    for changes, code in ((dict(IN_BASE=outside), "DMA_READ"),
                          (dict(OUT_BASE=outside), "DMA_WRITE")):
        with pytest.raises(AcceleratorError, match=code):
            accelerator.run_descriptor({**fields, **changes})
    # The engine is still usable afterwards.
    assert accelerator.run_descriptor(fields)["CYCLES"] > 0
