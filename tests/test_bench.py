"""The benchmark's pieces on the NumPy model backend (no cosimulation).

Workload table, energy arithmetic, geometric bounds, the recording and
timing-only transports, report generation of a small quick bench, and the
checks that must fail the bench (model beyond 2%, a wrong output).
"""

import copy
import json

import numpy as np
import pytest

from hw.config import AccelConfig
from sw_driver import bench, energy
from sw_driver.__main__ import main
from sw_driver.bench import (BenchError, BenchOptions, Recorder, TimingModelTransport,
                             check_model_error, layer_bounds, run_bench, write_outputs)
from sw_driver.cycles import simulate
from sw_driver.driver import Accelerator
from sw_driver.model import ModelTransport
from sw_driver.networks import NETWORKS, PAPER_SPEEDUPS, Layer, network, scaled_network

CFG = AccelConfig()


# ---------------------------------------------------------------------------
# Workload table


@pytest.mark.parametrize("net", NETWORKS, ids=lambda n: n.key)
@pytest.mark.parametrize("divisor", [1, bench.QUICK_DIVISOR])
def test_networks_chain(net, divisor):
    net = scaled_network(net, divisor)
    assert net.layers
    for layer in net.layers:
        assert len(layer.input) == 3 and layer.output[0] == layer.out_channels
        assert layer.weight_shape == (layer.in_channels, layer.out_channels,
                                      layer.kernel, layer.kernel)
    if net.chained:
        for before, after in zip(net.layers, net.layers[1:]):
            assert before.output == after.input, (net.key, before.name, after.name)


def test_network_table_values():
    dcgan = network("dcgan")
    assert dcgan.layers[0].input == (100, 1, 1) and dcgan.layers[0].output == (512, 4, 4)
    assert dcgan.layers[-1].output == (3, 64, 64)
    assert all((l.kernel, l.stride, l.padding) == (4, 2, 1) for l in dcgan.layers[1:])
    # TF SAME K5 s2 is p=2, op=1 in PyTorch: exactly 2H (p=1, op=1 would give 2H + 2).
    for layer in network("dcgan-tf").layers:
        c, h, w = layer.input
        assert (layer.kernel, layer.stride, layer.padding, layer.output_padding) == (5, 2, 2, 1)
        assert layer.output[1:] == (2 * h, 2 * w)
        assert Layer("x", layer.input, 1, 5, 2, 1, 1).output[1:] == (2 * h + 2, 2 * w + 2)
    for layer in network("fst").layers:
        assert layer.output[1:] == (2 * layer.input[1], 2 * layer.input[2])
    upscore8 = network("fcn8s").layers[-1]
    assert (upscore8.kernel, upscore8.stride, upscore8.output) == (16, 8, (21, 512, 512))
    assert network("gpgan").layers[0].input == (4000, 1, 1)
    assert PAPER_SPEEDUPS == {"DCGAN": 2.87, "SNGAN": 3.55, "FST": 2.06, "GP-GAN": 3.60}
    assert network("sngan").paper_speedup == 3.55 and network("fcn8s").paper_speedup is None
    with pytest.raises(KeyError):
        network("nope")


def test_quick_divisor_keeps_at_least_one_channel():
    quick = scaled_network(network("dcgan"), 8)
    assert quick.layers[0].input == (12, 1, 1)
    assert quick.layers[-1].out_channels == 1


# ---------------------------------------------------------------------------
# Energy


def test_energy_hand_computed():
    counters = {"macs_issued": 1000, "active_cycles": 10, "bytes_read": 800,
                "bytes_written": 160}
    parts = energy.estimate(CFG, counters, weight_words=50, requant=True)
    expected = {
        "mac": 1000 * (0.2 + 0.1),          # 8b multiply + 32b add
        "input_sram": 10 * 1 * 10.0,         # one 64-bit word of 8 int8 channels per cycle
        "acc_sram": 10 * 2 * 4 * 10.0,       # read + write of 8 int32 = 4 words
        "store_sram": 20 * 4 * 10.0,         # 160 B / 8 B per int8 element = 20 outputs
        "fill_sram": 100 * 10.0,             # 800 B read = 100 words written on chip
        "weight_sram": 50 * 10.0,
        "dram": 120 * 1300.0,                # (800 + 160) / 8 words at 1.3 nJ
    }
    for key, value in expected.items():
        assert parts[key] == pytest.approx(value), key
    assert parts["total"] == pytest.approx(159_500.0)
    assert energy.saving(50.0, 200.0) == pytest.approx(75.0)


def test_dma_words_match_the_cycle_model():
    desc = {"OUT_H": 4, "OUT_W": 4, "TILE_H": 4, "TILE_W": 4, "SH": 1, "SW": 1, "PAD_T": 1,
            "PAD_L": 1, "KH": 3, "KW": 3, "IN_H": 4, "IN_W": 4, "CI_BLOCKS": 2,
            "CO_BLOCKS": 3, "MODE": 1}
    words = energy.dma_words(CFG, desc)
    assert words == {"input": 16 * 3 * 2, "weights": 3 * 2 * 9 * 8, "params": 3 * 12}
    # A tiled case: the totals are those the cycle model (and the RTL) read.
    tiled = {**desc, "OUT_H": 9, "OUT_W": 7, "IN_H": 9, "IN_W": 7, "TILE_H": 4, "TILE_W": 3}
    total = sum(energy.dma_words(CFG, tiled).values())
    assert total * CFG.bus_bytes == simulate(CFG, tiled)["BYTES_RD"]


# ---------------------------------------------------------------------------
# Geometric bounds


def test_border_bounds_of_k4s2p1():
    for size, useful in ((4, 49 / 64), (8, (15 / 16) ** 2), (16, (31 / 32) ** 2)):
        layer = Layer("l", (64, size, size), 64, 4, 2, 1)
        assert layer_bounds(CFG, layer)["split"]["mac"] == pytest.approx(useful)
        assert layer_bounds(CFG, layer)["zero-insert"]["mac"] == pytest.approx(useful / 4)


def test_one_pixel_input_bounds():
    bounds = layer_bounds(CFG, network("gpgan").layers[0])["split"]
    assert bounds["mac"] == pytest.approx(1 / 16)      # one of 16 taps reads the pixel
    assert bounds["dma"] == pytest.approx(0.125, rel=1e-3)   # 8 weight bytes per cycle
    assert bounds["binding"] == "padding products"


# ---------------------------------------------------------------------------
# Transports


def test_recorder_and_timing_model():
    layer = Layer("l", (16, 5, 5), 8, 3, 2, 1, 1)
    x, w, bias, requant = bench.layer_data(layer, 3)
    kwargs = dict(stride=2, padding=1, output_padding=1, method="split", requant=requant)
    recorder = Recorder(ModelTransport(CFG))
    _, stats = Accelerator(recorder).conv_transpose2d(x, w, bias, **kwargs)
    assert len(recorder.descriptors) == stats["descriptors"] == 4
    job = recorder.first_job()
    assert job["image"] and job["regs"] and job["dump"][1] > 0
    _, timing = Accelerator(TimingModelTransport(CFG)).conv_transpose2d(x, w, bias, **kwargs)
    assert timing == stats


# ---------------------------------------------------------------------------
# The bench on the model backend


@pytest.fixture(scope="module")
def quick_results():
    options = BenchOptions(quick=True, divisor=bench.QUICK_DIVISOR, networks=("dcgan",),
                           layers=("deconv4", "deconv5"), backend="model",
                           log=lambda text: None)
    return run_bench(options)


def test_quick_bench_report(quick_results, tmp_path):
    results = quick_results
    assert {"meta", "config", "energy_table", "layers", "networks", "conv2d",
            "summary"} <= set(results)
    assert [l["layer"] for l in results["layers"]] == ["deconv4", "deconv5"]
    for layer in results["layers"]:
        assert set(layer["methods"]) == {"split", "split-fused", "zero-insert"}
        for run in layer["methods"].values():
            assert run["bit_exact"] and run["model_error"] == 0
            for key in ("cycles", "utilization", "busy", "bytes_read", "bytes_written",
                        "energy_pj", "util_bound", "model_cycles"):
                assert key in run
            assert run["dma_words_match"] and run["issued_matches_geometry"]
        assert layer["speedup"]["split"] > 1 and layer["energy_saving"]["split"] > 0
    net = results["networks"][0]
    assert net["key"] == "dcgan" and net["speedup"]["split"] > 1
    assert results["conv2d"]["speed"] == {"skipped": "needs the cosim backend"}
    assert results["summary"]["bit_exact"] and results["summary"]["runs"] == 7

    written = write_outputs(results, tmp_path / "out", tmp_path / "docs")
    names = {p.name for p in written}
    assert names == {"results.json", "benchmarks.md", "bench-speedup.png",
                     "bench-utilisation.png"}
    for path in written:
        assert path.stat().st_size > 0
    report = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "## Targets" in report and "## Per layer" in report and "dcgan/deconv5" in report
    assert "## Design-space sweep" not in report
    assert json.loads((tmp_path / "out" / "results.json").read_text())["summary"]["runs"] == 7


def test_sweep_section(quick_results, tmp_path):
    sweep = bench.sweep_section(("dcgan",), divisor=8, shapes=((4, 4), (8, 8)),
                                buffers=((2048, 1024),), log=lambda text: None)
    points = sweep["points"]
    assert [(p["rows"], p["cols"], p["pes"]) for p in points] == [(4, 4, 16), (8, 8, 64)]
    for point in points:
        assert point["speedup"]["split"] > 1
        assert 0 < point["utilization"]["split"] <= 1
    results = {**quick_results, "sweep": sweep}
    written = {p.name for p in write_outputs(results, tmp_path)}
    assert "bench-sweep.png" in written
    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Design-space sweep" in report and "| dcgan | 8x8 | 64 |" in report


def test_model_tolerance_fails_on_a_forged_mismatch(quick_results):
    assert check_model_error(quick_results) == 0
    forged = copy.deepcopy(quick_results)
    forged["layers"][1]["methods"]["split"]["model_error"] = 0.021
    with pytest.raises(BenchError, match=r"dcgan/deconv5 split \+2\.10%"):
        check_model_error(forged)
    with pytest.raises(BenchError):
        bench.check_results(forged)
    forged["layers"][1]["methods"]["split"]["model_error"] = -0.019
    assert check_model_error(forged) == pytest.approx(0.019)


class _Corrupting(ModelTransport):
    """Flips one byte of every output read."""

    def read_mem(self, addr, length):
        data = bytearray(super().read_mem(addr, length))
        if length > 64:
            data[0] ^= 1
        return bytes(data)


def test_wrong_output_fails_loudly():
    options = BenchOptions(networks=("dcgan",), layers=("deconv5",), methods=("split",),
                           divisor=8, conv=False, transport=_Corrupting(CFG),
                           log=lambda text: None)
    with pytest.raises(BenchError, match="differ from the reference"):
        run_bench(options)


def test_cli_model_backend(tmp_path, capsys):
    status = main(["bench", "--backend", "model", "--quick", "--networks", "fcn8s",
                   "--layers", "upscore8", "--no-conv", "--out-dir",
                   str(tmp_path)])
    assert status == 0
    results = json.loads((tmp_path / "results.json").read_text())
    upscore8 = [l for l in results["layers"] if l["layer"] == "upscore8"][0]
    assert not upscore8["methods"]["zero-insert"]["runnable"]
    assert "kernel_max" in upscore8["methods"]["zero-insert"]["reason"]
    assert upscore8["methods"]["split"]["runnable"]
    assert (tmp_path / "benchmarks.md").is_file()
    # Re-rendering from the JSON gives the same report.
    before = (tmp_path / "benchmarks.md").read_text()
    assert main(["bench", "--render", str(tmp_path / "results.json")]) == 0
    assert (tmp_path / "benchmarks.md").read_text() == before
    assert "not runnable" in capsys.readouterr().out
