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
from concurrent.futures import ThreadPoolExecutor

import aiohttp
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
            (json.dumps({**offer, "prompt": "sepia:0 + ink:0"}), 400, "add up to more than 0"),
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


def test_only_the_servers_own_pages_may_call_it(model):
    """A page elsewhere (or a DNS-rebinding one, whose Host is its own domain) gets 403;
    the server's own page, a client without an Origin, and an --allow-origin get in."""
    async def test(client):
        port = client.server.port
        assert (await client.get("/health", headers={"Origin": f"http://127.0.0.1:{port}"})).status == 200
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
            r = await client.post("/offer", data=b"{}",
                                  headers={"Origin": origin, "Content-Type": "text/plain"})
            assert r.status == 403 and "cross-origin" in (await r.json())["error"], origin
        r = await client.get("/health", headers={"Host": f"rebind.example:{port}"})
        assert r.status == 403 and "Host" in (await r.json())["error"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert (await client.get("/health", headers={"Host": host})).status == 200
        assert len(client.app[serve_app.SESSIONS]) == 0

    async def allowed(client):
        r = await client.get("/health", headers={"Origin": "https://app.example"})
        assert r.status == 200
        r = await client.get("/health", headers={"Origin": "https://other.example"})
        assert r.status == 403
    serving(model, test)
    serving(model, allowed, allow_origins=("https://app.example",))


def test_idle_and_half_open_connections_are_closed(model):
    """Connections that send nothing, half a request, or drip their headers are closed
    after the idle timeout (here 1 s; lsd serve: IDLE_TIMEOUT), and the server goes on."""
    import socket

    async def run():
        app = make_app(model=model, ice_addresses=LOOPBACK)
        async with TestServer(app, host="127.0.0.1", keepalive_timeout=1.0) as server:
            loop = asyncio.get_running_loop()

            def held(send: bytes) -> bool:  # still open after 2.5 s?
                with socket.create_connection(("127.0.0.1", server.port)) as s:
                    s.settimeout(4)
                    s.sendall(send)
                    t0 = time.time()
                    while time.time() - t0 < 2.5:
                        time.sleep(0.4)
                        try:
                            s.sendall(b"X" if send else b"")
                            if not s.recv(4096, socket.MSG_DONTWAIT):
                                return False
                        except BlockingIOError:
                            continue
                        except OSError:
                            return False
                    return True

            sends = [b"", b"POST /offer HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GET / HTTP/1.1\r\nX-A: "] * 4
            with ThreadPoolExecutor(len(sends)) as pool:  # all held at once
                kept = await asyncio.gather(*(loop.run_in_executor(pool, held, b) for b in sends))
            assert not any(kept)
            async with TestClient(server) as client:
                assert (await client.get("/health")).status == 200
    asyncio.run(run())


def fuzz_cases(n: int, seed: int = 0) -> list[tuple[str, str, dict, bytes]]:
    """n malformed requests (method, path, headers, body), the same every run."""
    rng = np.random.default_rng(seed)
    odd = ["\udfff", "\ud800x", "\u202e", "\x00", "\ufeff", "a" * 5000, "\U0001f600" * 300]
    bodies = [b"[" * 5000, b"{" * 5000, b'{"type": "offer", "sdp": ' + b"[" * 3000,
              b"\x00" * 100, b'{"type": "offer", "sdp": "v=0 m=video", "prompt": "\\udfff"}',
              b'{"type": 1e999}', b'{"type": "offer", "sdp": "v=0\\nm=video", "tag": {"a": []}}',
              b'{"type": "offer", "sdp": null}', b'"offer"', b"null", b"1" * 10000]
    for text in odd:
        bodies.append(json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 x\r\n",
                                  "prompt": text}).encode())
    cases = [("POST", "/offer", {}, b) for b in bodies]
    while len(cases) < n:
        kind = rng.integers(4)
        if kind == 0:  # random bytes
            cases.append(("POST", "/offer", {}, rng.bytes(int(rng.integers(1, 3000)))))
        elif kind == 1:  # a valid-looking offer with one field of a wrong type
            value = [None, 3, [1], {"x": 1}, True, "", "\udfff" * 3][rng.integers(7)]
            key = ["type", "sdp", "prompt", "tag"][rng.integers(4)]
            body = {"type": "offer", "sdp": "v=0\r\nm=video 9\r\n", key: value}
            cases.append(("POST", "/offer", {"Content-Type": "text/plain"},
                          json.dumps(body).encode()))
        elif kind == 2:  # odd paths and methods
            path = ["/offer/..", "/static/%2e%2e/app.py", "/" + "a" * 2000, "/styles?x=\udfff",
                    "/health/", "/static/"][rng.integers(6)]
            cases.append((["GET", "PUT", "DELETE", "PATCH"][rng.integers(4)], path, {}, b""))
        else:  # odd headers
            headers = [{"Content-Type": "text/plain"}, {"Content-Type": "application/json; charset=x"},
                       {"Origin": "http://\u00e9vil"}, {"Authorization": "Bearer " + "x" * 3000}][rng.integers(4)]
            cases.append(("POST", "/offer", headers, b"{}"))
    return cases


def test_malformed_requests_fuzz_no_5xx_and_flat_memory(model):
    """120 malformed requests, loopback only: each a 4xx, never a 5xx; memory stays flat."""
    from lsd.stream.runner import rss_mb

    async def test(client):
        cases = fuzz_cases(120)
        statuses = []
        start = None
        for i, (method, path, headers, body) in enumerate(cases):
            try:
                r = await client.request(method, path, headers=headers, data=body,
                                         timeout=aiohttp.ClientTimeout(total=10))
                statuses.append(r.status)
                r.release()
            except (aiohttp.ClientError, UnicodeError, ValueError):  # the client refused to send it
                statuses.append(None)
            if i == 20:
                start = rss_mb()
        sent = [st for st in statuses if st is not None]
        assert len(sent) > 100 and max(sent) < 500, [c[:2] for c, st in zip(cases, statuses)
                                                     if st and st >= 500][:5]
        offers = [st for (_, path, _, _), st in zip(cases, statuses) if path == "/offer" and st]
        assert len(offers) > 80 and min(offers) >= 400  # no malformed offer is accepted
        assert rss_mb() - start < 30  # MB: no growth with the requests
        assert (await client.get("/health")).status == 200 and not client.app[serve_app.SESSIONS]
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
        acked = lambda text: any(m["type"] == "prompt" and m["text"] == text for m in messages)
        await until(lambda: acked("thermal camera"), what="the prompt ack")
        ack = next(m for m in messages if m["type"] == "prompt")
        assert ack["understood_as"].split()[0] in STYLES  # "thermal 0.97": a look, a confidence
        await until(lambda: any(m["type"] == "stats" and m["prompt"] == "thermal camera"
                                for m in messages), what="stats with the new prompt")
        stats = [m for m in messages if m["type"] == "stats"][-1]
        assert stats["fps"] > 0 and stats["ms_per_frame"] > 0 and stats["dropped"] >= 0
        assert stats["frames"] > 0 and stats["frames_in"] >= stats["frames"]

        channel.send(json.dumps({"type": "prompt", "text": "x" * (MAX_PROMPT + 1)}))
        await until(lambda: any(m["type"] == "error" for m in messages), what="an error")
        assert "prompt too long" in messages[-1]["message"] and not messages[-1].get("fatal")
        assert (await (await client.get("/health")).json())["sessions"] == 1  # still on
        channel.send(json.dumps({"type": "prompt", "text": "\udfff"}))  # a lone surrogate
        errors = lambda: [m for m in messages if m["type"] == "error"]
        await until(lambda: len(errors()) >= 2, what="the surrogate's error")
        assert "not valid Unicode" in errors()[-1]["message"] and not errors()[-1].get("fatal")
        acks = lambda: sum(m["type"] == "prompt" for m in messages)
        before = acks()
        for i in range(200):  # a flood: latest wins, the frames do not wait for 200 switches
            channel.send(json.dumps({"type": "prompt", "text": f"sepia {i}"}))
        await until(lambda: acked("sepia 199"), what="the newest prompt")
        assert acks() - before < 20

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
    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--token", "t",
                 "--checkpoint", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    with ran.pop("sock") as sock:  # bound before the model loads: the banner has its port
        host, port = sock.getsockname()[:2]
    assert "warning" in err and "0.0.0.0" in err and host == "0.0.0.0" and port > 0
    assert f"http://127.0.0.1:{port}/?token=t" in out  # the real port, not 0
    assert ran["threads"] == max(1, os.cpu_count() - 1)  # a core left for the video codecs
    assert ran["keepalive_timeout"] == serve_app.IDLE_TIMEOUT
    assert main(["serve", "--checkpoint", str(ckpt), "--port", "0", "--threads", "3"]) == 0
    ran.pop("sock").close()
    assert ran["threads"] == 3
    assert serve_app.url("::1", 8000) == "http://[::1]:8000/"  # IPv6 in brackets
    assert serve_app.url("", 8000, https=True) == "https://127.0.0.1:8000/"

    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(ckpt), "--port", str(busy)]) == 2
    assert "in use" in capsys.readouterr().err


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
