"""`python -m sw_driver conv` end to end on the model backend."""

import json
import os
import re
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from sw_driver.__main__ import main
from sw_driver.driver import STATS_KEYS
from sw_driver.layers import Conv2dParams
from sw_driver.quant import quantize_multiplier, requantize
from sw_driver.reference import conv2d_reference

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def files(tmp_path):
    """A grouped layer's tensors saved as .npy files; returns (paths, arrays)."""
    rng = np.random.default_rng(21)
    arrays = {
        "x": rng.integers(-128, 128, (2, 6, 9, 7), dtype=np.int8),
        "w": rng.integers(-128, 128, (10, 3, 3, 2), dtype=np.int8),
        "b": rng.integers(-10**5, 10**5, 10, dtype=np.int32),
        "m": rng.integers(1 << 29, 1 << 31, 10, dtype=np.int64).astype(np.int32),
        "sh": rng.integers(4, 12, 10, dtype=np.int32),
        "scale": np.linspace(0.0005, 0.004, 10),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    paths["y"] = tmp_path / "y.npy"
    paths["stats"] = tmp_path / "stats.json"
    return paths, arrays


CONV = Conv2dParams(6, 10, (3, 2), stride=(2, 1), padding=(1, 0), groups=2)
LAYER_OPTIONS = ["--stride", "2,1", "--padding", "1,0", "--groups", "2"]


def run_cli(*args):
    return main([str(arg) for arg in args])


def test_raw_int32_output_and_stats(files):
    paths, arrays = files
    status = run_cli("conv", "--input", paths["x"], "--weight", paths["w"], "--bias", paths["b"],
                     *LAYER_OPTIONS, "--out", paths["y"], "--stats", paths["stats"])
    assert status == 0
    y = np.load(paths["y"])
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, conv2d_reference(arrays["x"], arrays["w"], arrays["b"], CONV))
    stats = json.loads(paths["stats"].read_text())
    assert list(stats) == list(STATS_KEYS)
    assert stats["descriptors"] == 2       # per image one: both output blocks read input block 0
    assert stats["macs_useful"] == 2 * CONV.macs(9, 7)
    assert 0 < stats["utilization"] < 1


def test_int8_output_with_multiplier_and_shift(files):
    paths, arrays = files
    status = run_cli("conv", "--input", paths["x"], "--weight", paths["w"], *LAYER_OPTIONS,
                     "--out-multiplier", paths["m"], "--out-shift", paths["sh"],
                     "--out-zero-point", "-7", "--act-min", "-100", "--act-max", "120",
                     "--out", paths["y"])
    assert status == 0
    acc = conv2d_reference(arrays["x"], arrays["w"], None, CONV)
    expected = requantize(acc.transpose(0, 2, 3, 1), arrays["m"], arrays["sh"], -7, -100, 120)
    y = np.load(paths["y"])
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, expected.transpose(0, 3, 1, 2))


def test_int8_output_with_scale(files):
    paths, arrays = files
    assert run_cli("conv", "--input", paths["x"], "--weight", paths["w"], "--bias", paths["b"],
                   *LAYER_OPTIONS, "--out-scale", paths["scale"], "--out", paths["y"]) == 0
    acc = conv2d_reference(arrays["x"], arrays["w"], arrays["b"], CONV)
    multiplier, shift = quantize_multiplier(arrays["scale"])
    expected = requantize(acc.transpose(0, 2, 3, 1), multiplier, shift, 0, -128, 127)
    np.testing.assert_array_equal(np.load(paths["y"]), expected.transpose(0, 3, 1, 2))


def test_module_entry_point(files):
    paths, _ = files
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "sw_driver", "conv", "--input", paths["x"],
                           "--weight", paths["w"], "--groups", "2", "--out", paths["y"]],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = subprocess.run([sys.executable, "-m", "sw_driver", "conv", "--input", paths["x"],
                           "--weight", paths["w"], "--out", paths["y"]],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: w shape must be (10, 6, 3, 2), got (10, 3, 3, 2)\n"


def bad_inputs(paths, tmp_path):
    """(arguments, message) of invalid command lines."""
    float_x = tmp_path / "float.npy"
    np.save(float_x, np.zeros((1, 6, 4, 4)))
    flat_x = tmp_path / "flat.npy"
    np.save(flat_x, np.zeros((6, 4, 4), dtype=np.int8))
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    text = tmp_path / "text.npy"
    text.write_text("not numpy")
    short_bias = tmp_path / "short_bias.npy"
    np.save(short_bias, np.zeros(3, dtype=np.int32))
    base = ["conv", "--input", paths["x"], "--weight", paths["w"], "--out", paths["y"]]
    return [
        (["conv", "--input", tmp_path / "missing.npy", "--weight", paths["w"], "--out",
          paths["y"]], "--input .*missing.npy: cannot read a .npy file .*No such file"),
        (["conv", "--input", text, "--weight", paths["w"], "--out", paths["y"]],
         "--input .*text.npy: cannot read a .npy file"),
        (["conv", "--input", pickled, "--weight", paths["w"], "--out", paths["y"]],
         "--input .*pickled.npy: cannot read a .npy file"),
        (["conv", "--input", float_x, "--weight", paths["w"], "--out", paths["y"]],
         "--input .*float.npy: dtype must be int8, got float64"),
        (["conv", "--input", flat_x, "--weight", paths["w"], "--out", paths["y"]],
         r"--input .*flat.npy: must have 4 dimensions, got shape \(6, 4, 4\)"),
        (["conv", "--input", paths["x"], "--weight", paths["b"], "--out", paths["y"]],
         "--weight .*b.npy: dtype must be int8, got int32"),
        (base + ["--groups", "2", "--bias", short_bias], r"bias shape must be \(10,\), got \(3,\)"),
        (base + ["--groups", "2", "--bias", paths["w"]], "--bias .*w.npy: dtype must be int32"),
        (base + ["--groups", "2", "--stride", "0"], r"stride must be >= 1 on both axes"),
        (base + ["--groups", "2", "--stride", "1,2,3"],
         "argument --stride: expected N or N,N"),
        (base + ["--groups", "2", "--stride", "5"],
         r"stride \(5, 5\) is not supported: the accelerator's stride_max 4 allows 1..4"),
        (base + ["--groups", "2", "--dilation", "0"], r"dilation must be >= 1 on both axes"),
        (base + ["--groups", "two"], "argument --groups: invalid int value: 'two'"),
        (base + ["--groups", "2", "--backend", "fpga"], "argument --backend: invalid choice"),
        (base + ["--groups", "2", "--verilog", "x.v"], "--verilog needs --backend cosim"),
        (base + ["--groups", "2", "--out-shift", paths["sh"]],
         "--out-shift needs --out-multiplier"),
        (base + ["--groups", "2", "--out-multiplier", paths["m"]],
         "--out-multiplier needs --out-shift"),
        (base + ["--groups", "2", "--act-min", "0"],
         "--out-zero-point, --act-min and --act-max need --out-multiplier or --out-scale"),
        (base + ["--groups", "2", "--out-scale", paths["scale"], "--out-multiplier", paths["m"]],
         "argument --out-multiplier: not allowed with argument --out-scale"),
        (base + ["--groups", "2", "--out-scale", paths["scale"], "--act-max", "300"],
         "act_max must be an int in -128..127, not 300"),
        (base + ["--groups", "2", "--out-multiplier", paths["m"], "--out-shift", paths["b"]],
         "shift must be in 0..31, not"),
        (base + ["--groups", "2", "--out-scale", paths["x"]],
         "--out-scale .*x.npy: dtype must be float16 or float32 or float64, got int8"),
        (base[:-2] + ["--groups", "2"], "the following arguments are required: --out"),
        (["deconv"], "deconv: the following arguments are required: --input, --weight, --out"),
        (["bench2"], "argument COMMAND: invalid choice: 'bench2'"),
        ([], "the following arguments are required: COMMAND"),
        (base[:-1] + [tmp_path / "no" / "dir" / "y.npy", "--groups", "2"], "No such file"),
    ]


def test_bad_input_exits_2_with_one_line(files, tmp_path, capsys):
    paths, _ = files
    for args, message in bad_inputs(paths, tmp_path):
        assert run_cli(*args) == 2, args
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, captured.err)
        assert re.search(message, lines[0]), (message, lines[0])
        assert not paths["y"].exists()
