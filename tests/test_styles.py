"""Styles: registry, value ranges, determinism, flow agreement and memory behaviour."""

import numpy as np
import pytest
from scipy import ndimage

from lsd.data import VAL_SEED_START, World, WorldConfig, paired_stream
from lsd.metrics import decoration_f1, decoration_mask, main_colours, picked_share, warp_error
from lsd.styles import STYLES, get_style, style_names
from lsd.styles.memory import EXPOSURE_RATE, NIGHT, STAR_SPOT, pop_colours, pop_palette
from lsd.styles.ops import gradient_map, luminance
from lsd.styles.picks import OPTIONS, PICKS


def test_registry_has_enough_styles_of_both_kinds():
    assert len(STYLES) >= 10
    assert len(style_names("memory")) >= 3 and len(style_names("frame")) >= 7
    for s in STYLES.values():
        assert len(s.prompts) >= 3 and s.kind in ("frame", "memory")
    assert "水墨画" in get_style("ink_wash").prompts
    with pytest.raises(KeyError, match="known styles"):
        get_style("no_such_style")


@pytest.mark.parametrize("name", list(STYLES))
def test_style_output_is_a_real_change_in_range_and_deterministic(name):
    world = World(12)
    runs = []
    for _ in range(2):
        render = get_style(name).renderer(seed=12)
        runs.append([render(world.frame(t).image, world.frame(t)) for t in range(4)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    out, x = runs[0][-1], world.frame(3).image
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    if name == "long_exposure":  # mostly the frame itself, plus trails where things move
        assert np.abs(out - x).max() > 0.05
    else:
        assert np.abs(out - x).mean() > 0.02  # it actually restyles the frame


@pytest.mark.parametrize("name", style_names("frame"))
def test_frame_style_targets_move_with_the_exact_flow(name):
    """The target's own warp error under the exact flow is near zero away from
    occlusions (dilated by 2 px), and far below that of a flow one pixel off."""
    exact, off = [], []
    prev = None
    for s in paired_stream(11, name, frames=25):
        if prev is not None and not prev.occluded.all():
            mask = ndimage.binary_dilation(prev.occluded, iterations=2)
            exact.append(warp_error(prev.target, s.target, prev.flow, mask))
            off.append(warp_error(prev.target, s.target, prev.flow + 1.0, mask))
        prev = s
    assert np.mean(exact) < 2.5  # on 0-255
    assert np.mean(exact) < 0.3 * np.mean(off)


@pytest.mark.parametrize("name", style_names("frame"))
def test_frame_styles_have_no_per_frame_randomness(name):
    x = World(1).frame(0).image
    render = get_style(name).renderer(seed=0)
    np.testing.assert_array_equal(render(x), render(x))


def _share_near(img: np.ndarray, palette: np.ndarray, within: float = 25.0) -> float:
    """Share of pixels within `within` (0-255 RGB distance) of some palette colour."""
    d = np.linalg.norm(img[..., None, :].astype(float) - palette * 255, axis=-1).min(-1)
    return float((d < within).mean())


@pytest.mark.parametrize("name", style_names())
def test_path_free_styles_render_a_frame_the_same_after_skipping_the_ones_before(name):
    """path_free says a stream may skip frames (far-first training clips rely on it):
    frames 12-13 started at 12 equal frames 12-13 of the stream started at 0. The styles
    that remember their path must fail this, or the flag is too narrow."""
    after = lambda start: [(s.input, s.target) for s in paired_stream(5, name, 48, start, 14 - start)][-2:]
    same = all(np.array_equal(a[1], b[1]) for a, b in zip(after(0), after(12)))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(after(0), after(12)))
    assert same == get_style(name).path_free


def test_pop_art_palette_is_drawn_per_stream_and_kept():
    assert not np.array_equal(pop_palette(1), pop_palette(2))
    targets = [s.target for s in paired_stream(3, "pop_art", frames=150)]
    own = np.concatenate([pop_palette(3), [[0, 0, 0]]])  # + the black outlines
    other = next(s for s in range(100) if not set(map(tuple, pop_palette(s))) & set(map(tuple, pop_palette(3))))
    other = np.concatenate([pop_palette(other), [[0, 0, 0]]])
    for t in (0, 75, 149):  # the same four colours all along, whatever the scene
        assert _share_near(targets[t], own) > 0.6
        assert _share_near(targets[t], other) < 0.5 * _share_near(targets[t], own)


def test_pop_art_targets_are_drawn_in_their_streams_picks():
    """picked_share, the bench's measure of the choice, on the targets themselves: nearly
    every pixel is nearest one of the stream's picks (or the outlines' black), almost none
    another stream's."""
    targets = [s.target for s in paired_stream(3, "pop_art", frames=150)]
    options, own = pop_colours(3)
    other = next(s for s in range(100) if not set(pop_colours(s)[1][:-1]) & set(own[:-1]))
    for t in (0, 75, 149):
        assert picked_share(targets[t], options, own) > 0.9
        assert picked_share(targets[t], options, pop_colours(other)[1]) < 0.1
        # read back as a choice, the four colours it is mostly drawn in are the picks, but
        # for at most one: a band few pixels fall in can lose to the blends at its edges
        assert len(main_colours(targets[t], options, PICKS, range(OPTIONS)) & set(own[:PICKS])) >= PICKS - 1
    assert main_colours(targets[0], options, PICKS, range(OPTIONS)) == set(own[:PICKS])


def test_star_glitter_stars_are_glued_to_the_background():
    samples = list(paired_stream(6, "star_glitter", frames=12))
    for a, b in zip(samples[:-1], samples[1:]):
        # warping frame t+1 back onto t with the exact flow puts the stars where they were
        mask = ndimage.binary_dilation(a.occluded, iterations=2)
        assert warp_error(a.target, b.target, a.flow, mask) < 2.5
    world = World(6)
    render = get_style("star_glitter").renderer(seed=6)
    for t in range(3):
        f = world.frame(t)
        out = render(f.image, f)
    hidden = f.background_visible == 0  # under an opaque sprite no star may show
    assert hidden.any()
    np.testing.assert_allclose(out[hidden], gradient_map(luminance(f.image), NIGHT)[hidden], atol=1e-6)
    assert decoration_f1(samples[0].target, samples[0].target, **STAR_SPOT) == 1.0
    other_stream = next(paired_stream(7, "star_glitter", frames=1)).target
    assert decoration_f1(samples[0].target, other_stream, **STAR_SPOT) < 0.3  # drawn per stream


def test_the_star_measure_finds_the_stars_not_the_pictures_details():
    """The bench's star measure (STAR_SPOT) against the night the stars are drawn over: the
    night alone (the target with none of its stars) has no star spots and scores 0, where
    plain bright spots would have counted the picture's own details."""
    for seed in (VAL_SEED_START + 109, VAL_SEED_START + 1109):
        for s in paired_stream(seed, "star_glitter", frames=2):
            night = np.round(255 * gradient_map(luminance(s.input / 255.0), NIGHT)).astype(np.uint8)
            assert decoration_mask(s.target, **STAR_SPOT).sum() > 30
            assert not decoration_mask(night, **STAR_SPOT).any()
            assert decoration_f1(night, s.target, **STAR_SPOT) == 0.0
            assert decoration_mask(night).sum() > 30  # bright spots alone: the details pass


def test_star_glitter_keeps_screen_positions_across_a_cut():
    world = World(8, WorldConfig(mean_scene_frames=30, min_scene_frames=10))
    render = get_style("star_glitter").renderer(seed=8)
    positions = []
    for t in range(120):
        f = world.frame(t)
        render(f.image, f)
        positions.append(render.stars.screen.copy())
        if f.cut:
            break
    assert f.cut, "expected a cut with a short mean scene length"
    np.testing.assert_allclose(positions[-1], positions[-2], atol=1e-9)  # same place on screen
    assert np.abs(positions[-2] - positions[-3]).max() > 0  # while it moved before the cut


def test_star_glitter_needs_the_scene():
    with pytest.raises(ValueError, match="geometry"):
        get_style("star_glitter").renderer(0)(np.zeros((8, 8, 3), np.float32))


def test_long_exposure_integrates_like_an_exposure():
    render = get_style("long_exposure").renderer(0)
    dark, bright = np.zeros((8, 8, 3), np.float32), np.ones((8, 8, 3), np.float32)
    assert render(dark).max() == 0
    for n in range(1, 6):
        out = render(bright)
        np.testing.assert_allclose(out, 1 - (1 - EXPOSURE_RATE) ** n, rtol=1e-5)
