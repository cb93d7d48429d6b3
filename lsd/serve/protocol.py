"""What clients may send: the offer body (HTTP) and control messages (data channel).

Everything a client sends is checked here, before it reaches aiortc or a Stream, so a bad
request gets one clear message. `BadRequest.status` is the HTTP status to answer with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..stream.engine import MAX_PROMPT
from ..stream.prompt_mix import parse_mix

MAX_BODY = 64 * 1024  # bytes; a browser's offer with its candidates is a few kB
MAX_MESSAGE = 4 * 1024  # bytes of one data-channel message


class BadRequest(ValueError):
    """A client error: `status` is the HTTP status (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class BadPrompt(BadRequest):
    """A prompt that is not a string or too long: the user's typing, not a broken client."""


@dataclass(frozen=True)
class Offer:
    sdp: str
    prompt: str
    tag: bool  # the page stamps a frame counter that the server copies to the output


def check_prompt(text) -> str:
    if not isinstance(text, str):
        raise BadPrompt("prompt must be a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\udfff") is no text the model can read
        raise BadPrompt("prompt is not valid Unicode text") from None
    text = " ".join(text.split())
    if len(text) > MAX_PROMPT:
        raise BadPrompt(f"prompt too long: {len(text)} characters (at most {MAX_PROMPT})")
    try:
        parse_mix(text)  # "a + b", "a:0.7, b:0.3": a mix the stream can make
    except ValueError as e:
        raise BadPrompt(str(e)) from None
    return text


def _json_object(data: bytes | str, what: str) -> dict:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # thousands of nested [ recurse
        raise BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return obj


def parse_offer(body: bytes, default_prompt: str = "") -> Offer:
    """{"type": "offer", "sdp": "v=0...", "prompt": "...", "tag": true} -> Offer."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"request body over {MAX_BODY} bytes", 413)
    obj = _json_object(body, "offer")
    if obj.get("type") != "offer":
        raise BadRequest('"type" must be "offer"')
    sdp = obj.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadRequest('"sdp" must be an SDP offer (a string starting with "v=0")')
    if "m=video" not in sdp:
        raise BadRequest("the offer has no video track: send the camera")
    prompt = check_prompt(obj.get("prompt", default_prompt))
    return Offer(sdp, prompt or default_prompt, bool(obj.get("tag", False)))


def parse_control(message) -> tuple[str, str]:
    """A data-channel message -> ("prompt", text). Unknown or malformed: BadRequest."""
    if isinstance(message, bytes) or len(message) > MAX_MESSAGE:
        raise BadRequest("control messages are JSON text under 4 kB")
    obj = _json_object(message, "control message")
    if obj.get("type") == "prompt":
        return "prompt", check_prompt(obj.get("text"))
    raise BadRequest(f"unknown control message type {obj.get('type')!r}")
