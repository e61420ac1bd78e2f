"""Command line of the driver.

    python -m sw_driver conv --input X.npy --weight W.npy [--bias B.npy]
        [--stride S|SH,SW] [--padding P|PH,PW] [--dilation D|DH,DW] [--groups G]
        [--backend model|cosim] [--verilog PATH]
        [--out-multiplier M.npy --out-shift SH.npy | --out-scale S.npy]
        [--out-zero-point Z] [--act-min A] [--act-max B]
        --out Y.npy [--stats STATS.json]

    python -m sw_driver deconv ... (the same options) [--output-padding P|PH,PW]
        [--method split|split-fused|zero-insert|auto]

Without --out-multiplier or --out-scale the output is the raw int32
accumulator; with one of them it is requantised to int8. Every error is one
line on stderr and exit status 2.
"""

import argparse
import contextlib
import json
from pathlib import Path
import sys
import tempfile

import numpy as np

from hw.config import AccelConfig

from .driver import Accelerator, AcceleratorError, Requant
from .model import ModelTransport
from .program import METHODS
from .transport import TransportError

__all__ = ["main", "build_parser", "CliError"]

EXIT_ERROR = 2


class CliError(Exception):
    """A user error: reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become CliError instead of usage and exit."""

    def error(self, message):
        raise CliError(f"{self.prog}: {message}")


def _int_or_pair(text):
    """argparse type of S or SH,SW: an int or a pair of ints."""
    parts = text.split(",")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or len(values) != len(parts):
        raise argparse.ArgumentTypeError(f"expected N or N,N (integers), got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _add_layer_arguments(command, weight_shape):
    """The options `conv` and `deconv` share."""
    command.add_argument("--input", required=True, type=Path, metavar="X.npy",
                         help="int8 activations (N, C_in, H, W)")
    command.add_argument("--weight", required=True, type=Path, metavar="W.npy",
                         help=f"int8 weights {weight_shape}")
    command.add_argument("--bias", type=Path, metavar="B.npy", help="int32 bias (C_out,)")
    command.add_argument("--stride", type=_int_or_pair, default=1, metavar="S|SH,SW")
    command.add_argument("--padding", type=_int_or_pair, default=0, metavar="P|PH,PW")
    command.add_argument("--dilation", type=_int_or_pair, default=1, metavar="D|DH,DW")
    command.add_argument("--groups", type=int, default=1, metavar="G")
    command.add_argument("--backend", choices=("model", "cosim", "board"), default="model",
                         help="NumPy model (default), RTL cosimulation, or a board over "
                              "its UART bridge (--port)")
    command.add_argument("--port", metavar="DEVICE",
                         help="board: the serial port, e.g. /dev/ttyUSB0")
    command.add_argument("--baudrate", type=int, metavar="BAUD",
                         help="board: the UART rate (default: the bridge's)")
    command.add_argument("--verilog", type=Path, metavar="PATH",
                         help="cosim: conv_accel.v written by `python -m gen`, with its "
                              "manifest conv_accel.json beside it (default: generate the "
                              "default configuration)")
    command.add_argument("--out", required=True, type=Path, metavar="Y.npy",
                         help="output (N, C_out, OH, OW): int32, or int8 when requantised")
    command.add_argument("--stats", type=Path, metavar="STATS.json",
                         help="write the performance statistics as JSON")
    requant = command.add_argument_group(
        "int8 output", "requantisation per output channel: clamp(rdivpot(srdhm(acc, "
        "multiplier), shift) + zero point, act-min, act-max)")
    scaling = requant.add_mutually_exclusive_group()
    scaling.add_argument("--out-multiplier", type=Path, metavar="M.npy",
                         help="int32 multipliers (C_out,) or one; needs --out-shift")
    scaling.add_argument("--out-scale", type=Path, metavar="S.npy",
                         help="float scales in (0, 1), (C_out,) or one")
    requant.add_argument("--out-shift", type=Path, metavar="SH.npy",
                         help="right shifts 0..31, (C_out,) or one")
    requant.add_argument("--out-zero-point", type=int, metavar="Z", help="int8, default 0")
    requant.add_argument("--act-min", type=int, metavar="A", help="int8, default -128")
    requant.add_argument("--act-max", type=int, metavar="B", help="int8, default 127")


def build_parser():
    """The argument parser, one subcommand per operation."""
    parser = _Parser(prog="python -m sw_driver",
                     description="Run layers on the convolution accelerator.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="COMMAND")
    conv = commands.add_parser("conv", help="one Conv2d layer (PyTorch semantics)",
                               description="One Conv2d layer with PyTorch semantics.")
    _add_layer_arguments(conv, "(C_out, C_in/groups, KH, KW)")
    conv.set_defaults(run=_run_layer, layer=_conv_layer)
    deconv = commands.add_parser(
        "deconv", help="one ConvTranspose2d layer (PyTorch semantics)",
        description="One ConvTranspose2d layer with PyTorch semantics, run as ordinary "
                    "convolutions on the unmodified accelerator.")
    _add_layer_arguments(deconv, "(C_in, C_out/groups, KH, KW)")
    deconv.add_argument("--output-padding", type=_int_or_pair, default=0, metavar="P|PH,PW")
    deconv.add_argument("--method", choices=(*METHODS, "auto"), default="auto",
                        help="split: one stride-1 convolution per output phase, strided "
                             "stores; split-fused: phases stacked as output channels; "
                             "zero-insert: the usual baseline; auto (default): the fastest "
                             "by the cycle model")
    deconv.set_defaults(run=_run_layer, layer=_deconv_layer)
    demo = commands.add_parser(
        "demo", help="the main job: layers in RTL cosimulation, checked bit-exactly",
        description="Run a convolution and a DCGAN transposed convolution layer in RTL "
                    "cosimulation, check them bit-exactly against NumPy and print cycles, "
                    "utilisation and the speed-up of split over zero insertion.")
    demo.add_argument("--verilog", type=Path, metavar="PATH",
                      help="conv_accel.v written by `python -m gen` (default: generate the "
                           "default configuration)")
    demo.set_defaults(run=_run_demo)
    bench = commands.add_parser(
        "bench", help="benchmarks in RTL cosimulation (results, tables and plots)",
        description="Benchmarks: the GAN workloads, each method, in RTL cosimulation.")
    from . import bench as bench_module
    bench_module.add_arguments(bench)
    bench.set_defaults(run=bench_module.run)
    return parser


def _load(option, path, dtypes, ndims):
    """The array in .npy file `path`, checked to have one of `dtypes` and `ndims`."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise CliError(f"{option} {path}: cannot read a .npy file ({error})") from error
    if not isinstance(array, np.ndarray):
        raise CliError(f"{option} {path}: not a .npy array file")
    if array.dtype.name not in dtypes:
        raise CliError(f"{option} {path}: dtype must be {' or '.join(dtypes)}, "
                       f"got {array.dtype.name}")
    if array.ndim not in ndims:
        raise CliError(f"{option} {path}: must have {' or '.join(map(str, ndims))} "
                       f"dimensions, got shape {array.shape}")
    return array


def _requant(args):
    """The Requant the options ask for, or None for int32 output."""
    if args.out_shift is not None and args.out_multiplier is None:
        raise CliError("--out-shift needs --out-multiplier")
    if args.out_multiplier is not None and args.out_shift is None:
        raise CliError("--out-multiplier needs --out-shift")
    output = {"zero_point": args.out_zero_point, "act_min": args.act_min,
              "act_max": args.act_max}
    if args.out_multiplier is None and args.out_scale is None:
        if any(value is not None for value in output.values()):
            raise CliError("--out-zero-point, --act-min and --act-max need --out-multiplier "
                           "or --out-scale (int8 output)")
        return None
    integers = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
    scaling = {}
    if args.out_multiplier is not None:
        scaling["multiplier"] = _load("--out-multiplier", args.out_multiplier, integers, (0, 1))
        scaling["shift"] = _load("--out-shift", args.out_shift, integers, (0, 1))
    else:
        scaling["scale"] = _load("--out-scale", args.out_scale,
                                 ("float16", "float32", "float64"), (0, 1))
    return Requant(**scaling, **{name: value for name, value in output.items()
                                 if value is not None})


def _cosim_transport(args, stack):
    """A CosimTransport for --verilog, or for freshly generated default Verilog."""
    try:
        from sim.cosim import CosimTransport
    except ImportError as error:
        raise CliError(f"--backend cosim is unavailable: cannot import sim.cosim "
                       f"({error})") from error
    if args.verilog is None:
        try:
            from gen import generate
        except ImportError as error:
            raise CliError(f"--backend cosim without --verilog needs the generator: "
                           f"cannot import gen ({error})") from error
        cfg = AccelConfig()
        verilog = generate(cfg, stack.enter_context(tempfile.TemporaryDirectory()))["verilog"]
    else:
        verilog = args.verilog
        manifest = verilog.with_suffix(".json")
        if not verilog.is_file():
            raise CliError(f"--verilog {verilog}: no such file")
        try:
            cfg = AccelConfig(**json.loads(manifest.read_text())["parameters"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CliError(f"--verilog {verilog}: cannot read the configuration from its "
                           f"manifest {manifest} ({error})") from error
    return CosimTransport(cfg, str(verilog))


def _conv_layer(accelerator, args, x, w, bias, requant):
    return accelerator.conv2d(x, w, bias, stride=args.stride, padding=args.padding,
                              dilation=args.dilation, groups=args.groups, requant=requant)


def _deconv_layer(accelerator, args, x, w, bias, requant):
    return accelerator.conv_transpose2d(
        x, w, bias, stride=args.stride, padding=args.padding,
        output_padding=args.output_padding, dilation=args.dilation, groups=args.groups,
        method=args.method, requant=requant)


def _run_layer(args):
    """The `conv` and `deconv` subcommands."""
    if args.verilog is not None and args.backend != "cosim":
        raise CliError("--verilog needs --backend cosim")
    if (args.port is not None or args.baudrate is not None) and args.backend != "board":
        raise CliError("--port and --baudrate need --backend board")
    if args.backend == "board" and args.port is None:
        raise CliError("--backend board needs --port")
    x = _load("--input", args.input, ("int8",), (4,))
    w = _load("--weight", args.weight, ("int8",), (4,))
    bias = None if args.bias is None else _load("--bias", args.bias, ("int32",), (1,))
    requant = _requant(args)
    with contextlib.ExitStack() as stack:
        if args.backend == "model":
            transport = ModelTransport(AccelConfig())
        elif args.backend == "board":
            from .board import BoardTransport, DEFAULT_BAUDRATE
            transport = BoardTransport(args.port, args.baudrate or DEFAULT_BAUDRATE)
        else:
            transport = _cosim_transport(args, stack)
        stack.enter_context(transport)
        y, stats = args.layer(Accelerator(transport), args, x, w, bias, requant)
    np.save(args.out, y)
    if args.stats is not None:
        args.stats.write_text(json.dumps(stats, indent=2) + "\n")
    return 0


def _run_demo(args):
    from .demo import run_demo
    return run_demo(args.verilog)


def main(argv=None):
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (CliError, ValueError, TypeError, OSError, AcceleratorError,
            TransportError) as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
