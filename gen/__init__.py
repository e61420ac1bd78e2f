"""Generator: accelerator parameters -> Verilog, JSON manifest and C header."""

from .generate import generate, manifest, c_header, verilog

__all__ = ["generate", "manifest", "c_header", "verilog"]
