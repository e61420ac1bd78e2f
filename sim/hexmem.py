"""Memory images as Verilog hex files, the format of the memory model's backdoor.

`$readmemh` files: an ``@<word address>`` line, then one word per line, most
significant digit first (a word's bytes are little endian in memory). `$writememh`
output: one word per line, no addresses. Conversion is done with NumPy, no Python
per word.
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode_words", "decode_words", "coalesce", "write_image"]


def encode_words(data: bytes, bus_bytes: int) -> bytes:
    """Hex lines (with a trailing newline each) of `data`, a whole number of words."""
    if len(data) % bus_bytes:
        raise ValueError(f"{len(data)} bytes is not a whole number of {bus_bytes}-byte words")
    words = len(data) // bus_bytes
    if not words:
        return b""
    msb_first = np.frombuffer(data, np.uint8).reshape(words, bus_bytes)[:, ::-1]
    digits = np.frombuffer(msb_first.tobytes().hex().encode(), np.uint8)
    lines = np.empty((words, 2 * bus_bytes + 1), np.uint8)
    lines[:, :-1] = digits.reshape(words, 2 * bus_bytes)
    lines[:, -1] = ord("\n")
    return lines.tobytes()


def decode_words(text: bytes, bus_bytes: int, words: int) -> bytes:
    """The bytes of the `words` words in `$writememh` output `text`."""
    if b"@" in text or b"/" in text:
        text = b"\n".join(line for line in text.splitlines()
                          if line.strip() and not line.lstrip().startswith((b"@", b"//")))
    raw = bytes.fromhex(text.decode("ascii"))
    if len(raw) != words * bus_bytes:
        raise ValueError(f"memory dump holds {len(raw)} bytes, expected {words * bus_bytes}")
    return np.frombuffer(raw, np.uint8).reshape(words, bus_bytes)[:, ::-1].tobytes()


def coalesce(segments, bus_bytes: int):
    """Whole-word (first_word, bytes) runs covering `segments` [(addr, data), ...].

    Later segments win where they overlap; bytes of a partly covered word that no
    segment gives are zero (the memory's content at power-on).
    """
    spans = []
    for index, (addr, data) in enumerate(segments):
        if len(data):
            spans.append((addr // bus_bytes, (addr + len(data) - 1) // bus_bytes, index))
    spans.sort()
    groups = []
    for first, last, index in spans:
        if groups and first <= groups[-1][1] + 1:     # overlapping or adjacent words
            groups[-1][1] = max(groups[-1][1], last)
            groups[-1][2].append(index)
        else:
            groups.append([first, last, [index]])
    runs = []
    for first, last, indices in groups:
        buf = bytearray((last - first + 1) * bus_bytes)
        base = first * bus_bytes
        for index in sorted(indices):
            addr, data = segments[index]
            buf[addr - base:addr - base + len(data)] = data
        runs.append((first, bytes(buf)))
    return runs


def write_image(path, runs, bus_bytes: int) -> None:
    """Write `$readmemh` file `path` from (first_word, whole-word bytes) runs."""
    with open(path, "wb") as out:
        for first, data in runs:
            out.write(b"@%x\n" % first)
            out.write(encode_words(data, bus_bytes))
