"""Video input/output: read a video file or an image folder, write H.264 mp4.

Frames at the edges are HxWx3 uint8 RGB numpy arrays. Every way a source can be
unreadable surfaces as VideoError (or FileNotFoundError for a missing path), never
as a raw PyAV or Pillow exception, so callers need one except clause.
"""

import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageFont, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_FPS = 25.0  # writer default; also reported for image folders, which carry no timing

CODEC = "libx264"
PIX_FMT = "yuv420p"  # what every player and browser decodes; needs even width and height
DEFAULT_CRF = 18  # visually lossless for x264; 0 is lossless in YUV (RGB still loses chroma detail)
MAX_CRF = 51  # x264's worst quality
FPS_MAX_DENOMINATOR = 1001  # keeps NTSC rates like 30000/1001 exact
MP4_OPTIONS = {"movflags": "+faststart"}  # index at the front: plays while still downloading

LABEL_MIN_FONT_PX = 11  # legible on a 128 px panel
LABEL_FONT_DIVISOR = 12  # bigger panels get font size height / 12
LABEL_PAD = 3  # px between the box edge and the text
LABEL_BOX = (0, 0, 0)
LABEL_TEXT = (255, 255, 255)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as an 8-bit frame (clipped, rounded)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class VideoError(ValueError):
    """A video file or image folder that exists but cannot be read."""


# -----------------------------------------------------------------------------
# frames


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    """HxWx3 uint8; greyscale (HxW or HxWx1) is replicated to three channels."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        # no guessing between 0-1 and 0-255 floats: a wrong guess writes a black video
        raise ValueError(f"expected a uint8 frame, got dtype {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ValueError(f"expected an HxW or HxWx3 frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame)


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Replicate the last row/column so yuv420p's 2x2 chroma blocks tile the frame."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# -----------------------------------------------------------------------------
# reading


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")


def _natural_key(name: str) -> list[str | int]:
    """Sort key where digit runs compare as numbers: frame2 < frame10."""
    # re.split with a group alternates text, digits, text, ...: odd indices are digit runs
    parts = re.split(r"(\d+)", name)
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(parts)]


def visible(folder: Path) -> Iterator[Path]:
    """The folder's entries less tools' leftovers, which are never a frame or a clip: hidden
    ones (a part-written frame, .DS_Store, Jupyter's .ipynb_checkpoints) and a Mac zip's
    __MACOSX."""
    return (p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def list_images(folder: Path) -> list[Path]:
    """The folder's images (not tools' leftovers: visible), in natural order."""
    images = [p for p in visible(folder) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda p: (_natural_key(p.name), p.name))


def _sideways(img: Image.Image) -> bool:
    """A camera's portrait shot stored on its side, the turn in its EXIF orientation."""
    return img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            ImageOps.exif_transpose(img, in_place=True)  # upright, as viewers show it
            if img.mode == "F":  # no guessing between 0-1 and 0-255 floats
                raise VideoError(f"image {path} holds floating-point pixels: save it as 8 or "
                                 f"16 bits")
            if img.mode == "I" or img.mode.startswith("I;16"):
                # 16-bit greyscale, as depth and other per-frame tools save it: Pillow's
                # convert("RGB") clips it at 255, which turns nearly all of it white
                grey = np.asarray(img, dtype=np.float32) / 257.0
                return _as_rgb(np.clip(grey + 0.5, 0, 255).astype(np.uint8))
            if "A" in img.getbands() or "transparency" in img.info:
                # a cut-out (background removal): what its clear parts hide is not part of
                # the picture and tools leave anything there, so they read as black
                rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
                return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)
            return np.array(img.convert("RGB"))
    except OSError as e:  # Pillow's UnidentifiedImageError and truncated data are OSErrors
        raise VideoError(f"cannot read image {path}: {e}") from e


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoError(f"cannot open video {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"no video stream in {path}")
    return container


def video_info(path: str | os.PathLike) -> dict:
    """{width, height, fps, frames} of a video file or an image folder.

    width and height are those of the frames read_frames yields: upright, a clip's display
    turn applied (a phone's portrait clip reads as portrait, as players show it).
    frames is the count the container declares, 0 when it does not say. fps falls
    back to DEFAULT_FPS (25.0) when unknown, and is always DEFAULT_FPS for an image
    folder, so a reader's fps can be handed straight to a writer.
    """
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise VideoError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder: {path}")
        try:
            with Image.open(images[0]) as img:  # header only: no need to decode pixels
                width, height = img.size[::-1] if _sideways(img) else img.size
        except OSError as e:
            raise VideoError(f"cannot read image {images[0]}: {e}") from e
        return {"width": width, "height": height, "fps": DEFAULT_FPS, "frames": len(images)}
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        width, height = stream.codec_context.width, stream.codec_context.height
        try:  # the turn lives in the frames' side data, so read the first frame's
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode {path}: {e}") from e
        if first is not None and _quarter_turns(first) % 2:
            width, height = height, width
        return {
            "width": width,
            "height": height,
            "fps": float(rate) if rate else DEFAULT_FPS,
            "frames": stream.frames,
        }


def count_frames(path: str | os.PathLike) -> int:
    """Frames in a video file by its packets, without decoding them: for containers whose
    header does not say (mkv, webm), where video_info's frames is 0."""
    with _open_video(Path(path)) as container:
        try:
            return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
        except av.FFmpegError as e:
            raise VideoError(f"cannot read {path}: {e}") from e


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show a frame upright, as ffmpeg's players turn
    it: a phone's portrait clip is stored on its side, the turn in its display matrix."""
    return round(frame.rotation / 90) % 4


def _upright(frame: av.VideoFrame) -> np.ndarray:
    pixels = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def _video_pass(path: Path) -> Iterator[np.ndarray]:
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # decode on all cores; file reading has no latency budget
        try:
            for frame in container.decode(stream):
                yield _upright(frame)
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode {path}: {e}") from e


def _image_pass(folder: Path) -> Iterator[np.ndarray]:
    size = None
    for p in list_images(folder):
        frame = _read_image(p)
        size = size or frame.shape
        if frame.shape != size:
            got, first = f"{frame.shape[1]}x{frame.shape[0]}", f"{size[1]}x{size[0]}"
            raise VideoError(f"image {p} is {got}, the first was {first}")
        yield frame


def _frames(
    path: Path, one_pass: Callable[[Path], Iterator[np.ndarray]], max_frames: int | None, loop: bool
) -> Iterator[np.ndarray]:
    count = 0
    while max_frames is None or count < max_frames:
        fresh = 0
        with closing(one_pass(path)) as frames:  # closing: release the file as soon as we stop
            for frame in frames:
                yield frame
                count, fresh = count + 1, fresh + 1
                if count == max_frames:
                    return
        if fresh == 0:  # also stops loop=True from spinning forever on an empty source
            raise VideoError(f"no frames could be decoded from {path}")
        if not loop:
            return


def read_frames(
    path: str | os.PathLike, max_frames: int | None = None, loop: bool = False
) -> Iterator[np.ndarray]:
    """Yield HxWx3 uint8 RGB frames from a video file or a folder of images, upright
    (video_info).

    Images are read in natural order (frame2 before frame10); they must all have one
    size. loop=True restarts from the first frame forever, or until max_frames.
    A missing or unreadable source fails here, at the call, not mid-iteration.
    """
    path = Path(path)
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    video_info(path)  # raises FileNotFoundError / VideoError now
    return _frames(path, _image_pass if path.is_dir() else _video_pass, max_frames, loop)


# -----------------------------------------------------------------------------
# writing


class ClosedOnSuccess:
    """`with` support for writers: close() on a clean exit, abort() after an exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_atomic(path: Path, write: Callable[[Any], object]) -> None:
    """`write(file)` into a temporary file beside `path`, synced, then renamed over it: a
    kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_recipe(path: Path, recipe: dict) -> None:
    """How a folder's files were made, as JSON, atomically: a rerun by the same recipe keeps
    them (read_recipe)."""
    write_atomic(path, lambda f: f.write(json.dumps(recipe).encode()))


def read_recipe(path: Path) -> dict | None:
    """The recipe write_recipe wrote at `path`, or None where there is none that reads."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_target(path: Path) -> None:
    """An output path a file may be written to: its folder exists (made if need be) and is
    writable, and the path is a regular file or nothing (not a folder, not a device such as
    /dev/full, which the finished file's rename would replace)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give a file name, e.g. {path / 'out.mp4'}")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file (a device?): give a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot make the folder for {path}: {e.strerror or e}") from e
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write to {path.parent}: permission denied")


class VideoWriter(ClosedOnSuccess):
    """Write frames to an H.264 mp4 (libx264, yuv420p).

    Frames go to a hidden temp file beside the target, renamed into place by a clean
    close(): an interrupted run never leaves a half-written video at the target path,
    and an exception inside `with` deletes the temp file. Odd sizes are padded to
    even by edge replication; every frame must have the first frame's size.
    """

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, crf: int = DEFAULT_CRF):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not 0 <= crf <= MAX_CRF:
            raise ValueError(f"crf must be in [0, {MAX_CRF}], got {crf}")
        self.path = Path(path)
        self.rate = Fraction(fps).limit_denominator(FPS_MAX_DENOMINATOR)
        self.crf = crf
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (height, width) before padding
        self.tmp_path = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        self._container = None
        self._stream = None
        self._closed = False
        check_target(self.path)  # now, not at the first frame or after the last

    def _open(self, height: int, width: int) -> None:
        """Start encoding: needs the first frame, since the stream size is fixed up front."""
        self._container = av.open(str(self.tmp_path), "w", format="mp4", options=MP4_OPTIONS)
        self._stream = self._container.add_stream(CODEC, rate=self.rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = PIX_FMT
        self._stream.options = {"crf": str(self.crf)}

    def write(self, frame: np.ndarray) -> None:
        if self._closed:
            raise ValueError(f"writer for {self.path} is closed")
        frame = _as_rgb(frame)
        size = frame.shape[:2]
        if self.size is None:
            self._open(*size)
            self.size = size
        elif size != self.size:
            got, first = f"{size[1]}x{size[0]}", f"{self.size[1]}x{self.size[0]}"
            raise ValueError(f"frame is {got}, the first was {first}")
        video_frame = av.VideoFrame.from_ndarray(_pad_to_even(frame), format="rgb24")
        video_frame.pts, video_frame.time_base = self.frames, 1 / self.rate
        self._container.mux(self._stream.encode(video_frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to the target path."""
        if self._closed:
            return
        if self._container is None:
            self._closed = True
            raise ValueError(f"no frames written to {self.path}")
        try:
            self._container.mux(self._stream.encode())  # frames the encoder still holds
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        check_target(self.path)  # still a file, or nothing: never renamed over a device
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        """Drop everything written; the target path is left as it was."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass  # already failing, and the file is deleted next anyway
        self.tmp_path.unlink(missing_ok=True)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = DEFAULT_FPS,
    crf: int = DEFAULT_CRF,
) -> int:
    """Write all frames to an mp4; returns how many were written."""
    with VideoWriter(path, fps=fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames


# -----------------------------------------------------------------------------
# side-by-side comparisons


@functools.lru_cache(maxsize=None)
def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font only
        return ImageFont.load_default()


def resize_to_height(frame: np.ndarray, height: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if h == height:
        return frame
    width = max(1, round(w * height / h))
    return np.array(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def _draw_label(panel: np.ndarray, text: str) -> np.ndarray:
    """Text in the top-left corner over a dark box, so it reads on any content."""
    img = Image.fromarray(panel)
    draw = ImageDraw.Draw(img)
    font = _label_font(max(LABEL_MIN_FONT_PX, panel.shape[0] // LABEL_FONT_DIVISOR))
    _, _, right, bottom = draw.textbbox((LABEL_PAD, LABEL_PAD), text, font=font)
    draw.rectangle((0, 0, right + LABEL_PAD, bottom + LABEL_PAD), fill=LABEL_BOX)
    draw.text((LABEL_PAD, LABEL_PAD), text, fill=LABEL_TEXT, font=font)
    return np.array(img)


def side_by_side(
    frames: Sequence[np.ndarray],
    labels: Sequence[str | None] | None = None,
    height: int | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Frames left to right at one height (default: the first frame's), gap black columns apart.

    Greyscale frames become RGB; each label (None or "" for none) is drawn in its
    panel's top-left corner.
    """
    panels = [_as_rgb(f) for f in frames]
    if not panels:
        raise ValueError("side_by_side needs at least one frame")
    if labels is not None and len(labels) != len(panels):
        raise ValueError(f"{len(labels)} labels for {len(panels)} frames")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    height = panels[0].shape[0] if height is None else height
    if height <= 0:
        raise ValueError(f"height must be > 0, got {height}")
    panels = [resize_to_height(p, height) for p in panels]
    if labels is not None:
        panels = [_draw_label(p, label) if label else p for p, label in zip(panels, labels)]
    spacer = np.zeros((height, gap, 3), dtype=np.uint8)
    parts = [panels[0]]
    for p in panels[1:]:
        parts += [spacer, p]
    return np.concatenate(parts, axis=1)
