# amaranth: UnusedElaboratable=no
"""The PEs' DSP sites: each array column on neighbouring sites of one DSP row."""

import re
from dataclasses import replace

import pytest
from amaranth.back import rtlil

from hw.board.boards import BoardError, get_board
from hw.board.dsp_sites import ECP5_85K_DSP_ROWS, pe_sites
from hw.config import AccelConfig
from hw.pe import COLS_PER_X_COPY, PE, PEArray


def where(placement):
    """{(row, col): (DSP row, index in it)} of a placement on the LFE5U-85F."""
    index = {site: (k, i) for k, sites in enumerate(ECP5_85K_DSP_ROWS)
             for i, site in enumerate(sites)}
    return {pe: index[site] for pe, site in placement.items()}


def test_the_85k_sites():
    sites = [site for row in ECP5_85K_DSP_ROWS for site in row]
    assert len(sites) == len(set(sites)) == get_board("ulx3s").resources["DSP"] == 156
    assert [len(row) for row in ECP5_85K_DSP_ROWS] == [52] * 3
    assert ECP5_85K_DSP_ROWS[0][:5] == ("X4/Y10/MULT18_0", "X5/Y10/MULT18_1", "X8/Y10/MULT18_4",
                                        "X9/Y10/MULT18_5", "X13/Y10/MULT18_0")
    for row in ECP5_85K_DSP_ROWS:
        xs = [int(re.match(r"X(\d+)/", site).group(1)) for site in row]
        assert xs == sorted(xs)


@pytest.mark.parametrize("rows, cols, spare", [(12, 12, 12), (8, 8, 0), (2, 2, 8), (12, 4, 4),
                                               (3, 5, 0)])
def test_columns_are_neighbours_in_one_dsp_row(rows, cols, spare):
    placed = where(pe_sites(ECP5_85K_DSP_ROWS, rows, cols, spare))
    assert sorted(placed) == [(r, c) for r in range(rows) for c in range(cols)]
    assert len(set(placed.values())) == rows * cols
    for c in range(cols):
        column = [placed[r, c] for r in range(rows)]
        assert len({k for k, _ in column}) == 1
        assert [i for _, i in column] == list(range(column[0][1], column[0][1] + rows))
    for c in range(cols):
        # The columns that share a copy of the input pixel share a DSP row.
        assert placed[0, c][0] == placed[0, c - c % COLS_PER_X_COPY][0]
    used_rows = {k for k, _ in placed.values()}
    free = sum(len(ECP5_85K_DSP_ROWS[k]) for k in used_rows) - rows * cols
    assert free >= spare


def test_the_12x12_leaves_the_middle_of_each_row_to_the_requantiser():
    placed = where(pe_sites(ECP5_85K_DSP_ROWS, 12, 12, 12))
    for k in range(3):
        taken = sorted(i for dsp_row, i in placed.values() if dsp_row == k)
        assert sorted(set(range(52)) - set(taken)) == [24, 25, 26, 27]
        # Four columns a row, in order.
        assert [placed[0, c] for c in range(4 * k, 4 * k + 4)] == \
            [(k, 0), (k, 12), (k, 28), (k, 40)]
    assert ECP5_85K_DSP_ROWS[1][24:28] == ("X58/Y34/MULT18_0", "X59/Y34/MULT18_1",
                                           "X62/Y34/MULT18_4", "X63/Y34/MULT18_5")


def test_a_small_array_takes_the_middle_dsp_row():
    assert {k for k, _ in where(pe_sites(ECP5_85K_DSP_ROWS, 2, 2, 8)).values()} == {1}


@pytest.mark.parametrize("rows, cols, spare", [(12, 13, 0), (13, 12, 1), (12, 12, 13),
                                               (53, 1, 0)])
def test_an_array_that_does_not_fit_is_left_to_the_placer(rows, cols, spare):
    assert pe_sites(ECP5_85K_DSP_ROWS, rows, cols, spare) == {}


def test_board_pe_sites():
    ulx3s = get_board("ulx3s")
    assert ulx3s.pe_sites(ulx3s.accel) == pe_sites(ECP5_85K_DSP_ROWS, 12, 12, 12)
    # LUT digit products leave no sites to spare.
    lut_lanes = replace(ulx3s.accel, requant_digit_bits=8)
    assert ulx3s.pe_sites(lut_lanes) == pe_sites(ECP5_85K_DSP_ROWS, 12, 12, 0)
    for name in ("icebreaker", "arty"):
        board = get_board(name)
        assert board.dsp_rows is None and board.pe_sites(board.accel) == {}


@pytest.mark.parametrize("name, dsp_rows", [
    ("arty", ECP5_85K_DSP_ROWS),
    ("ulx3s", ()),
    ("ulx3s", (("X4/Y10/MULT18_0", "X4/Y10/MULT18_0"),)),
    ("ulx3s", (["X4/Y10/MULT18_0"],)),
    ("ulx3s", (("X4/Y10/MULT18_0", ""),)),
])
def test_board_dsp_rows_are_checked(name, dsp_rows):
    with pytest.raises(BoardError, match=f"board '{name}': dsp_rows must be None or ECP5 DSP "
                                         f"site names"):
        replace(get_board(name), dsp_rows=dsp_rows)


def test_the_ecp5_array_places_each_pe_on_its_site():
    """Elaborated for the ULX3S, each PE's MULT18X18D carries its BEL."""
    board = get_board("ulx3s")
    text = rtlil.convert(PEArray(board.accel), platform=board, name="array")
    found = {}
    for module in text.split("\nmodule ")[1:]:
        name = re.match(r"\\array\.pe_(\d+)_(\d+)\n", module)
        if name:
            (site,) = re.findall(r'attribute \\BEL "([^"]+)"\s*cell \\MULT18X18D ', module)
            found[int(name.group(1)), int(name.group(2))] = site
    assert found == board.pe_sites(board.accel) and len(found) == 144
    # Without sites (another configuration than the board's DSPs hold), no BEL.
    text = rtlil.convert(PEArray(AccelConfig(rows=16, cols=12)), platform=board, name="array")
    assert text.count("cell \\MULT18X18D") == 192 and "BEL" not in text


@pytest.mark.parametrize("site", ["", 3, ("X4/Y10/MULT18_0",)])
def test_pe_refuses_bad_site(site):
    with pytest.raises(TypeError, match=f"^site must be None or a DSP site name, not "
                                        f"{re.escape(repr(site))}$"):
        PE(site=site)
