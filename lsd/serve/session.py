"""One peer's session: its own Stream, latest-wins frame processing, the generated track.

Frames arrive on the browser's video track as fast as the network delivers them. A reader
task keeps only the newest one (a frame nobody took before the next arrived is dropped and
counted), and a worker coroutine hands it to the model on the session's own thread, so the
event loop never waits for the model and a slow model skips frames instead of queueing
them. Generated frames leave through GeneratedTrack, which also keeps only the newest.
Everything that touches the Stream (steps, prompt changes, stats) runs on that one thread,
in order, so the Stream needs no locks. Any error closes this session only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from ..stream.engine import Stream
from ..stream.understood import said
from .cores import pin_current_thread
from .protocol import BadPrompt, BadRequest, parse_control

log = logging.getLogger("lsd.serve")

TIMING_WINDOW = 100  # frames the server-side latency split is taken over
TAG_CELLS = 12  # the page's frame-counter strip: 12 square cells of width/16 (see app.js)
VIDEO_CLOCK = 90_000  # RTP video clock rate


def copy_latency_tag(src: np.ndarray, dst: np.ndarray) -> None:
    """Copy the bottom-left strip where the page stamps a frame counter from the input to
    the output, so the page can tell which input frame an output frame was made from and
    time capture-to-display. One row of slack above the strip."""
    h, w = src.shape[:2]
    rows, cols = math.ceil(w / 16) + 1, math.ceil(TAG_CELLS * w / 16)
    dst[h - rows:, :cols] = src[h - rows:, :cols]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 2)  # JSON has no NaN (no frame yet)


def _median(ms) -> float | None:
    return round(float(np.median(ms)), 2) if ms else None


class LatestSlot:
    """A one-item asyncio mailbox: put() replaces an item nobody took (counted in `dropped`)."""

    def __init__(self):
        self._item = None
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, item) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self):
        while self._item is None:
            if self.closed:
                raise MediaStreamError("session closed")
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return item


class GeneratedTrack(MediaStreamTrack):
    """The video track sent back to the browser: the newest generated frame, stamped with
    the wall clock so the browser plays it at once."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self.frames = LatestSlot()  # (frame, when it was generated)
        self.send_wait_ms: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._t0 = time.monotonic()
        self._pts = -1

    async def recv(self) -> av.VideoFrame:
        frame, made = await self.frames.get()
        self.send_wait_ms.append((time.monotonic() - made) * 1000)
        self._pts = max(self._pts + 1, int((time.monotonic() - self._t0) * VIDEO_CLOCK))
        frame.pts, frame.time_base = self._pts, Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        self.frames.close()
        super().stop()


class Session:
    """A peer connection, its Stream and the tasks that feed it. `close()` is idempotent;
    `on_close(session)` runs once when it is closed, whatever the reason."""

    def __init__(self, sid: str, pc: RTCPeerConnection, stream: Stream, *, tag: bool = False,
                 blend_frames: int = 12, connect_timeout: float = 20.0,
                 stats_interval: float = 1.0, on_close=None, model_cores: set[int] | None = None):
        self.id, self.pc, self.stream = sid, pc, stream
        self.tag, self.blend_frames = tag, blend_frames
        self.stats_interval = stats_interval
        self.on_close = on_close
        self.track = GeneratedTrack()
        self.incoming = LatestSlot()
        self.frames_in = 0
        self._busy_ms = 0.0  # time in Stream.step, summed
        # where a frame's time in the server goes: waiting for the model, then the step with
        # its RGB conversions (the encoder's wait is the track's)
        self.queue_ms: deque[float] = deque(maxlen=TIMING_WINDOW)
        self.step_ms: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._mark = (time.monotonic(), 0, 0.0)  # (time, frames, busy_ms) at the last stats()
        self.channel = None
        self.closed = False
        self.close_reason = ""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"lsd-session-{sid}",
                                            initializer=pin_current_thread, initargs=(model_cores,))
        self._tasks: set[asyncio.Task] = set()
        self._next_prompt: str | None = None  # the newest prompt not yet set (latest wins)
        self._spawn(self._close_unless_connected(connect_timeout))
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    # -- wiring ----------------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track) -> None:
        if track.kind != "video" or self.has_video:
            return  # audio is not used; a second video track is ignored
        self.pc.addTrack(self.track)  # answers on the same transceiver: sendrecv
        track.on("ended", lambda: self.close_soon("the browser's video track ended"))
        self._spawn(self._read(track))
        self._spawn(self._work())

    def _on_datachannel(self, channel) -> None:
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.close_soon("the data channel closed"))
        self._spawn(self._send_stats())

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.close_soon(f"connection {self.pc.connectionState}")

    @property
    def has_video(self) -> bool:
        return any(s.track is self.track for s in self.pc.getSenders())

    # -- frames ----------------------------------------------------------------------------

    async def _read(self, track) -> None:
        try:
            while True:
                self.incoming.put((await track.recv(), time.monotonic()))
                self.frames_in += 1
                self.stream.dropped = self.incoming.dropped  # the Stream's stats show it too
        except MediaStreamError:
            self.close_soon("the browser's video track ended")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            try:
                frame, arrived = await self.incoming.get()
            except MediaStreamError:  # closed while waiting
                return
            started = time.monotonic()
            try:
                out = await loop.run_in_executor(self._executor, self._step, frame)
            except Exception as e:  # this session's problem, not the server's
                log.exception("session %s: the model failed", self.id)
                self.close_soon(f"model error: {e}")
                return
            done = time.monotonic()
            self.queue_ms.append((started - arrived) * 1000)
            self.step_ms.append((done - started) * 1000)
            self.track.frames.put((out, done))

    def _step(self, frame: av.VideoFrame) -> av.VideoFrame:
        """On the session thread: decode, generate, encode back into an av frame."""
        image = frame.to_ndarray(format="rgb24")
        out = self.stream.step(image)
        self._busy_ms += self.stream.last_ms
        if self.tag:
            copy_latency_tag(image, out)
        return av.VideoFrame.from_ndarray(out, format="rgb24")

    # -- control and stats -----------------------------------------------------------------

    def send(self, message: dict) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message))

    def _on_message(self, message) -> None:
        try:
            _, text = parse_control(message)  # the only kind so far: a prompt
        except BadPrompt as e:  # the user's typing: say so, keep the session
            log.info("session %s: prompt rejected: %s", self.id, e)
            self.send({"type": "error", "message": str(e)})
            return
        except BadRequest as e:  # a client that speaks another protocol: end it
            log.warning("session %s: bad control message: %s", self.id, e)
            self.send({"type": "error", "message": str(e), "fatal": True})
            self.close_soon(f"bad control message: {e}")
            return
        # latest wins: a flood of prompts queues no work before the frames, only the newest
        idle = self._next_prompt is None
        self._next_prompt = text
        if idle:
            self._spawn(self._set_prompts())

    async def _set_prompts(self) -> None:
        loop = asyncio.get_running_loop()
        while self._next_prompt is not None:
            text = self._next_prompt
            await loop.run_in_executor(self._executor, self.stream.set_prompt, text,
                                       self.blend_frames)
            log.info("session %s: prompt %r", self.id, text)
            # read from the stream's own fields: its stats walk a deque the session thread fills
            self.send({"type": "prompt", "text": text, "understood_as": said(self.stream.understood),
                       "warning": self.stream.warning})
            if self._next_prompt == text:  # none newer came in meanwhile
                self._next_prompt = None

    async def stats(self) -> dict:
        """What the page shows, once a second: frames out per second and the model's mean ms
        per frame since the last call, frames dropped because the model was busy, the prompt
        in effect (and the Stream's p50/p95 over its latency window), and the medians of
        where a frame's time in the server goes (queue, step, send_wait)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._stats)

    def _stats(self) -> dict:  # on the session thread, between steps
        s, now = self.stream.stats, time.monotonic()
        then, frames, busy_ms = self._mark
        self._mark = (now, s["frames"], self._busy_ms)
        done = s["frames"] - frames
        return {"type": "stats", "fps": round(done / max(now - then, 1e-6), 2),
                "ms_per_frame": round((self._busy_ms - busy_ms) / done, 2) if done else None,
                "ms_p50": _finite(s["ms_p50"]), "ms_p95": _finite(s["ms_p95"]),
                "frames": s["frames"], "frames_in": self.frames_in,
                "dropped": self.incoming.dropped, "dropped_output": self.track.frames.dropped,
                "prompt": s["prompt"], "understood_as": s["understood_as"],
                "server_ms_p50": {"queue": _median(self.queue_ms), "step": _median(self.step_ms),
                                  "send_wait": _median(self.track.send_wait_ms)}}

    async def _send_stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self.send(await self.stats())

    # -- the end ---------------------------------------------------------------------------

    async def _close_unless_connected(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if self.pc.connectionState != "connected":
            await self.close(f"no connection within {timeout:g} s")

    def close_soon(self, reason: str) -> None:
        if not self.closed:
            asyncio.ensure_future(self.close(reason))

    async def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed, self.close_reason = True, reason
        log.info("session %s closed: %s", self.id, reason)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self.incoming.close()
        self.track.stop()
        try:
            await self.pc.close()
        except Exception:  # closing a half-negotiated connection may fail; it is gone anyway
            log.debug("session %s: pc.close failed", self.id, exc_info=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.on_close is not None:
            self.on_close(self)
