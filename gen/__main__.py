"""`python -m gen`: write the accelerator's Verilog, manifest and C header."""

import argparse
import dataclasses
import sys

from hw.config import AccelConfig, ConfigError
from .generate import generate


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gen", description=__doc__)
    defaults = AccelConfig()
    for field in dataclasses.fields(AccelConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), type=int,
                            default=getattr(defaults, field.name),
                            help=f"default {getattr(defaults, field.name)}")
    parser.add_argument("--out-dir", default="build/gen", help="default build/gen")
    args = parser.parse_args(argv)
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(AccelConfig)}
    try:
        cfg = AccelConfig(**values)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    paths = generate(cfg, args.out_dir)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
