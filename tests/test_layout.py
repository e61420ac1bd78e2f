"""Device layouts: round trips, element placement and grouped-weight expansion."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw.config import AccelConfig
from sw_driver.layout import (BlockedLayout, expand_groups, input_layout, output_layout,
                              pack_blocked, pack_params, pack_weights, unpack_blocked,
                              unpack_params, unpack_weights)

CONFIGS = {
    "8x8": AccelConfig(),
    "4x16": AccelConfig(rows=4, cols=16),
    "3x5_bus32": AccelConfig(rows=3, cols=5, axi_data_width=32),
    "12x3_bus128": AccelConfig(rows=12, cols=3, axi_data_width=128),
}
config_names = st.sampled_from(sorted(CONFIGS))


def random_int(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@settings(max_examples=60, deadline=None)
@given(name=config_names, batch=st.integers(1, 3), channels=st.integers(1, 30),
       height=st.integers(1, 5), width=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_input_round_trip(name, batch, channels, height, width, seed):
    cfg = CONFIGS[name]
    x = random_int(np.random.default_rng(seed), np.int8, (batch, channels, height, width))
    layout = input_layout(cfg, batch, channels, height, width)
    data = pack_blocked(x, layout)
    assert data.dtype == np.uint8 and data.size == layout.nbytes
    np.testing.assert_array_equal(unpack_blocked(data, layout), x)


@settings(max_examples=60, deadline=None)
@given(name=config_names, requant=st.booleans(), batch=st.integers(1, 2),
       channels=st.integers(1, 30), height=st.integers(1, 4), width=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_output_round_trip(name, requant, batch, channels, height, width, seed):
    cfg = CONFIGS[name]
    dtype = np.int8 if requant else np.int32
    y = random_int(np.random.default_rng(seed), dtype, (batch, channels, height, width))
    layout = output_layout(cfg, batch, channels, height, width, requant)
    unpacked = unpack_blocked(pack_blocked(y, layout), layout)
    assert unpacked.dtype == dtype
    np.testing.assert_array_equal(unpacked, y)


def test_input_placement_and_pitches():
    """R = 3, B = 4: one word per element, channel c at byte c % 3 of block c // 3."""
    cfg = CONFIGS["3x5_bus32"]
    layout = input_layout(cfg, 2, 7, 2, 3)
    assert (layout.blocks, layout.elem_bytes) == (3, 4)
    assert (layout.blk_pitch, layout.elem_pitch, layout.row_pitch, layout.image_pitch) == \
        (4, 12, 36, 72)
    x = np.arange(2 * 7 * 2 * 3, dtype=np.int64).reshape(2, 7, 2, 3).astype(np.int8)
    data = pack_blocked(x, layout)
    for n, c, iy, ix in np.ndindex(x.shape):
        address = (n * layout.image_pitch + (c // 3) * layout.blk_pitch
                   + iy * layout.row_pitch + ix * layout.elem_pitch + c % 3)
        assert data[address].view(np.int8) == x[n, c, iy, ix]
    # Padding: byte 3 of every element, and channels 7, 8 of the last block.
    elements = data.reshape(-1, 4)
    assert not elements[:, 3].any()
    assert not elements.reshape(2, 2, 3, 3, 4)[:, :, :, 2, 1:].any()


def test_output_int32_placement():
    """C = 5, B = 4, int32: 20 bytes in 5 words; channel c at bytes 4c..4c+3."""
    cfg = CONFIGS["3x5_bus32"]
    layout = output_layout(cfg, 1, 6, 1, 2, requant=False)
    assert (layout.blocks, layout.elem_bytes, layout.elem_pitch) == (2, 20, 40)
    y = np.array([[[[1, -2]], [[3, 4]], [[5, 6]], [[7, 8]], [[9, 10]], [[-11, 12]]]],
                 dtype=np.int32)
    data = pack_blocked(y, layout)
    words = data.view("<i4")
    np.testing.assert_array_equal(words[:5], [1, 3, 5, 7, 9])            # pixel 0, block 0
    np.testing.assert_array_equal(words[5:10], [-11, 0, 0, 0, 0])        # pixel 0, block 1
    np.testing.assert_array_equal(words[10:15], [-2, 4, 6, 8, 10])       # pixel 1, block 0


def test_pack_blocked_refuses_wrong_arrays():
    layout = input_layout(CONFIGS["8x8"], 1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"x must be a int8 array of shape \(1, 3, 2, 2\)"):
        pack_blocked(np.zeros((1, 3, 2, 2), dtype=np.int16), layout)
    with pytest.raises(ValueError, match="expected 32 bytes, got 31"):
        unpack_blocked(np.zeros(31, dtype=np.uint8), layout)
    with pytest.raises(ValueError, match="do not fit an element"):
        BlockedLayout(1, 8, 1, 1, 8, "int32", 16)


def expand_groups_by_definition(w, groups, out_range, in_range):
    """Dense weights from the definition, one entry at a time."""
    out_channels, in_per_group, kh, kw = w.shape
    out_per_group = out_channels // groups
    dense = np.zeros((len(out_range), len(in_range), kh, kw), dtype=np.int8)
    for o, co in enumerate(out_range):
        for i, ci in enumerate(in_range):
            if co < out_channels and ci < groups * in_per_group \
                    and co // out_per_group == ci // in_per_group:
                dense[o, i] = w[co, ci % in_per_group]
    return dense


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 5), in_per_group=st.integers(1, 4),
       out_per_group=st.integers(1, 4), kh=st.integers(1, 3), kw=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_expand_groups_matches_definition(groups, in_per_group, out_per_group, kh, kw, seed):
    w = random_int(np.random.default_rng(seed), np.int8,
                   (groups * out_per_group, in_per_group, kh, kw))
    out_range = range(1, groups * out_per_group + 3)     # includes padding channels
    in_range = range(0, groups * in_per_group + 2)
    np.testing.assert_array_equal(expand_groups(w, groups, out_range, in_range),
                                  expand_groups_by_definition(w, groups, out_range, in_range))


@settings(max_examples=60, deadline=None)
@given(name=config_names, groups=st.integers(1, 4), in_per_group=st.integers(1, 7),
       out_per_group=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_weights_round_trip(name, groups, in_per_group, out_per_group, kh, kw, seed, data):
    cfg = CONFIGS[name]
    rows, cols = cfg.rows, cfg.cols
    w = random_int(np.random.default_rng(seed), np.int8,
                   (groups * out_per_group, in_per_group, kh, kw))
    co_blocks = -(-groups * out_per_group // cols)
    ci_blocks = -(-groups * in_per_group // rows)
    cob_start = data.draw(st.integers(0, co_blocks - 1))
    cob_stop = data.draw(st.integers(cob_start + 1, co_blocks))
    cib_start = data.draw(st.integers(0, ci_blocks - 1))
    cib_stop = data.draw(st.integers(cib_start + 1, ci_blocks))
    packed = pack_weights(cfg, w, groups, range(cob_start, cob_stop), range(cib_start, cib_stop))
    elements = (cob_stop - cob_start) * (cib_stop - cib_start) * kh * kw
    assert packed.size == elements * cfg.w_elem_words * cfg.bus_bytes
    dense = unpack_weights(cfg, packed, cob_stop - cob_start, cib_stop - cib_start, kh, kw)
    expected = expand_groups_by_definition(w, groups, range(cob_start * cols, cob_stop * cols),
                                           range(cib_start * rows, cib_stop * rows))
    np.testing.assert_array_equal(dense, expected)


def test_weight_element_placement():
    """Byte r*C + c of element ((cob*CI + cib)*KH + kh)*KW + kw; padding bytes zero."""
    cfg = CONFIGS["3x5_bus32"]                     # R*C = 15 bytes in 4 words
    rng = np.random.default_rng(7)
    w = random_int(rng, np.int8, (7, 4, 2, 3))    # 2 output blocks, 2 input blocks
    data = pack_weights(cfg, w, 1, range(0, 2), range(0, 2))
    elem = cfg.w_elem_words * cfg.bus_bytes
    assert elem == 16
    for co, ci, kh, kw in np.ndindex(w.shape):
        cob, c, cib, r = co // 5, co % 5, ci // 3, ci % 3
        index = ((cob * 2 + cib) * 2 + kh) * 3 + kw
        assert data[index * elem + r * 5 + c].view(np.int8) == w[co, ci, kh, kw]
    assert not data.reshape(-1, elem)[:, 15].any()


@settings(max_examples=40, deadline=None)
@given(name=config_names, channels=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_params_round_trip(name, channels, seed):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    bias = random_int(rng, np.int32, channels)
    multiplier = random_int(rng, np.int32, channels)
    shift = rng.integers(0, 31, channels, endpoint=True).astype(np.int32)
    blocks = -(-channels // cfg.cols)
    data = pack_params(cfg, bias, multiplier, shift)
    assert data.size == blocks * cfg.p_elem_words * cfg.bus_bytes
    padding = blocks * cfg.cols - channels
    for packed, original in zip(unpack_params(cfg, data, blocks), (bias, multiplier, shift)):
        np.testing.assert_array_equal(packed, np.concatenate([original, np.zeros(padding)]))


def test_params_element_placement():
    """C = 3, B = 16: bias[3], multiplier[3], shift[3] as int32, then 12 zero bytes."""
    cfg = CONFIGS["12x3_bus128"]
    data = pack_params(cfg, np.array([1, 2, 3, 4]), np.array([5, 6, 7, 8]),
                       np.array([9, 10, 11, 12]))
    words = data.view("<i4").reshape(2, 12)
    np.testing.assert_array_equal(words[0], [1, 2, 3, 5, 6, 7, 9, 10, 11, 0, 0, 0])
    np.testing.assert_array_equal(words[1], [4, 0, 0, 8, 0, 0, 12, 0, 0, 0, 0, 0])
