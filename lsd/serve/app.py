"""`lsd serve`: the page, the offer endpoint and the session table (aiohttp + aiortc).

    GET  /          the page (static/index.html): camera or synthetic pattern in, generated
                    stream out, prompt box, live stats, capture-to-display latency
    GET  /static/*  its script
    GET  /styles    prompt suggestions (every style's phrasings) and the prompt limit
    GET  /health    {"ok": true, "sessions": n, "max_sessions": m}
    POST /offer     {"type": "offer", "sdp", "prompt"?, "tag"?} -> {"type": "answer", "sdp",
                    "session"}; 400/413 for a bad offer, 401 without the token, 503 when full

The model is loaded once and shared; each session gets its own Stream (history, prompt,
stats) and its own thread. The shared model's graph (the backend's: OpenVINO or
torch.compile, lsd.stream.backends) is built by a warm-up frame before the server listens,
so no client waits for it. Every error a client can cause is a JSON {"error": ...} with a
4xx status, logged, and the server carries on.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import logging
import os
import socket
import ssl
import sys
from pathlib import Path

import numpy as np
import torch
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from ..models import load
from ..stream.engine import Stream
from ..stream.understood import looks_of
from ..styles import STYLES
from .cores import pin_current_thread, split_cores
from .ice import use_host_addresses
from .jitter import release_frames_on_marker
from .playout import zero_playout_delay
from .protocol import MAX_BODY, MAX_PROMPT, BadRequest, parse_offer
from .session import Session

log = logging.getLogger("lsd.serve")

STATIC = Path(__file__).parent / "static"
DEFAULT_PROMPT = next(iter(STYLES.values())).prompts[0]
TOKEN_COOKIE = "lsd_token"
# seconds a connection may sit without a whole request (idle, half-open, or dripping its
# headers) before it is closed: aiohttp's keep-alive timer runs from the connection's start
IDLE_TIMEOUT = 15.0

CONFIG = web.AppKey("config", dict)
MODEL = web.AppKey("model", object)
SESSIONS = web.AppKey("sessions", dict)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": may mean every interface


def reject(request: web.Request, status: int, message: str) -> web.Response:
    """A client error: logged, answered as {"error": message}."""
    log.warning("%s %s from %s: %d %s", request.method, request.path, request.remote, status,
                message)
    return web.json_response({"error": message}, status=status)


def _given_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return (request.headers.get("X-LSD-Token") or auth.removeprefix("Bearer ").strip()
            or request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or "")


@web.middleware
async def json_errors(request: web.Request, handler):
    """aiohttp's own 404/405/413 answer JSON too, and are logged like ours."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        plain = e.text and not e.text.startswith(f"{e.status}:")  # a message, not a stock page
        return reject(request, e.status, e.text if plain else e.reason)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _host_name(netloc: str) -> str:
    """"[::1]:8000" -> "::1", "localhost:8000" -> "localhost" (lower case)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


@web.middleware
async def check_origin(request: web.Request, handler):
    """Only this server's own pages may call it. The Host must name this machine as the
    server was bound (a DNS-rebinding page's Host names the attacker's domain), and a
    browser's Origin must be the server's own (or one --allow-origin names): 403 else."""
    config = request.app[CONFIG]
    hosts = config["hosts"]
    if hosts is not None and _host_name(request.host) not in hosts:
        return reject(request, 403, f"Host {request.host!r} is not this server")
    origin = request.headers.get("Origin")
    allowed = config["allow_origins"]
    if origin is not None and "*" not in allowed and origin not in allowed:
        own = origin.split("://", 1)[-1] == request.host
        if not own:
            return reject(request, 403, f"cross-origin request from {origin!r} refused "
                                        "(lsd serve --allow-origin lets one in)")
    return await handler(request)


@web.middleware
async def check_token(request: web.Request, handler):
    """With --token every request must carry it: X-LSD-Token or Authorization: Bearer
    header, ?token= (the page's first load; a cookie then covers its script), or the cookie."""
    token = request.app[CONFIG]["token"]
    if not token:
        return await handler(request)
    if not hmac.compare_digest(_given_token(request).encode(), token.encode()):
        return reject(request, 401, "missing or wrong token (add ?token=... to the URL)")
    response = await handler(request)
    if request.query.get("token"):
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def styles(request: web.Request) -> web.Response:
    return web.json_response({
        # the looks a user may pick: a style the model has not learnt is not offered
        "styles": [{"name": s.name, "prompts": list(s.prompts)} for s in STYLES.values()
                   if not s.not_learnt] + [{"name": k, "prompts": v} for k, v in
                                           looks_of(request.app[MODEL]).taught.items()],
        "default_prompt": request.app[CONFIG]["prompt"], "max_prompt": MAX_PROMPT})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "sessions": len(request.app[SESSIONS]),
                              "max_sessions": request.app[CONFIG]["max_sessions"]})


async def offer(request: web.Request) -> web.Response:
    app, config = request.app, request.app[CONFIG]
    sessions: dict[str, Session] = app[SESSIONS]
    body = await request.read()  # over client_max_size: 413 from aiohttp
    try:
        o = parse_offer(body, config["prompt"])
    except BadRequest as e:
        return reject(request, e.status, str(e))
    if len(sessions) >= config["max_sessions"]:
        n = config["max_sessions"]
        return reject(request, 503, f"server full: {n} of {n} sessions busy, try again later")
    # the session is in the table before the first await, so racing offers cannot overfill it
    sid = f"{next(config['ids']):04d}"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves the host
    stream = Stream(app[MODEL], o.prompt, config["sample"], backend=config["backend"],
                    out_size=config["out_size"])
    session = Session(sid, pc, stream, tag=o.tag, blend_frames=config["blend_frames"],
                      connect_timeout=config["connect_timeout"],
                      stats_interval=config["stats_interval"],
                      on_close=lambda s: sessions.pop(s.id, None), model_cores=config["model_cores"])
    sessions[sid] = session
    try:
        await pc.setRemoteDescription(RTCSessionDescription(o.sdp, "offer"))
        if not session.has_video:
            raise BadRequest("the offer sends no video the server can receive")
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as e:  # aiortc's parser raises many kinds; they all mean a bad offer
        why = str(e) if isinstance(e, BadRequest) else (
            f"unusable SDP ({type(e).__name__}{': ' if str(e) else ''}{e})")
        await session.close(f"bad offer: {why}")
        return reject(request, 400, f"bad offer: {why}")
    log.info("session %s from %s: prompt %r (%d of %d sessions)", sid, request.remote, o.prompt,
             len(sessions), config["max_sessions"])
    return web.json_response({"type": "answer", "sdp": pc.localDescription.sdp, "session": sid})


async def _close_sessions(app: web.Application) -> None:
    for session in list(app[SESSIONS].values()):
        await session.close("server shutting down")


def check_max_sessions(max_sessions: int) -> None:
    if max_sessions < 1:
        raise ValueError(f"--max-sessions must be >= 1, not {max_sessions}")


def make_app(checkpoint=None, *, model=None, max_sessions: int = 2, token: str | None = None,
             steps: int | None = None, prompt: str = DEFAULT_PROMPT,
             ice_addresses: list[str] | None = None, connect_timeout: float = 20.0,
             stats_interval: float = 1.0, blend_frames: int = 12,
             backend: str | None = None, model_cores: set[int] | None = None,
             hosts: tuple[str, ...] | None = LOOPBACK_NAMES,
             allow_origins: tuple[str, ...] = (), out_size: int | None = None) -> web.Application:
    """The server as an aiohttp app. Give a checkpoint directory or an already loaded model.
    `ice_addresses`: the host candidates offered (default: 127.0.0.1 + the machine's).
    `model_cores`: the cores sessions' model threads are pinned to (lsd.serve.cores).
    `hosts`: the names a request's Host may give (None: any; a server on a public address
    needs its token instead); `allow_origins`: other origins whose pages may call it."""
    check_max_sessions(max_sessions)
    use_host_addresses(ice_addresses)
    release_frames_on_marker()  # camera frames reach the model one frame interval sooner
    zero_playout_delay()  # and generated frames reach the screen without smoothing
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[json_errors, check_origin, check_token])
    app[MODEL] = model if model is not None else load(checkpoint)
    # a bad --steps fails now, not in the first session
    sample = app[MODEL].sample.but(steps=steps)
    app[CONFIG] = {"max_sessions": max_sessions, "token": token or None, "sample": sample,
                   "prompt": prompt, "connect_timeout": connect_timeout,
                   "stats_interval": stats_interval, "blend_frames": blend_frames,
                   "backend": backend, "model_cores": model_cores, "ids": itertools.count(1),
                   "hosts": None if hosts is None else {h.lower() for h in hosts},
                   "allow_origins": set(allow_origins), "out_size": out_size}
    app[SESSIONS] = {}
    # the graph is built now
    first = Stream(app[MODEL], prompt, sample, backend=backend, out_size=out_size)
    if first.backend.name != "eager":
        first.step(np.zeros((*first.size, 3), np.uint8))
    app[CONFIG]["backend"] = first.backend.name  # every session runs what was built
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/styles", styles)
    app.router.add_get("/health", health)
    app.router.add_post("/offer", offer)
    app.on_shutdown.append(_close_sessions)
    return app


def model_threads() -> int:
    """Torch threads for the model when serving: all cores but one, which the WebRTC video
    codecs and the event loop need (on 2 cores, two model threads fighting them for the
    CPU made a frame slower, not faster: docs/journal.md, the browser numbers)."""
    return max(1, (os.cpu_count() or 1) - 1)


def serve(checkpoint: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          max_sessions: int = 2, token: str | None = None, steps: int | None = None,
          certfile: str | None = None, keyfile: str | None = None, backend: str | None = None,
          threads: int | None = None, allow_origins: tuple[str, ...] = (),
          out_size: int | None = None) -> None:
    """Run the server until Ctrl-C."""
    from ..stream.runner import default_checkpoint

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, not {threads}")
    check_max_sessions(max_sessions)  # before anything changes (the thread count below)
    if not is_loopback(host) and not token:
        raise ValueError(f"listening on {host!r} (not loopback) needs --token: anyone who "
                         "can reach the port could use the model")
    if keyfile and not certfile:
        raise ValueError("--keyfile needs --certfile")
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    logging.basicConfig(level=logging.INFO, format="lsd serve: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not is_loopback(host):
        print(f"lsd serve: warning: listening on {host}, not only this machine; requests "
              "need the token" + ("" if certfile else ", and traffic is plain HTTP (browsers "
              "only give a page the camera over HTTPS or on localhost: use --certfile)"),
              file=sys.stderr)
    ssl_context = None
    if certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(certfile, keyfile)
    threads = threads or model_threads()
    cores = split_cores(threads)
    if cores:  # the event loop and aiortc's threads (started from it) stay off the model's cores
        pin_current_thread(cores[1])
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family)  # a taken port fails here
    model = load(ckpt)  # a missing or broken checkpoint fails here, before anything changes
    torch.set_num_threads(threads)  # before the graph is built: it takes this thread count
    print("lsd serve: building the model's graph (once)", file=sys.stderr, flush=True)
    # on loopback the Host must name this machine; elsewhere the token guards every request
    hosts = (*LOOPBACK_NAMES, host) if is_loopback(host) else None
    app = make_app(model=model, max_sessions=max_sessions, token=token, steps=steps,
                   backend=backend, model_cores=cores[0] if cores else None, hosts=hosts,
                   allow_origins=tuple(allow_origins), out_size=out_size)
    print(f"lsd serve: {url(host, sock.getsockname()[1], bool(ssl_context), token)}  "
          f"(checkpoint {ckpt}, at most {max_sessions} sessions)", flush=True)
    web.run_app(app, sock=sock, ssl_context=ssl_context, print=None,
                keepalive_timeout=IDLE_TIMEOUT)


def url(host: str, port: int, https: bool = False, token: str | None = None) -> str:
    """The address to open: every-interface binds shown as 127.0.0.1, IPv6 in brackets."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    query = f"?token={token}" if token else ""
    return f"{'https' if https else 'http'}://{shown}:{port}/{query}"
