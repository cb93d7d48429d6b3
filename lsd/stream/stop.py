"""Stopping a run on a signal without losing its work. Inside `StopSignals`, Ctrl-C (SIGINT)
or SIGTERM only marks the run as stopped: the loop finishes the frame it is on and leaves,
so the recording is closed with every frame made so far. A second signal acts as usual
(Ctrl-C raises KeyboardInterrupt), for a source that hangs."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self):
        self.signum: int | None = None  # the signal that stopped the run
        self._previous: dict = {}

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self._restore()  # the next one is not caught

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # only there can it catch
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
