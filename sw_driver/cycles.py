"""Cycle model of one descriptor: an event-driven schedule of the three-stage
pipeline (load, compute, store) of docs/architecture.md.

Jobs run in the order `for ty: for tx: for cob: for cib:`. Load and compute
share double-buffered input/weight banks (job j uses bank j % 2), compute and
store share double-buffered accumulator banks (tile-cob t uses bank t % 2):

    load_start[j]    = max(load_end[j-1], compute_end[j-2])
    compute_start[j] = max(compute_end[j-1], load_end[j], store_end[t-2] if cib == 0)
    store_start[t]   = max(store_end[t-1], compute_end[last job of t])
    total            = store_end[last] + finish

Stage durations use the constants of `Timing`, the only place they live, so
that they can be calibrated against the RTL:

    load    = load_overhead + read_latency + beats
              beats = (p_elem_words if cib == 0) + KH*KW*w_elem_words
                      + window elements * in_elem_words
    compute = compute_overhead + KH*KW*max(th*tw, pass_min) + pipe_drain
    store   = store_overhead + th*tw*out_elem_words(MODE) + write_latency

A descriptor refused at start is done after `reject` cycles (the model's
counters for it). Identical consecutive steps (jobs of a tile-cob, tile-cobs
of a tile, equal tiles) are skipped once the schedule repeats itself, which
is exact for these max-plus recurrences, so a descriptor costs about as much
as its number of distinct tile shapes.

The same function serves the NumPy model (its counters and `wait_done`), the
tiler (choosing the tile size) and the driver (the time-out budget).
"""

from dataclasses import dataclass
import itertools

__all__ = ["Timing", "DEFAULT_TIMING", "tile_spans", "simulate"]


@dataclass(frozen=True)
class Timing:
    """Named cycle constants of the pipeline model (all in clock cycles)."""

    load_overhead: int = 4      # load stage: job set-up before its first read command
    read_latency: int = 10      # AXI read: first command to first data beat
    compute_overhead: int = 4   # compute stage: job set-up before the first tap pass
    pass_min: int = 4           # shortest tap pass (accumulator read-modify-write distance)
    pipe_drain: int = 6         # compute stage: last pixel in to last accumulator written
    store_overhead: int = 4     # store stage: set-up before the first output beat
    write_latency: int = 10     # AXI write: last data beat to the write response
    finish: int = 2             # last store response to STATUS.done
    reject: int = 1             # start to STATUS.done for a refused descriptor

    def __post_init__(self):
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Timing.{name} must be an int >= 0, not {value!r}")


DEFAULT_TIMING = Timing()


def tile_spans(out_len, tile, stride, pad, kernel, in_len):
    """Tiles along one axis: a list of (first output, outputs, first window input, window length).

    The window of a tile covers the inputs its outputs read,
    `o0*stride - pad .. (o0 + n - 1)*stride - pad + kernel - 1`, clipped to
    `[0, in_len)`; its length is 0 when the clipped range is empty.
    """
    spans = []
    for first in range(0, out_len, tile):
        count = min(tile, out_len - first)
        low = first * stride - pad
        high = low + (count - 1) * stride + kernel - 1
        clipped_low, clipped_high = max(low, 0), min(high, in_len - 1)
        spans.append((first, count, clipped_low, max(clipped_high - clipped_low + 1, 0)))
    return spans


def _runs(spans):
    """Run-length encoding of the (outputs, window length) of `tile_spans` output."""
    return [(key, len(list(group)))
            for key, group in itertools.groupby((count, window) for _, count, _, window in spans)]


def _repeat(step, state, count):
    """`step` applied `count` times to the tuple `state`.

    The steps are max-plus expressions (max and + of constants), so
    `step(s + d) == step(s) + d`: once a step shifts every component by the
    same d, every later step does too, and the remaining steps are skipped
    exactly.
    """
    for done in range(count):
        new = step(state)
        shift = new[0] - state[0]
        if new == tuple(value + shift for value in state):
            return tuple(value + shift * (count - done - 1) for value in new)
        state = new
    return state


def simulate(cfg, desc, timing=DEFAULT_TIMING):
    """Run the pipeline schedule of a valid descriptor; return its counters.

    `desc` maps DESC_FIELDS names to decoded values (signed fields as negative
    ints). The result maps every name of `hw.config.COUNTERS` to its value at done.
    """
    taps = desc["KH"] * desc["KW"]
    ci_blocks, co_blocks = desc["CI_BLOCKS"], desc["CO_BLOCKS"]
    in_words, p_words = cfg.in_elem_words, cfg.p_elem_words
    out_words = cfg.out_elem_words(desc["MODE"] == 1)
    weight_beats = taps * cfg.w_elem_words

    rows = _runs(tile_spans(desc["OUT_H"], desc["TILE_H"], desc["SH"], desc["PAD_T"],
                            desc["KH"], desc["IN_H"]))
    cols = _runs(tile_spans(desc["OUT_W"], desc["TILE_W"], desc["SW"], desc["PAD_L"],
                            desc["KW"], desc["IN_W"]))

    def tile_cob(state, tile):
        """The jobs of one (tile, cob), cib = 0 first, then its store.

        State: (load_end, compute_end[j-2], compute_end[j-1], store_end[t-2],
        store_end[t-1]); `tile` is (th, tw, window elements).
        """
        th, tw, window = tile
        taps_pixels = taps * max(th * tw, timing.pass_min)
        load_rest = (timing.load_overhead + timing.read_latency + weight_beats
                     + window * in_words)
        compute = timing.compute_overhead + taps_pixels + timing.pipe_drain
        store = timing.store_overhead + th * tw * out_words + timing.write_latency

        def later_job(jobs):
            """A job with cib > 0."""
            load_end, compute_end_2, compute_end_1 = jobs
            load_end = max(load_end, compute_end_2) + load_rest
            return load_end, compute_end_1, max(compute_end_1, load_end) + compute

        load_end, compute_end_2, compute_end_1, store_end_2, store_end_1 = state
        load_end = max(load_end, compute_end_2) + load_rest + p_words
        compute_end_2, compute_end_1 = (
            compute_end_1, max(compute_end_1, load_end, store_end_2) + compute)
        load_end, compute_end_2, compute_end_1 = _repeat(
            later_job, (load_end, compute_end_2, compute_end_1), ci_blocks - 1)
        return (load_end, compute_end_2, compute_end_1, store_end_1,
                max(store_end_1, compute_end_1) + store)

    def tile_row(state, th, wh):
        for (tw, ww), count in cols:
            tile = (th, tw, wh * ww)
            state = _repeat(lambda s: _repeat(lambda t: tile_cob(t, tile), s, co_blocks),
                            state, count)
        return state

    state = (0, 0, 0, 0, 0)
    active = beats_read = beats_written = 0
    for (th, wh), row_count in rows:
        state = _repeat(lambda s: tile_row(s, th, wh), state, row_count)
        for (tw, ww), col_count in cols:
            tiles = row_count * col_count * co_blocks
            beats_read += tiles * (p_words + ci_blocks * (weight_beats + wh * ww * in_words))
            beats_written += tiles * th * tw * out_words
            active += tiles * ci_blocks * taps * th * tw

    cycles = state[4] + timing.finish
    return {
        "CYCLES": cycles,
        "ACTIVE": active,
        "MACS": active * cfg.rows * cfg.cols,
        "BYTES_RD": beats_read * cfg.bus_bytes,
        "BYTES_WR": beats_written * cfg.bus_bytes,
        "STALL": cycles - active,
    }
