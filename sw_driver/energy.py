"""Energy estimate of a run from its performance counters and a published
per-operation energy table.

Source: M. Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, Digest of Technical Papers, pp. 10-14,
doi:10.1109/ISSCC.2014.6757323, table "Rough energy costs for various
operations in 45nm 0.9V" (Fig. 1.1.9). The entries used here:

    8b integer multiply                  0.2 pJ
    8b integer add                       0.03 pJ   (listed for reference; unused)
    32b integer add                      0.1 pJ
    64-bit read, 8 KB SRAM (cache)       10 pJ
    64-bit DRAM access                   1.3 - 2.6 nJ  -> 1.3 nJ used (the low end,
                                         which understates the DRAM share; the
                                         report also gives the saving at 2.6 nJ)

Model (every count comes from the accelerator's counters or the descriptors
that ran; a "word" is 64 bits, the AXI bus word of the default configuration):

    MACs        MACS x (8b multiply + 32b add)
                  every issued product is multiplied and accumulated: the
                  column adder trees and the accumulator add are charged as
                  one 32b add per product (an upper bound, the tree's adds
                  are narrower)
    input SRAM  ACTIVE x in_elem_words reads      (one R-channel pixel per cycle)
    acc SRAM    ACTIVE x 2 x acc_words            (read-modify-write of the C int32
                                                  accumulators of the pixel)
    store       output elements x acc_words reads (the store stage reads each
                                                  accumulator element once)
    buffer fill BYTES_RD / 8 word writes          (every word the DMA reads is
                                                  written into an on-chip buffer)
    weights     weight words x 1 read             (each weight word loaded is read
                                                  into the PE array once per tap pass;
                                                  weight stationary)
    DRAM        (BYTES_RD + BYTES_WR) / 8 x DRAM energy per word

acc_words = ceil(4 C / 8). The accumulator bank (acc_depth x C x 4 bytes,
32 KB by default) and the input bank (in_depth x R bytes, 16 KB) are charged
at the 8 KB figure: both are taken as banked into 8 KB, 64-bit wide
sub-arrays, one access per 64-bit word. Control, clock tree and leakage are
not modelled.
"""

from dataclasses import dataclass, asdict
import math

from .cycles import tile_spans

__all__ = ["EnergyTable", "HOROWITZ_45NM", "SOURCE", "dma_words", "estimate", "saving", "table_dict"]

SOURCE = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
          "ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323, 45 nm 0.9 V table")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in picojoules."""

    mult8: float = 0.2          # 8b integer multiply
    add8: float = 0.03          # 8b integer add (unused by the model, kept for reference)
    add32: float = 0.1          # 32b integer add
    sram_word: float = 10.0     # 64-bit read from an 8 KB SRAM
    dram_word: float = 1300.0   # 64-bit DRAM access (1.3-2.6 nJ; low end)
    word_bytes: int = 8

    @property
    def mac(self):
        """One multiply-accumulate: 8b multiply + 32b add."""
        return self.mult8 + self.add32


HOROWITZ_45NM = EnergyTable()


def dma_words(cfg, desc):
    """Bus words one descriptor reads, by kind: {"input", "weights", "params"}.

    `desc` maps DESC_FIELDS names to decoded values. The same job accounting
    as the cycle model and the RTL: per (tile, cob), the parameter element
    once and, per cib, the KH*KW weight elements and the tile's input window.
    """
    taps = desc["KH"] * desc["KW"]
    rows = tile_spans(desc["OUT_H"], desc["TILE_H"], desc["SH"], desc["PAD_T"], desc["KH"],
                      desc["IN_H"])
    cols = tile_spans(desc["OUT_W"], desc["TILE_W"], desc["SW"], desc["PAD_L"], desc["KW"],
                      desc["IN_W"])
    tiles = len(rows) * len(cols)
    window = sum(r[3] for r in rows) * sum(c[3] for c in cols)
    co, ci = desc["CO_BLOCKS"], desc["CI_BLOCKS"]
    return {
        "input": window * co * ci * cfg.in_elem_words,
        "weights": tiles * co * ci * taps * cfg.w_elem_words,
        "params": tiles * co * cfg.p_elem_words,
    }


def estimate(cfg, counters, weight_words, requant=True, table=HOROWITZ_45NM):
    """Energy of a run in picojoules, by component, and its total.

    `counters`: totals of the run with keys macs_issued, active_cycles,
    bytes_read, bytes_written (the driver's stats keys). `weight_words`:
    weight words the DMA loaded (`dma_words`). `requant`: int8 outputs
    (MODE 1), which sets the output element size.
    """
    word = table.word_bytes
    acc_words = math.ceil(4 * cfg.cols / word)
    in_words = math.ceil(cfg.rows / word)
    out_elem_bytes = cfg.out_elem_words(requant) * cfg.bus_bytes
    outputs = counters["bytes_written"] // out_elem_bytes
    active = counters["active_cycles"]
    parts = {
        "mac": counters["macs_issued"] * table.mac,
        "input_sram": active * in_words * table.sram_word,
        "acc_sram": active * 2 * acc_words * table.sram_word,
        "store_sram": outputs * acc_words * table.sram_word,
        "fill_sram": counters["bytes_read"] / word * table.sram_word,
        "weight_sram": weight_words * (cfg.bus_bytes / word) * table.sram_word,
        "dram": (counters["bytes_read"] + counters["bytes_written"]) / word * table.dram_word,
    }
    parts["total"] = sum(parts.values())
    return parts


def saving(split_pj, baseline_pj):
    """Energy saved by `split_pj` relative to `baseline_pj`, in percent."""
    return 100.0 * (1.0 - split_pj / baseline_pj)


def table_dict(table=HOROWITZ_45NM):
    """The table as a plain dict (for results.json)."""
    return {**asdict(table), "source": SOURCE}
