"""Where the PE array's multipliers go on an FPGA's DSP sites.

Left to nextpnr's placer, the 12x12 array's MULT18X18Ds took the LFE5U-85F's
DSP sites in an order unrelated to the array: the twelve products of one
column, which one adder tree sums, came from all three DSP rows and from
across the chip's width (docs/fpga.md). `pe_sites` gives each PE a site so
that an array column's multipliers are neighbours in one DSP row, and the
columns that share a copy of the input pixel (`hw.pe.COLS_PER_X_COPY`) share
a DSP row.
"""

__all__ = ["ECP5_85K_DSP_ROWS", "pe_sites"]


def _ecp5_rows(rows_y, blocks_x):
    # A block of four MULT18X18Ds spans six tile columns: x, x+1, x+4, x+5.
    return tuple(tuple(f"X{x + dx}/Y{y}/MULT18_{dx}" for x in blocks_x for dx in (0, 1, 4, 5))
                 for y in rows_y)


# The LFE5U-85F's 156 MULT18X18D sites as nextpnr names them, a tuple per DSP
# row in x order: three rows of thirteen blocks of four (read from a
# placement of the 12x12 top).
ECP5_85K_DSP_ROWS = _ecp5_rows((10, 34, 58),
                               (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114))


def pe_sites(dsp_rows, rows, cols, spare=0):
    """{(row, col): site} for the PEs of a `rows` x `cols` array on a device
    whose DSP sites are `dsp_rows` (a sequence of rows, each a sequence of
    sites in x order), or {} when the array does not fit them this way.

    The array's columns are spread evenly over as few DSP rows as hold them
    (the middle ones of the device), a column on `rows` neighbouring sites.
    `spare` sites (the requantiser's multipliers) are left free, shared out
    over the DSP rows used, in the middle of each row's run of PE sites: the
    store stage that feeds the requantiser sits between the array's halves.
    """
    for used in range(1, len(dsp_rows) + 1):
        columns_per_row = -(-cols // used)
        free_per_row = -(-spare // used)
        first = (len(dsp_rows) - used) // 2
        chosen = dsp_rows[first:first + used]
        if all(columns_per_row * rows + free_per_row <= len(sites) for sites in chosen):
            break
    else:
        return {}
    placement = {}
    for index, sites in enumerate(chosen):
        columns = range(index * columns_per_row, min((index + 1) * columns_per_row, cols))
        needed = len(columns) * rows + free_per_row
        run = sites[(len(sites) - needed) // 2:][:needed]
        left = len(columns) // 2
        pe_run = run[:left * rows] + run[left * rows + free_per_row:]
        for position, col in enumerate(columns):
            for row in range(rows):
                placement[row, col] = pe_run[position * rows + row]
    return placement
