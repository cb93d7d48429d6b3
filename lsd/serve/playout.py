"""Ask the browser to show each generated frame as soon as it is decoded.

A WebRTC receiver smooths video: Chromium holds each frame until a render time it derives
from the stream's jitter plus a fixed render delay (the browser test read ~8 ms a frame in
its jitter buffer). For a generated stream that wait buys nothing: the frame is already as
late as it will be, and the next one replaces it. The playout-delay RTP header extension
lets a sender set the receiver's minimum and maximum playout delay; min = max = 0 asks it
to decode and render every frame the moment it is complete.

aiortc does not know the extension. `zero_playout_delay()` (process-wide, like
`jitter.release_frames_on_marker`) adds it to the video extensions aiortc answers with, so
it is used only when the browser offers it, and then writes it into every video packet
the server sends. Packets to a browser that did not offer it are unchanged.
"""

from __future__ import annotations

import aiortc.rtp
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import HeaderExtensionsMap, pack_header_extensions, unpack_header_extensions

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
# 12 bits of minimum delay, then 12 bits of maximum, in units of 10 ms: both zero
ZERO_DELAY = bytes(3)

_configure, _set = HeaderExtensionsMap.configure, HeaderExtensionsMap.set


def _configure_with_playout_delay(self: HeaderExtensionsMap, parameters) -> None:
    _configure(self, parameters)
    self.playout_delay_id = next((e.id for e in parameters.headerExtensions
                                  if e.uri == PLAYOUT_DELAY_URI), None)


def _set_with_playout_delay(self: HeaderExtensionsMap, values) -> tuple[int, bytes]:
    profile, data = _set(self, values)
    ext_id = getattr(self, "playout_delay_id", None)
    if not ext_id:
        return profile, data
    extensions = unpack_header_extensions(profile, data) if data else []
    return pack_header_extensions(extensions + [(ext_id, ZERO_DELAY)])


def zero_playout_delay() -> None:
    if not any(e.uri == PLAYOUT_DELAY_URI for e in HEADER_EXTENSIONS["video"]):
        # the id is the offer's (aiortc answers with the remote's ids); this one is unused
        HEADER_EXTENSIONS["video"].append(RTCRtpHeaderExtensionParameters(id=6, uri=PLAYOUT_DELAY_URI))
    aiortc.rtp.HeaderExtensionsMap.configure = _configure_with_playout_delay
    aiortc.rtp.HeaderExtensionsMap.set = _set_with_playout_delay
