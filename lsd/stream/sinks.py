"""Output sinks for the streaming engine: mp4 files, a preview window, a virtual camera.

Every sink takes write(output, input=None, info=None), where info may carry "prompt"
(str) and "ms" (float, the frame's processing time). A sink used in `with` is closed
on a clean exit and aborted on an exception, so a failed run leaves no half-written
file behind (lsd.io.VideoWriter writes to a temp file until close()).
"""

import os
import sys

import numpy as np

from lsd.io import ClosedOnSuccess, VideoWriter, _draw_label, side_by_side
from lsd.stream.sources import DeviceUnavailable, import_optional

DEFAULT_FPS = 30.0
PROMPT_MAX_CHARS = 32  # longer prompts are cut so the overlay stays a corner label
QUIT_KEYS = (ord("q"), 27)  # q and Esc in the preview window


class Sink(ClosedOnSuccess):
    """Base: write(), close() and abort(), with `with` support."""

    def write(self, output: np.ndarray, input: np.ndarray | None = None,
              info: dict | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Give up after an error; a file sink deletes what it wrote."""
        self.close()


class Mp4Sink(Sink):
    """The output frames as an H.264 mp4 (odd sizes are padded to even by VideoWriter)."""

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS):
        self.path = path
        self._writer = VideoWriter(path, fps)

    def _frame(self, output, input, info) -> np.ndarray:
        return output

    def write(self, output: np.ndarray, input: np.ndarray | None = None,
              info: dict | None = None) -> None:
        self._writer.write(self._frame(output, input, info))

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.abort()


def overlay_text(info: dict | None) -> str:
    """The overlay line, "PROMPT | NN ms", from whichever of the two info has."""
    info = info or {}
    parts = []
    if info.get("prompt"):
        prompt = info["prompt"]
        parts.append(prompt if len(prompt) <= PROMPT_MAX_CHARS else prompt[:PROMPT_MAX_CHARS - 3] + "...")
    if info.get("ms") is not None:
        parts.append(f"{info['ms']:.0f} ms")
    return " | ".join(parts)


class SideBySideSink(Mp4Sink):
    """Input and output side by side in one mp4, the output panel labelled with the
    prompt and the processing time; the input is scaled to the output's height."""

    def _frame(self, output, input, info) -> np.ndarray:
        if input is None:
            raise ValueError("SideBySideSink.write needs the input frame")
        text = overlay_text(info)
        panel = _draw_label(output, text) if text else output
        return side_by_side([input, panel], height=output.shape[0])


class WindowSink(Sink):
    """A live preview window through OpenCV. `quit_requested` turns True once the
    user presses q or Esc in it, so the engine can stop."""

    def __init__(self, title: str = "lsd"):
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise DeviceUnavailable("preview window needs a display (DISPLAY is not set)")
        self._cv2 = import_optional("cv2", "preview window needs OpenCV: pip install opencv-python")
        self.title = title
        self.quit_requested = False
        try:
            self._cv2.namedWindow(title)
        except self._cv2.error as e:  # the headless build has no GUI backend at all
            raise DeviceUnavailable(
                "preview window needs OpenCV with GUI support (not opencv-python-headless): "
                "pip install opencv-python"
            ) from e

    def write(self, output: np.ndarray, input: np.ndarray | None = None,
              info: dict | None = None) -> None:
        self._cv2.imshow(self.title, np.ascontiguousarray(output[..., ::-1]))  # OpenCV wants BGR
        key = self._cv2.waitKey(1)  # also lets the window repaint
        self.quit_requested = self.quit_requested or (key & 0xFF) in QUIT_KEYS

    def close(self) -> None:
        try:
            self._cv2.destroyWindow(self.title)
        except self._cv2.error:
            pass  # already closed by the user


class VirtualCameraSink(Sink):
    """A virtual webcam (v4l2loopback, OBS, ...) through pyvirtualcam, for video calls.

    Given width and height it opens now; left None it opens on the first frame, at that
    frame's size (so DeviceUnavailable for a missing device comes from the first write).
    """

    def __init__(self, width: int | None = None, height: int | None = None,
                 fps: float = DEFAULT_FPS):
        self._pyvirtualcam = import_optional(
            "pyvirtualcam", "virtual camera needs pyvirtualcam: pip install 'lsd[vcam]'"
        )
        self.fps = fps
        self._camera = None
        if width is not None and height is not None:
            self._open(width, height)

    def _open(self, width: int, height: int) -> None:
        pyvirtualcam = self._pyvirtualcam
        try:
            self._camera = pyvirtualcam.Camera(width, height, self.fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as e:  # what pyvirtualcam raises when no backend device exists
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DeviceUnavailable(f"no virtual camera device: {reason}") from e

    def write(self, output: np.ndarray, input: np.ndarray | None = None,
              info: dict | None = None) -> None:
        height, width = output.shape[:2]
        if self._camera is None:
            self._open(width, height)
        if (width, height) != (self._camera.width, self._camera.height):
            size = f"{self._camera.width}x{self._camera.height}"
            raise ValueError(f"frame is {width}x{height}, the virtual camera is {size}")
        self._camera.send(np.ascontiguousarray(output))

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None


def open_sink(path: str | os.PathLike | None, side_by_side: bool = False, fps: float = DEFAULT_FPS,
              window: bool = False, virtual_camera: bool = False) -> list[Sink]:
    """The sinks a command line asks for: a file at `path` (input|output side by side if
    asked), a preview window, a virtual camera. A device that is unavailable raises
    DeviceUnavailable, after the sinks already opened are aborted."""
    if side_by_side and path is None:
        raise ValueError("side_by_side needs an output path")
    sinks: list[Sink] = []
    try:
        if path is not None:
            sinks.append(SideBySideSink(path, fps) if side_by_side else Mp4Sink(path, fps))
        if window:
            sinks.append(WindowSink())
        if virtual_camera:
            sinks.append(VirtualCameraSink(fps=fps))  # the frame size is known at the first write
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks
