"""Cycle model of one descriptor: the RTL's three-stage pipeline (load,
compute, store) replayed job by job with the same hand-offs.

Jobs run in the order `for ty: for tx: for cob: for cib:`. Load and compute
share double-buffered input/weight banks (job j uses bank j % 2), compute and
store share double-buffered accumulator banks (tile-cob t uses bank t % 2).
With times in cycles after the start:

    load accepts job j     a = max(load idle, release[j-2] + 1)
    its data arrives from  a + (load_first_cmd if cib == 0 else load_later_cmd
                                + multiply cycles of the weight command) + read_latency
    bank j is full         data start + beats + 1         (load idle again)
    compute accepts job j  c = max(release[j-1] + 1, bank full,
                                   acc bank free if cib == 0)
    its release[j]         c + KH*KW*max(th*tw, pass_min)
    tile-cob t complete    release[last job] + acc_handoff
    store accepts t        s = max(store idle, tile complete), store idle G cycles after
                           its last pixel read
    its pixels             read one every G = cfg.requant_groups cycles
    its words              from max(s + store_first_word + G - 1, previous words end),
                           th*tw*out_elem_words of them, one per cycle, but a pixel's
                           no earlier than G cycles after the pixel before
    acc bank free          last accumulator read + store_release + G - 1
    done                   last words end + finish

`beats` are the DMA words of the job: the parameter element when cib == 0,
KH*KW weight elements and the input window. Every constant lives in `Timing`
and was measured on the RTL (`tests/test_cosim.py` keeps the model within 2%
of the Verilator cosimulation).

A descriptor refused at start is done after `reject` cycles. Identical
consecutive steps (jobs of a tile-cob, tile-cobs of a tile, equal tiles) are
skipped once the schedule repeats itself, which is exact for these max-plus
recurrences, so a descriptor costs about as much as its number of distinct
tile shapes.

The same function serves the NumPy model (its counters and `wait_done`), the
tiler (choosing the tile size) and the driver (the time-out budget).
"""

from dataclasses import dataclass
import itertools

from hw.config import PREP_PRODUCTS

__all__ = ["Timing", "DEFAULT_TIMING", "tile_spans", "prepare_cycles", "first_tile_cycles",
           "simulate"]


@dataclass(frozen=True)
class Timing:
    """Cycle constants of the RTL pipeline and of the memory behind it."""

    dispatch: int = 8           # start to the first job reaching the stages, less the
                                # dispatcher's products (`prepare_cycles`, `first_tile_cycles`)
    load_first_cmd: int = 4     # job accepted to the first read request, cib == 0
    load_later_cmd: int = 5     # the same for cib > 0 (weights first), before multiply cycles
    read_latency: int = 8       # memory: read request to its first data beat
    pass_min: int = 3           # shortest tap pass (hw.compute.PASS_MIN)
    acc_handoff: int = 7        # last pixel issued to the accumulator bank seen full
    store_first_word: int = 17  # store accepts a tile to its first output word
    store_fifo: int = 16        # output elements the store may read ahead of the bus
    store_release: int = 15     # last accumulator read to the bank seen free
    finish: int = 4             # last output word to STATUS.done (write response)
    reject: int = 2             # start to STATUS.done for a refused descriptor, less
                                # `prepare_cycles`

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


def _product_cycles(factor):
    """Cycles of one shift-and-add product (`hw.jobs.SerialMultiplier` and the
    dispatcher's two states around it) whose counted factor is `factor`."""
    return (factor & 0xFF_FFFF).bit_length() + 2


def prepare_cycles(cfg, desc):
    """Cycles of the dispatcher's per-descriptor products (`PREP_PRODUCTS`).

    `desc` holds decoded field values; like the hardware, this works for any
    value, valid or not (a refused descriptor is prepared before it is checked).
    """
    tile_h, tile_w = desc["TILE_H"] & 0xFFFF, desc["TILE_W"] & 0xFFFF
    ty_step = desc["SH"] * tile_h & 0xFF_FFFF
    factors = {
        "KH": desc["KH"], "SH": desc["SH"], "SW": desc["SW"],
        "TILE_H": tile_h, "TILE_W": tile_w,
        "PAD_T": abs(desc["PAD_T"]), "PAD_L": abs(desc["PAD_L"]),
        "ELEM_WORDS": cfg.w_elem_words,
        "ty_step": ty_step, "tx_step": desc["SW"] * tile_w & 0xFF_FFFF,
        "span_h": (ty_step - desc["SH"] + desc["KH"]) & 0x1F_FFFF,
    }
    return sum(_product_cycles(factors[a]) for _, a, _, _ in PREP_PRODUCTS)


def first_tile_cycles(desc):
    """Cycles of the dispatcher's per-tile products for the first tile: the
    input-buffer row step (SH) and the offset of the tile's first row above a
    clipped window (PAD_T when positive)."""
    return _product_cycles(desc["SH"]) + _product_cycles(max(desc["PAD_T"], 0))


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


def _multiply_cycles(elements, words):
    """Cycles the DMA engine spends sizing a contiguous row of `elements` x `words`."""
    return max(min(elements, words).bit_length() - 1, 0)


def simulate(cfg, desc, timing=DEFAULT_TIMING):
    """Run the pipeline schedule of a valid descriptor; return its counters.

    `desc` maps DESC_FIELDS names to decoded values (signed fields as negative
    ints). The result maps every name of `hw.config.COUNTERS` to its value at done.
    """
    taps = desc["KH"] * desc["KW"]
    ci_blocks, co_blocks = desc["CI_BLOCKS"], desc["CO_BLOCKS"]
    in_words, p_words = cfg.in_elem_words, cfg.p_elem_words
    out_words = cfg.out_elem_words(desc["MODE"] == 1)
    groups = cfg.requant_groups          # cycles per pixel through the requantiser
    weight_beats = taps * cfg.w_elem_words
    later_cmd = timing.load_later_cmd + _multiply_cycles(taps, cfg.w_elem_words)

    rows = _runs(tile_spans(desc["OUT_H"], desc["TILE_H"], desc["SH"], desc["PAD_T"],
                            desc["KH"], desc["IN_H"]))
    cols = _runs(tile_spans(desc["OUT_W"], desc["TILE_W"], desc["SW"], desc["PAD_L"],
                            desc["KW"], desc["IN_W"]))

    def tile_cob(state, tile):
        """The jobs of one (tile, cob), cib = 0 first, then its store.

        State: (load idle, release[j-2], release[j-1], acc free[t-2],
        acc free[t-1], store idle, words end).
        """
        th, tw, window = tile
        pixels = th * tw
        passes = taps * max(pixels, timing.pass_min)
        input_beats = window * in_words

        def job(jobs, first):
            load_idle, release_2, release_1, acc_free = jobs
            accept = max(load_idle, release_2 + 1)
            command = timing.load_first_cmd if first else later_cmd
            beats = weight_beats + input_beats + (p_words if first else 0)
            full = accept + command + timing.read_latency + beats + 1
            start = max(release_1 + 1, full, acc_free if first else 0)
            return full, release_1, start + passes, acc_free

        def later_job(jobs):
            return job(jobs, False)

        load_idle, release_2, release_1, acc_free_2, acc_free_1, store_idle, words_end = state
        jobs = job((load_idle, release_2, release_1, acc_free_2), True)
        load_idle, release_2, release_1, _ = _repeat(later_job, jobs, ci_blocks - 1)
        accept = max(store_idle, release_1 + timing.acc_handoff)
        words_start = max(accept + timing.store_first_word + groups - 1, words_end)
        # A pixel's words follow its last channel group: with fewer lanes than
        # words a pixel (requant_groups > out_words) the lanes set the pace.
        words_end = words_start + (pixels - 1) * max(groups, out_words) + out_words
        last_read = max(accept + 1 + (pixels - 1) * groups,
                        words_start + (pixels - timing.store_fifo) * out_words)
        # The next tile's first read also waits out the last pixel's groups.
        return (load_idle, release_2, release_1, acc_free_1,
                last_read + timing.store_release + groups - 1, last_read + groups, words_end)

    def tile_row(state, th, wh):
        for (tw, ww), count in cols:
            tile = (th, tw, wh * ww)
            state = _repeat(lambda s: _repeat(lambda t: tile_cob(t, tile), s, co_blocks),
                            state, count)
        return state

    start = timing.dispatch + prepare_cycles(cfg, desc) + first_tile_cycles(desc)
    state = (start, start - 2, start - 1, 0, 0, 0, 0)
    active = beats_read = beats_written = 0
    for (th, wh), row_count in rows:
        state = _repeat(lambda s: tile_row(s, th, wh), state, row_count)
        for (tw, ww), col_count in cols:
            tiles = row_count * col_count * co_blocks
            beats_read += tiles * (p_words + ci_blocks * (weight_beats + wh * ww * in_words))
            beats_written += tiles * th * tw * out_words
            active += tiles * ci_blocks * taps * th * tw

    cycles = state[6] + timing.finish
    return {
        "CYCLES": cycles,
        "ACTIVE": active,
        "MACS": active * cfg.rows * cfg.cols,
        "BYTES_RD": beats_read * cfg.bus_bytes,
        "BYTES_WR": beats_written * cfg.bus_bytes,
        "STALL": cycles - active,
    }
