"""Benchmarks (`python -m sw_driver bench`, `make bench`)."""


def add_arguments(parser):
    """Options of the bench subcommand."""
    parser.add_argument("--quick", action="store_true", help="reduced channels")


def run(args):
    raise SystemExit("bench: not written yet")
