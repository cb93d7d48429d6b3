"""Frame sources for the streaming engine: files, folders, webcam, screen, synthetic world.

Every source yields HxWx3 uint8 RGB frames through read() (None at the end) or
iteration. `live` sources (webcam, screen) deliver frames in real time whether or
not anyone reads them, so the engine keeps only the newest (see pacing.LatestFrame).
Optional packages (OpenCV, mss) are imported only by the source that needs them,
and a missing package or device raises DeviceUnavailable with a one-line fix.
"""

import importlib
import os
from pathlib import Path

import numpy as np

from lsd.io import read_frames, video_info

SYNTHETIC_FPS = 30.0
DEFAULT_STYLE = "ink_wash"


class DeviceUnavailable(RuntimeError):
    """A webcam, screen, window or virtual camera that cannot be used here."""


def import_optional(module: str, hint: str):
    """The module, or DeviceUnavailable(hint) when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DeviceUnavailable(hint) from e


class Source:
    """Base: iteration and `with` on top of read() and close()."""

    live = False
    fps: float | None = None
    name = "source"
    prompt: str | None = None  # what the source's frames are meant to become, if it knows

    def read(self) -> np.ndarray | None:
        """The next frame, or None when the source has ended."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _PathSource(Source):
    """A video file or image folder, read lazily through lsd.io.read_frames."""

    def __init__(self, path: str | os.PathLike, loop: bool = False, max_frames: int | None = None):
        self.path = Path(path)
        self.name = str(path)
        self.loop = loop
        self.max_frames = max_frames
        # video_info opens the file now, so a missing or corrupt one fails here, not mid-stream
        info = video_info(self.path)
        self.fps, self.declared = info["fps"], info["frames"]  # declared: 0 if it won't say
        self._frames = read_frames(self.path, max_frames=max_frames, loop=loop)
        self.read_count = 0

    def read(self) -> np.ndarray | None:
        frame = next(self._frames, None)
        self.read_count += frame is not None
        return frame

    def shortfall(self) -> str | None:
        """Said when the source ended before the frames its file declares (a truncated
        file): the frames read and declared."""
        wanted = min(self.declared, self.max_frames or self.declared)
        if self.loop or not self.declared or self.read_count >= wanted:
            return None
        return (f"{self.name} declares {self.declared} frames but only {self.read_count} "
                f"could be read (a truncated file?)")

    def close(self) -> None:
        self._frames.close()  # releases the open container at once


class VideoFileSource(_PathSource):
    """A video file. Missing: FileNotFoundError; unreadable: lsd.io.VideoError, both at construction."""

    def __init__(self, path: str | os.PathLike, loop: bool = False, max_frames: int | None = None):
        if Path(path).is_dir():
            raise ValueError(f"{path} is a folder, not a video file (use ImageFolderSource)")
        super().__init__(path, loop, max_frames)


class ImageFolderSource(_PathSource):
    """Images of one size in natural order (frame2 before frame10).

    Missing folder: FileNotFoundError; no images in it: lsd.io.VideoError (a ValueError).
    """

    def __init__(self, path: str | os.PathLike, loop: bool = False, max_frames: int | None = None):
        if not Path(path).exists():
            raise FileNotFoundError(f"image folder not found: {path}")
        if not Path(path).is_dir():
            raise ValueError(f"{path} is a file, not an image folder (use VideoFileSource)")
        super().__init__(path, loop, max_frames)


class WebcamSource(Source):
    """A camera through OpenCV. The first frame is read at construction, so a camera
    that opens but delivers nothing fails here rather than in the engine."""

    live = True

    def __init__(self, index: int = 0, width: int | None = None, height: int | None = None):
        cv2 = import_optional("cv2", "webcam needs OpenCV: pip install 'lsd[camera]'")
        self.name = f"webcam:{index}"
        self._capture = cv2.VideoCapture(index)
        if width:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if not self._capture.isOpened():
            self._capture.release()
            raise DeviceUnavailable(f"webcam {index} could not be opened (no camera device?)")
        self._first = self._grab()
        if self._first is None:
            self._capture.release()
            raise DeviceUnavailable(f"webcam {index} opened but delivered no frame")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or None  # 0 when the driver won't say

    def _grab(self) -> np.ndarray | None:
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            return None
        return np.ascontiguousarray(bgr[..., 2::-1])  # OpenCV is BGR

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._grab()  # None once unplugged or closed: the stream ends

    def close(self) -> None:
        self._capture.release()


class ScreenSource(Source):
    """One monitor grabbed with mss (1 = the first monitor, 0 = all of them together)."""

    live = True

    def __init__(self, monitor: int = 1):
        mss = import_optional("mss", "screen capture needs mss: pip install 'lsd[screen]'")
        self.name = f"screen:{monitor}"
        try:
            # mss >= 10 names the class MSS; mss 9 only has the mss() factory
            self._grabber = (getattr(mss, "MSS", None) or mss.mss)()
            monitors = self._grabber.monitors
        except mss.exception.ScreenShotError as e:
            raise DeviceUnavailable(f"screen capture failed (no display?): {e}") from e
        if not 0 <= monitor < len(monitors):
            self._grabber.close()
            raise DeviceUnavailable(f"no monitor {monitor}: this display has {len(monitors) - 1}")
        self._monitor = monitors[monitor]

    def read(self) -> np.ndarray | None:
        shot = np.asarray(self._grabber.grab(self._monitor))  # HxWx4 BGRA
        return np.ascontiguousarray(shot[..., 2::-1])

    def close(self) -> None:
        self._grabber.close()


class SyntheticSource(Source):
    """The synthetic world of lsd.data, endless unless `frames` is given.

    `last_sample` is the Sample behind the frame read last, so an evaluator can
    compare the engine's output with its target.
    """

    fps = SYNTHETIC_FPS

    def __init__(self, seed: int = 0, style: str = DEFAULT_STYLE, size: int = 128,
                 frames: int | None = None):
        from lsd.data import paired_stream  # lazy: the world is not needed for camera use
        from lsd.data.pictures import preload_images, split_of
        from lsd.styles import get_style, style_names

        if style not in style_names():
            raise ValueError(f"unknown style {style!r}; known styles: {', '.join(style_names())}")
        self.name = f"synthetic:{seed}:{style}"
        self.prompt = get_style(style).prompts[0]  # the style its targets are rendered in
        self.seed, self.style, self.size = seed, style, size
        self.last_sample = None
        preload_images(split_of(seed))  # ~1 s; memory is then flat from the first frame
        self._samples = paired_stream(seed, style, size=size, frames=frames)

    def read(self) -> np.ndarray | None:
        self.last_sample = next(self._samples, None)
        return None if self.last_sample is None else self.last_sample.input


def _int_arg(spec: str, text: str, default: int) -> int:
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad source {spec!r}: {text!r} is not an integer") from None


def open_source(spec: str, loop: bool = False, max_frames: int | None = None,
                size: int = 128) -> Source:
    """A source from a command-line spec.

    "webcam[:INDEX]", "screen[:MONITOR]", "synthetic[:SEED[:STYLE]]", or else a path:
    a folder of images or a video file (write ./webcam for a file named webcam).
    loop applies to files and folders; max_frames to files, folders and the synthetic
    world (live sources run until the engine stops); size to the synthetic world.
    """
    kind, _, arg = spec.partition(":")
    if kind == "webcam":
        return WebcamSource(_int_arg(spec, arg, 0))
    if kind == "screen":
        return ScreenSource(_int_arg(spec, arg, 1))
    if kind == "synthetic":
        seed, _, style = arg.partition(":")
        return SyntheticSource(_int_arg(spec, seed, 0), style or DEFAULT_STYLE, size, max_frames)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, loop, max_frames)
    if path.exists():
        return VideoFileSource(path, loop, max_frames)
    raise FileNotFoundError(
        f"no such file or folder: {spec} (sources: a path, webcam[:N], screen[:N], "
        "synthetic[:SEED[:STYLE]])"
    )
