"""`lsd serve` without a browser: every kind of bad request gets a clear 4xx and the server
keeps serving; the token; a whole WebRTC session against an aiortc client over loopback
(frames, prompts, stats, bad control messages); "server full" and slots freed by clients
that vanish; latest-wins frame processing with a slow model; one session's model error
closes that session only; the command line.

Every peer connection here offers only 127.0.0.1 candidates and no STUN server, so no
packet goes anywhere but loopback.
"""

import asyncio
import json
import os
import re
import struct
import time

import av
import numpy as np
import torch
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription,
                    VideoStreamTrack)
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unpack_header_extensions

from lsd.cli import main
from lsd.models import LSDModel, load
from lsd.serve import app as serve_app
from lsd.serve import make_app
from lsd.serve.app import MODEL
from lsd.serve.cores import split_cores
from lsd.serve.ice import use_host_addresses
from lsd.serve.playout import PLAYOUT_DELAY_URI, zero_playout_delay
from lsd.serve.protocol import MAX_BODY, MAX_PROMPT
from lsd.serve.session import Session
from lsd.stream.engine import Stream
from lsd.styles import STYLES
from test_models import randomized, small_config

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model"
    randomized(LSDModel(small_config())).save(path, extra_config={"sample": {"steps": 2}})
    return path


@pytest.fixture(scope="module")
def model(ckpt):
    return load(ckpt)


def serving(model, test, **kwargs):
    """Run `await test(client)` against the app on 127.0.0.1 (a free port)."""
    async def run():
        app = make_app(model=model, ice_addresses=LOOPBACK, **kwargs)
        async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
            return await test(client)
    return asyncio.run(run())


class Camera(VideoStreamTrack):
    """aiortc's paced test track (30 fps) with a 64x48 picture."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 180, np.uint8), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def client_offer(send_video: bool = True) -> tuple[RTCPeerConnection, str]:
    use_host_addresses(LOOPBACK)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if send_video:
        pc.addTrack(Camera())
    else:
        pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("control")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def until(condition, timeout: float = 10.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- bad requests -------------------------------------------------------------------------

def test_malformed_requests_get_a_clear_4xx_and_the_server_keeps_serving(model):
    async def test(client):
        pc, sdp = await client_offer()
        _, receive_only = await client_offer(send_video=False)
        await pc.close()
        offer = {"type": "offer", "sdp": sdp}
        bad = [  # (body, status, words in the error)
            (b"{not json", 400, "not valid JSON"),
            (b"\xff\xfe\x00", 400, "not valid JSON"),
            (b"[1, 2]", 400, "JSON object"),
            (b"{}", 400, '"type"'),
            (json.dumps({"type": "answer", "sdp": sdp}), 400, '"type"'),
            (json.dumps({"type": "offer"}), 400, '"sdp"'),
            (json.dumps({"type": "offer", "sdp": 42}), 400, '"sdp"'),
            (json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\n"}), 400,
             "no video"),
            (json.dumps({"type": "offer", "sdp": "v=0\r\nm=video this is not SDP\r\n"}), 400,
             "unusable SDP"),
            (json.dumps({"type": "offer", "sdp": sdp.replace("a=ice-ufrag", "a=x")}), 400,
             "ICE username fragment"),
            (json.dumps({"type": "offer", "sdp": re.sub(r"(rtpmap:\d+) \w+/", r"\1 FOO/", sdp)}),
             400, "bad offer"),
            (json.dumps({"type": "offer", "sdp": receive_only}), 400, "sends no video"),
            (json.dumps({**offer, "prompt": "x" * (MAX_PROMPT + 1)}), 400, "prompt too long"),
            (json.dumps({**offer, "prompt": ["ink"]}), 400, "prompt must be a string"),
            (b"x" * (MAX_BODY + 1), 413, "body"),
        ]
        for body, status, words in bad:
            r = await client.post("/offer", data=body)
            error = (await r.json()).get("error", f"no error: {r.status}")
            assert (r.status, words in error) == (status, True), (body[:60], r.status, error)
        for method, path, status in [("GET", "/offer", 405), ("GET", "/nope", 404),
                                     ("GET", "/static/../app.py", 404)]:
            r = await client.request(method, path)
            assert r.status == status and "error" in await r.json()
        r = await client.get("/health")
        assert r.status == 200 and (await r.json())["sessions"] == 0  # nothing left open
        r = await client.get("/")
        assert r.status == 200 and "<video" in await r.text()
        r = await client.get("/static/app.js")
        assert r.status == 200 and "RTCPeerConnection" in await r.text()
        styles = await (await client.get("/styles")).json()
        assert styles["max_prompt"] == MAX_PROMPT
        assert [s["name"] for s in styles["styles"]] == [n for n, s in STYLES.items()
                                                         if not s.not_learnt]
        assert "star_glitter" not in [s["name"] for s in styles["styles"]]  # not learnt
        assert styles["default_prompt"] == next(iter(STYLES.values())).prompts[0]
    serving(model, test)


def test_a_token_is_needed_on_every_request(model):
    async def test(client):
        for path in ["/", "/static/app.js", "/styles", "/health"]:
            assert (await client.get(path)).status == 401
            assert (await client.get(path, headers={"X-LSD-Token": "wrong"})).status == 401
            assert (await client.get(path, headers={"X-LSD-Token": "s3cret"})).status == 200
            bearer = {"Authorization": "Bearer s3cret"}
            assert (await client.get(path, headers=bearer)).status == 200
        r = await client.post("/offer", data=b"{}", params={"token": "nope"})
        assert r.status == 401 and "token" in (await r.json())["error"]
        # the page's first load carries ?token=; a cookie then covers its script
        r = await client.get("/", params={"token": "s3cret"})
        assert r.status == 200 and r.cookies["lsd_token"].value == "s3cret"
        assert (await client.get("/static/app.js")).status == 200
    serving(model, test, token="s3cret")


# -- a real session -----------------------------------------------------------------------

def test_a_session_end_to_end_over_loopback(model):
    async def test(client):
        use_host_addresses(LOOPBACK)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(Camera())
        channel = pc.createDataChannel("control")
        messages, frames = [], []
        channel.on("message", lambda m: messages.append(json.loads(m)))

        @pc.on("track")
        def on_track(track):
            async def pull():
                try:
                    while True:
                        frames.append((await track.recv()).to_ndarray(format="rgb24"))
                except MediaStreamError:
                    pass
            asyncio.ensure_future(pull())

        await pc.setLocalDescription(await pc.createOffer())
        r = await client.post("/offer", json={"type": "offer", "sdp": pc.localDescription.sdp,
                                              "prompt": "ink wash painting"})
        answer = await r.json()
        assert r.status == 200 and answer["type"] == "answer", answer
        assert " 127.0.0.1 " in answer["sdp"]  # the loopback host candidate
        assert PLAYOUT_DELAY_URI in answer["sdp"]  # offered (aiortc now knows it), so answered
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await until(lambda: len(frames) >= 10, what="10 generated frames")
        assert frames[-1].shape == (48, 64, 3)  # the camera's size
        assert np.abs(frames[-1].astype(int) - 180).mean() > 10  # not the camera's picture

        channel.send(json.dumps({"type": "prompt", "text": "  thermal   camera "}))
        await until(lambda: {"type": "prompt", "text": "thermal camera"} in messages,
                    what="the prompt ack")
        await until(lambda: any(m["type"] == "stats" and m["prompt"] == "thermal camera"
                                for m in messages), what="stats with the new prompt")
        stats = [m for m in messages if m["type"] == "stats"][-1]
        assert stats["fps"] > 0 and stats["ms_per_frame"] > 0 and stats["dropped"] >= 0
        assert stats["frames"] > 0 and stats["frames_in"] >= stats["frames"]

        channel.send(json.dumps({"type": "prompt", "text": "x" * (MAX_PROMPT + 1)}))
        await until(lambda: any(m["type"] == "error" for m in messages), what="an error")
        assert "prompt too long" in messages[-1]["message"] and not messages[-1].get("fatal")
        assert (await (await client.get("/health")).json())["sessions"] == 1  # still on

        channel.send(json.dumps({"type": "dance"}))
        await until(lambda: messages[-1].get("fatal"), what="a fatal error")
        assert "unknown control message" in messages[-1]["message"]
        await until(lambda: pc.connectionState in ("closed", "failed"), 15, "the session's end")
        assert (await (await client.get("/health")).json())["sessions"] == 0
        await pc.close()
    serving(model, test)


def test_server_full_answers_503_and_a_vanished_client_frees_its_slot(model):
    async def test(client):
        first, sdp = await client_offer()
        r = await client.post("/offer", json={"type": "offer", "sdp": sdp})
        assert r.status == 200  # ... and the client vanishes without connecting
        await first.close()
        second, sdp = await client_offer()
        r = await client.post("/offer", json={"type": "offer", "sdp": sdp})
        assert r.status == 503 and "server full" in (await r.json())["error"]
        await until(lambda: not client.server.app[serve_app.SESSIONS], 5, "the slot to free")
        r = await client.post("/offer", json={"type": "offer", "sdp": sdp})
        assert r.status == 200
        await second.close()
    serving(model, test, max_sessions=1, connect_timeout=0.5)


def test_video_packets_ask_for_zero_playout_delay_only_where_it_was_agreed():
    zero_playout_delay()
    zero_playout_delay()  # twice changes nothing
    assert [e.uri for e in HEADER_EXTENSIONS["video"]].count(PLAYOUT_DELAY_URI) == 1
    mid = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
    agreed, plain = HeaderExtensionsMap(), HeaderExtensionsMap()
    agreed.configure(RTCRtpParameters(headerExtensions=[
        mid, RTCRtpHeaderExtensionParameters(id=9, uri=PLAYOUT_DELAY_URI)]))
    plain.configure(RTCRtpParameters(headerExtensions=[mid]))
    for extensions_map, expected in ((agreed, [(1, b"0"), (9, b"\0\0\0")]), (plain, [(1, b"0")])):
        packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=90, payload=b"vp8")
        packet.extensions.mid = "0"
        data = packet.serialize(extensions_map)
        profile, words = struct.unpack_from("!HH", data, 12)  # after the fixed 12-byte header
        assert unpack_header_extensions(profile, data[16:16 + 4 * words]) == expected
        assert RtpPacket.parse(data).payload == b"vp8"


# -- sessions without a network -----------------------------------------------------------

class FastCamera(MediaStreamTrack):
    """200 frames a second, each with its number in the first pixel."""

    kind = "video"

    def __init__(self, total: int = 80):
        super().__init__()
        self.sent, self.total = 0, total

    async def recv(self):
        if self.sent >= self.total:
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(0.005)
        image = np.zeros((32, 32, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 1] = self.sent % 256, self.sent // 256
        self.sent += 1
        return av.VideoFrame.from_ndarray(image, format="rgb24")


def number(image: np.ndarray) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


def slow_stream(model, seen: list, camera=None, fail: bool = False) -> Stream:
    stream = Stream(model, "sepia")

    def step(frame):  # a model far slower than the camera: the image passes through
        if fail:
            raise RuntimeError("the model broke")
        seen.append((number(frame), camera.sent - 1 if camera else 0))
        time.sleep(0.03)
        stream.frames += 1
        stream._latency_ms.append(30.0)
        return frame.copy()

    stream.step = step
    return stream


def test_a_slow_model_takes_the_newest_frame_and_counts_drops(model):
    async def test():
        camera, seen, out = FastCamera(), [], []
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = Session("t", pc, slow_stream(model, seen, camera))
        session._on_track(camera)
        try:
            while True:
                out.append(number((await session.track.recv()).to_ndarray(format="rgb24")))
        except MediaStreamError:
            pass
        assert session.closed and "ended" in session.close_reason
        numbers = [n for n, _ in seen]
        assert numbers == sorted(set(numbers)) and out == sorted(set(out))  # never older
        assert session.frames_in == 80 and session.incoming.dropped >= 40  # most skipped
        assert session.stream.dropped == session.incoming.dropped
        lags = [newest - n for n, newest in seen]  # frames the camera made since this one
        assert max(lags) <= 3  # a queue would fall ~6 frames further behind every step
        # the server's latency split: each frame waited at most for the step in progress
        # (a queue would wait ~1 s by the end), then took the model's 30 ms
        assert min(session.step_ms) >= 30 and max(session.queue_ms) < 90
        assert session._stats()["server_ms_p50"]["step"] >= 30
        stats = await Session("u", pc, slow_stream(model, [])).stats()
        assert stats["fps"] == 0 and stats["ms_per_frame"] is None
        assert stats["server_ms_p50"] == {"queue": None, "step": None, "send_wait": None}
    asyncio.run(test())


def test_cores_split_leaves_the_model_the_last_ones(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert split_cores(1) == ({3}, {0, 1, 2})
    assert split_cores(3) == ({1, 2, 3}, {0})
    assert split_cores(4) is None and split_cores(0) is None  # nothing left to split
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert split_cores(1) is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin apart")
def test_a_session_runs_its_model_on_the_model_cores(model):
    last = max(os.sched_getaffinity(0))

    async def test():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = Session("p", pc, slow_stream(model, []), model_cores={last})
        try:
            on_thread = session._executor.submit(os.sched_getaffinity, 0).result()
            assert on_thread == {last}
            assert os.sched_getaffinity(0) != {last}  # the caller's own cores are untouched
        finally:
            await session.close()
    asyncio.run(test())


def test_a_model_error_closes_only_its_session(model):
    async def test():
        bad = Session("bad", RTCPeerConnection(RTCConfiguration(iceServers=[])),
                      slow_stream(model, [], fail=True))
        good_seen = []
        good = Session("good", RTCPeerConnection(RTCConfiguration(iceServers=[])),
                       slow_stream(model, good_seen))
        bad._on_track(FastCamera())
        good._on_track(FastCamera(total=1000))
        await until(lambda: bad.closed, what="the failing session to close")
        assert "model error: the model broke" in bad.close_reason
        done = len(good_seen)
        await until(lambda: len(good_seen) > done + 3, what="the other session to go on")
        assert not good.closed
        await good.close("test over")
    asyncio.run(test())


# -- the command line ---------------------------------------------------------------------

def test_cli_serve_checks_its_options(ckpt, tmp_path, monkeypatch, capsys):
    ran = {}
    monkeypatch.setattr(serve_app.torch, "set_num_threads", lambda n: ran.update(threads=n))
    assert main(["serve", "--host", "0.0.0.0", "--checkpoint", str(ckpt)]) == 2
    assert "needs --token" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path / "none")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(ckpt), "--max-sessions", "0"]) == 2
    assert "--max-sessions" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(ckpt), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not ran  # nothing was changed for a command that failed

    monkeypatch.setattr(serve_app.web, "run_app", lambda app, **kw: ran.update(kw))
    monkeypatch.setattr(serve_app, "use_host_addresses", lambda addresses: None)
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--token", "t",
                 "--checkpoint", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert "warning" in err and "0.0.0.0" in err and "?token=t" in out
    assert ran["host"] == "0.0.0.0" and ran["port"] == 8123
    assert ran["threads"] == max(1, os.cpu_count() - 1)  # a core left for the video codecs
    assert main(["serve", "--checkpoint", str(ckpt), "--threads", "3"]) == 0
    assert ran["threads"] == 3

    def busy(app, **kw):
        raise OSError(98, "Address already in use")
    monkeypatch.setattr(serve_app.web, "run_app", busy)
    assert main(["serve", "--checkpoint", str(ckpt)]) == 2
    assert "Address already in use" in capsys.readouterr().err


def test_compile_happens_before_the_server_listens_and_sessions_reuse_it(ckpt):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    app = make_app(ckpt, ice_addresses=LOOPBACK, backend="compile")  # its own model: compiled in place
    model = app[MODEL]
    assert model.compiled_for_streaming
    # encoder, decoder and the denoiser's two graphs, compiled by the warm-up frame
    assert counters["stats"]["unique_graphs"] == 4
    session_stream = Stream(model, "thermal camera", backend="compile")  # as an offer makes one
    session_stream.step(np.zeros((48, 64, 3), np.uint8))
    assert counters["stats"]["unique_graphs"] == 4  # no compile while a client waits


def test_browser_latency_runs_pool_frame_by_frame():
    from pool_latency import pool

    run = lambda ms, fps: {"latency_ms": ms, "latency_ms_p95": max(ms), "page_output_fps": fps,
                           "server_ms_p50": {"step": 20.0, "queue": 1.0}}
    result = pool([run([10.0] * 20, 30.0), run([50.0] * 19 + [100.0], 20.0)])
    assert result["runs"] == 2 and result["frames"] == 40
    assert result["latency_ms_p50"] == 30.0  # between the runs' frames, not a run's p50
    assert result["latency_ms_p95"] == 50.0 and result["per_run_p95"] == [10.0, 100.0]
    assert result["median_fps"] == 25.0 and result["median_step_ms"] == 20.0
    with pytest.raises(ValueError):
        pool([])
