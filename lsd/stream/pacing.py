"""Real-time pacing: read a live source on its own thread and keep only its newest frame.

A camera delivers frames at its own rate whether or not the model keeps up. Queueing
them would make latency grow without bound whenever the model is slower than the
camera; instead one slot holds the newest frame, and a frame nobody took before the
next one arrived is dropped (and counted).
"""

import threading

import numpy as np

CLOSE_JOIN_TIMEOUT_S = 2.0  # a source stuck in read() must not hang close() forever


class LatestFrame:
    """The newest frame of a live source, captured by a daemon thread.

    get() returns each captured frame at most once and never an older one after a newer
    one. `captured` counts frames read from the source, `dropped` those overwritten
    before anyone took them. An exception in the source's read() is re-raised by get().
    """

    def __init__(self, source):
        self.source = source
        self.captured = 0
        self.dropped = 0
        self._pending: np.ndarray | None = None  # newest frame not yet returned by get()
        self._ended = False
        self._error: BaseException | None = None
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._capture, name=f"capture {getattr(source, 'name', source)}", daemon=True
        )
        self._thread.start()

    def _capture(self) -> None:
        try:
            while not self._stop:
                frame = self.source.read()  # blocks at the camera's pace, outside the lock
                if frame is None:
                    break
                with self._changed:
                    if self._pending is not None:
                        self.dropped += 1
                    self._pending = frame
                    self.captured += 1
                    self._changed.notify_all()
        except BaseException as e:  # handed to the consumer, who can act on it
            with self._changed:
                self._error = e
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def get(self, timeout: float | None = None) -> np.ndarray | None:
        """Wait for a frame newer than the last one returned; None once the source has ended.

        Raises TimeoutError after `timeout` seconds without a new frame, or the capture
        thread's exception once the frames captured before it are taken.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._pending is not None or self._ended, timeout):
                raise TimeoutError(f"no new frame from {self.source} within {timeout} s")
            frame, self._pending = self._pending, None
            if frame is None and self._error is not None:
                raise self._error
            return frame

    def close(self) -> None:
        """Stop capturing (after the read in progress) and close the source."""
        self._stop = True
        self._thread.join(CLOSE_JOIN_TIMEOUT_S)
        self.source.close()

    def __iter__(self):
        while (frame := self.get()) is not None:
            yield frame

    def __enter__(self) -> "LatestFrame":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
