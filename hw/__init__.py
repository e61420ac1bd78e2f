"""Amaranth HDL of the int8 convolution accelerator (convolution only)."""
