"""Tests for lsd.stream sources, sinks and pacing: real files, fake devices, no hardware needed."""

import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from lsd.data import paired_stream
from lsd.io import VideoError, VideoWriter, read_frames
from lsd.stream import sources
from lsd.stream.pacing import LatestFrame
from lsd.stream.sinks import (
    Mp4Sink,
    SideBySideSink,
    VirtualCameraSink,
    WindowSink,
    open_sink,
    overlay_text,
)
from lsd.stream.sources import (
    DeviceUnavailable,
    ImageFolderSource,
    ScreenSource,
    SyntheticSource,
    VideoFileSource,
    WebcamSource,
    open_source,
)

H, W = 48, 64
FPS = 24.0
CLIP_FRAMES = 8
SMOOTH_PERIOD = 128  # px per cycle: smooth enough that yuv420p keeps it nearly intact
H264_MEAN_ABS_DIFF = 3.0  # ~1.8 measured; consecutive frames differ by ~19
GAP = 2  # side_by_side's default gap


def smooth_frame(t: int, h: int = H, w: int = W) -> np.ndarray:
    """Slow sinusoids moving with t: content that H.264 keeps nearly intact."""
    ys, xs = np.mgrid[0:h, 0:w] / SMOOTH_PERIOD
    channels = [128 + 60 * np.sin(2 * np.pi * (xs + 0.5 * ys) + p + 0.5 * t) for p in (0, 2, 4)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def gray(value: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture
def clip(tmp_path):
    """An mp4 of CLIP_FRAMES smooth frames, and the frames that went in."""
    frames = [smooth_frame(t) for t in range(CLIP_FRAMES)]
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, FPS) as writer:
        for frame in frames:
            writer.write(frame)
    return path, frames


# -----------------------------------------------------------------------------
# file and folder sources


def test_video_file_source_reads_the_frames(clip):
    path, frames = clip
    with VideoFileSource(path) as source:
        got = list(source)
        assert source.read() is None  # stays ended
    assert not source.live and source.fps == pytest.approx(FPS)
    assert len(got) == CLIP_FRAMES
    assert all(g.shape == (H, W, 3) and g.dtype == np.uint8 for g in got)
    assert max(mean_abs_diff(g, f) for g, f in zip(got, frames)) < H264_MEAN_ABS_DIFF


def test_video_file_source_loops_up_to_max_frames(clip):
    path, frames = clip
    total = 2 * CLIP_FRAMES + 3
    got = list(VideoFileSource(path, loop=True, max_frames=total))
    assert len(got) == total
    assert mean_abs_diff(got[CLIP_FRAMES], frames[0]) < H264_MEAN_ABS_DIFF  # restarted


def test_video_file_source_fails_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError):
        VideoFileSource(tmp_path / "missing.mp4")
    corrupt = tmp_path / "x.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError):
        VideoFileSource(corrupt)


def test_image_folder_source_reads_in_natural_order(tmp_path):
    for n in (10, 2, 1):  # written out of order; frame10 must come last
        Image.fromarray(gray(n)).save(tmp_path / f"frame{n}.png")
    with ImageFolderSource(tmp_path) as source:
        got = list(source)
    assert [int(g[0, 0, 0]) for g in got] == [1, 2, 10]
    assert all(np.array_equal(g, gray(int(g[0, 0, 0]))) for g in got)  # PNG is lossless


def test_image_folder_source_rejects_empty_and_missing_folders(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(FileNotFoundError):
        ImageFolderSource(tmp_path / "missing")


# -----------------------------------------------------------------------------
# synthetic source


def test_synthetic_source_matches_paired_stream():
    source = SyntheticSource(seed=3, style="sepia", size=32, frames=4)
    assert source.fps == 30 and not source.live
    for sample in paired_stream(3, "sepia", size=32, frames=4):
        frame = source.read()
        assert np.array_equal(frame, sample.input)
        assert np.array_equal(source.last_sample.target, sample.target)
        assert source.last_sample.t == sample.t
    assert source.read() is None


def test_synthetic_source_loads_its_split_up_front():
    """An endless synthetic stream holds the same memory at frame 10,000 as at frame 1: every
    image its scenes can draw is cached before the first frame, so nothing loads later."""
    from lsd.data.pictures import image_names, load_image
    from lsd.styles import get_style

    load_image.cache_clear()
    source = SyntheticSource(seed=3, style="sepia", size=32, frames=4)
    assert source.prompt == get_style("sepia").prompts[0]
    assert load_image.cache_info().currsize == len(image_names("train"))
    misses = load_image.cache_info().misses
    for _ in source:
        pass
    assert load_image.cache_info().misses == misses


def test_synthetic_source_rejects_unknown_style():
    with pytest.raises(ValueError, match="unknown style"):
        SyntheticSource(style="no_such_style")


# -----------------------------------------------------------------------------
# open_source


def test_open_source_synthetic_specs():
    plain = open_source("synthetic", size=16, max_frames=2)
    assert (plain.seed, plain.style, plain.size) == (0, "ink_wash", 16)
    assert len(list(plain)) == 2
    seeded = open_source("synthetic:7")
    assert (seeded.seed, seeded.style) == (7, "ink_wash")
    styled = open_source("synthetic:7:thermal")
    assert (styled.seed, styled.style) == (7, "thermal")


def test_open_source_device_specs(monkeypatch):
    # record what would be opened instead of touching real devices
    monkeypatch.setattr(sources, "WebcamSource", lambda index: ("webcam", index))
    monkeypatch.setattr(sources, "ScreenSource", lambda monitor: ("screen", monitor))
    assert open_source("webcam") == ("webcam", 0)
    assert open_source("webcam:2") == ("webcam", 2)
    assert open_source("screen") == ("screen", 1)
    assert open_source("screen:0") == ("screen", 0)
    for bad in ("webcam:x", "screen:one", "synthetic:seed"):
        with pytest.raises(ValueError, match="not an integer"):
            open_source(bad)


def test_open_source_paths(clip, tmp_path):
    path, _ = clip
    assert isinstance(open_source(str(path)), VideoFileSource)
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(gray(5)).save(folder / "0.png")
    source = open_source(str(folder), loop=True, max_frames=3)
    assert isinstance(source, ImageFolderSource) and len(list(source)) == 3
    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        open_source(str(tmp_path / "nowhere.mp4"))


# -----------------------------------------------------------------------------
# devices: none exist on the test machine, fakes stand in for the packages


def expect_unavailable(open_device, what: str) -> DeviceUnavailable:
    """The DeviceUnavailable that open_device raises; skips if a real device opened."""
    try:
        device = open_device()
    except DeviceUnavailable as e:
        assert "\n" not in str(e)  # a one-line message for the user
        return e
    device.close()
    pytest.skip(f"a real {what} is available here")


@pytest.mark.parametrize("open_device, what, message", [
    (lambda: WebcamSource(0), "webcam", "webcam 0"),
    (ScreenSource, "screen", "screen"),
    (lambda: VirtualCameraSink(64, 48), "virtual camera", "virtual camera"),
])
def test_real_devices_are_unavailable_here(open_device, what, message):
    assert message in str(expect_unavailable(open_device, what))


def test_window_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is Linux-only")
    with pytest.raises(DeviceUnavailable, match="display"):
        WindowSink()


def test_window_needs_opencv_with_gui(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    if "GUI:                           NONE" not in cv2.getBuildInformation():
        pytest.skip("OpenCV here has a GUI; opening it on a fake display could exit the process")
    monkeypatch.setenv("DISPLAY", ":99")
    with pytest.raises(DeviceUnavailable, match="GUI"):
        WindowSink()


@pytest.mark.parametrize("module, open_device, hint", [
    ("cv2", lambda: WebcamSource(0), "lsd[camera]"),
    ("mss", ScreenSource, "lsd[screen]"),
    ("pyvirtualcam", lambda: VirtualCameraSink(64, 48), "lsd[vcam]"),
])
def test_missing_package_names_the_extra(monkeypatch, module, open_device, hint):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(DeviceUnavailable, match=hint.replace("[", r"\[").replace("]", r"\]")):
        open_device()


def test_virtual_camera_without_size_opens_on_first_frame():
    sink = VirtualCameraSink()  # needs no device yet: the size comes with the first frame
    try:
        sink.write(gray(0))
    except DeviceUnavailable as e:
        assert "virtual camera" in str(e)
    else:
        sink.close()
        pytest.skip("a real virtual camera is available here")


def fake_cv2(frames, opened=True, fps=30.0):
    """A stand-in cv2 whose VideoCapture returns the given BGR frames, then fails."""

    class Capture:
        def __init__(self, index):
            self.frames = list(frames)
            self.released = False

        def set(self, prop, value):
            return True

        def get(self, prop):
            return fps

        def isOpened(self):
            return opened

        def read(self):
            if not self.frames:
                return False, None
            return True, self.frames.pop(0)

        def release(self):
            self.released = True

    return types.SimpleNamespace(VideoCapture=Capture, CAP_PROP_FRAME_WIDTH=3,
                                 CAP_PROP_FRAME_HEIGHT=4, CAP_PROP_FPS=5)


def test_webcam_converts_bgr_to_rgb(monkeypatch):
    blue_in_bgr = np.zeros((4, 6, 3), np.uint8)
    blue_in_bgr[..., 0] = 255
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2([blue_in_bgr, blue_in_bgr]))
    with WebcamSource(1, width=6, height=4) as camera:
        assert camera.live and camera.fps == 30.0 and camera.name == "webcam:1"
        got = list(camera)
    assert len(got) == 2  # the frame read at construction is not lost
    assert all(np.array_equal(g[0, 0], [0, 0, 255]) for g in got)


def test_webcam_that_fails_to_open_or_deliver(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2([], opened=False))
    with pytest.raises(DeviceUnavailable, match="could not be opened"):
        WebcamSource(3)
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2([]))
    with pytest.raises(DeviceUnavailable, match="no frame"):
        WebcamSource(3)


def fake_mss(bgra: np.ndarray):
    """A stand-in mss with one monitor that always shows `bgra`."""

    class MSS:
        monitors = [{"top": 0, "left": 0, "width": 6, "height": 4}] * 2  # [all, first]

        def grab(self, monitor):
            return bgra

        def close(self):
            pass

    error = type("ScreenShotError", (Exception,), {})
    return types.SimpleNamespace(MSS=MSS, exception=types.SimpleNamespace(ScreenShotError=error))


def test_screen_converts_bgra_to_rgb(monkeypatch):
    red_in_bgra = np.zeros((4, 6, 4), np.uint8)
    red_in_bgra[..., 2] = red_in_bgra[..., 3] = 255
    monkeypatch.setitem(sys.modules, "mss", fake_mss(red_in_bgra))
    with ScreenSource(1) as screen:
        frame = screen.read()
    assert screen.live and frame.shape == (4, 6, 3) and frame.flags.c_contiguous
    assert np.array_equal(frame[0, 0], [255, 0, 0])
    with pytest.raises(DeviceUnavailable, match="no monitor 2"):
        ScreenSource(2)


# -----------------------------------------------------------------------------
# pacing


def frame_number(frame: np.ndarray) -> int:
    return int.from_bytes(frame[0, 0].tobytes(), "big")


class NumberedCamera:
    """A fake live camera: frames 1, 2, 3, ... at `fps`, the number in the first pixel."""

    live = True
    name = "numbered camera"

    def __init__(self, fps: float = 200.0, frames: int | None = None, fail_after: int | None = None):
        self.interval = 1.0 / fps
        self.frames = frames
        self.fail_after = fail_after
        self.count = 0  # frames delivered so far = the newest frame's number
        self.closed = False
        self._due = time.monotonic()

    def read(self):
        if self.closed or self.count == self.frames:
            return None
        if self.count == self.fail_after:
            raise RuntimeError("camera unplugged")
        self._due = max(self._due + self.interval, time.monotonic())  # like a camera: no catch-up burst
        time.sleep(max(0.0, self._due - time.monotonic()))
        self.count += 1
        return np.frombuffer(self.count.to_bytes(3, "big"), np.uint8).reshape(1, 1, 3).copy()

    def close(self):
        self.closed = True


def test_latest_frame_keeps_only_the_newest():
    camera = NumberedCamera(fps=200)  # a frame every 5 ms
    seen, lags = [], []
    with LatestFrame(camera) as latest:
        for _ in range(15):
            n = frame_number(latest.get(timeout=2))
            lags.append(camera.count - n)  # frames the camera delivered after this one
            seen.append(n)
            time.sleep(0.02)  # a model slower than the camera
    assert camera.closed
    assert all(a < b for a, b in zip(seen, seen[1:]))
    assert latest.dropped > 0
    assert latest.captured - latest.dropped - len(seen) in (0, 1)  # at most one still pending
    # the newest frame, not a queued one: a queue would fall ~3 frames further behind per get
    assert max(lags) <= 2, lags


def test_latest_frame_ends_with_the_last_frame():
    with LatestFrame(NumberedCamera(fps=1000, frames=5)) as latest:
        numbers = [frame_number(f) for f in latest]
        assert latest.get(timeout=1) is None
    assert numbers[-1] == 5 and numbers == sorted(set(numbers))


def test_latest_frame_times_out_without_a_new_frame():
    with LatestFrame(NumberedCamera(fps=2)) as latest:  # first frame after 0.5 s
        with pytest.raises(TimeoutError):
            latest.get(timeout=0.05)


def test_latest_frame_reraises_the_capture_error():
    with LatestFrame(NumberedCamera(fps=1000, fail_after=2)) as latest:
        with pytest.raises(RuntimeError, match="unplugged"):
            for _ in range(10):
                latest.get(timeout=2)


# -----------------------------------------------------------------------------
# sinks


def test_mp4_sink_writes_the_output_frames(tmp_path):
    frames = [smooth_frame(t) for t in range(5)]
    with Mp4Sink(tmp_path / "out.mp4", fps=FPS) as sink:
        for frame in frames:
            sink.write(frame, input=gray(0), info={"ms": 5.0})
    got = list(read_frames(tmp_path / "out.mp4"))
    assert len(got) == 5 and got[0].shape == (H, W, 3)
    assert max(mean_abs_diff(g, f) for g, f in zip(got, frames)) < H264_MEAN_ABS_DIFF


def test_side_by_side_sink_layout_and_overlay(tmp_path):
    out_h, out_w = 45, 61  # odd: VideoWriter pads to even by repeating the edge
    big_input = gray(200, 90, 66)  # scaled to the output's height: 45 x 33
    with SideBySideSink(tmp_path / "sbs.mp4", fps=FPS) as sink:
        sink.write(gray(128, out_h, out_w), input=big_input)
        sink.write(gray(128, out_h, out_w), input=big_input, info={"prompt": "a cat", "ms": 12.3})
    plain, labelled = list(read_frames(tmp_path / "sbs.mp4"))
    assert plain.shape == (out_h + 1, 33 + GAP + out_w, 3)
    output_corner = (slice(0, 8), slice(33 + GAP, 33 + GAP + 20))
    assert abs(float(plain[output_corner].mean()) - 128) < 5  # no info: no overlay
    assert float(labelled[output_corner].mean()) < 90  # the overlay's dark box
    assert abs(float(labelled[0:8, 0:20].mean()) - 200) < 5  # the input panel is left alone


def test_overlay_text():
    assert overlay_text({"prompt": "a cat", "ms": 12.3}) == "a cat | 12 ms"
    assert overlay_text({"ms": 7}) == "7 ms"
    assert overlay_text(None) == ""
    assert len(overlay_text({"prompt": "x" * 100})) <= 32


def test_side_by_side_sink_needs_the_input(tmp_path):
    with pytest.raises(ValueError, match="input"):
        with SideBySideSink(tmp_path / "sbs.mp4") as sink:
            sink.write(gray(0))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sink_class", [Mp4Sink, SideBySideSink])
def test_sink_aborted_by_an_exception_leaves_no_file(tmp_path, sink_class):
    with pytest.raises(RuntimeError, match="model crashed"):
        with sink_class(tmp_path / "out.mp4") as sink:
            sink.write(gray(50), input=gray(60))
            raise RuntimeError("model crashed")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temp file


def test_open_sink(tmp_path, monkeypatch):
    assert open_sink(None) == []
    [plain] = open_sink(tmp_path / "a.mp4")
    [sbs] = open_sink(tmp_path / "b.mp4", side_by_side=True, fps=12)
    assert type(plain) is Mp4Sink and type(sbs) is SideBySideSink
    for sink in (plain, sbs):
        sink.abort()
    with pytest.raises(ValueError, match="path"):
        open_sink(None, side_by_side=True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(DeviceUnavailable):
            open_sink(tmp_path / "c.mp4", window=True)
    assert list(tmp_path.iterdir()) == []
