"""Hand a received video frame to the decoder as soon as its last packet is in.

aiortc's jitter buffer knows a video frame is complete only when a packet of the *next*
frame arrives (its timestamp differs), so every camera frame waits one frame interval (33
ms at 30 fps) before the model sees it. The sender marks a frame's last packet (the RTP
marker bit, RFC 7741 for VP8, RFC 6184 for H.264): `FrameEndJitterBuffer` releases a frame
when that packet arrives and every packet before it is there. A frame whose marked packet
was lost is still released the old way, when the next frame begins.

`release_frames_on_marker()` makes aiortc's receivers build their video buffers from this
class (process-wide, like `ice.use_host_addresses`); audio buffers stay aiortc's own.
"""

from __future__ import annotations

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

_original = aiortc.rtcrtpreceiver.JitterBuffer


class FrameEndJitterBuffer(JitterBuffer):
    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:  # a gap: wait for the packet (or its retransmission)
                return None
            if packets and packet.timestamp != packets[0].timestamp:
                return self._release(packets, count)  # the marked packet was lost
            packets.append(packet)
            if packet.marker:
                return self._release(packets, count + 1)
        return None

    def _release(self, packets: list, count: int) -> JitterFrame:
        self.remove(count)
        return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packets[0].timestamp)


def _jitter_buffer(capacity: int, prefetch: int = 0, is_video: bool = False) -> JitterBuffer:
    kind = FrameEndJitterBuffer if is_video else _original
    return kind(capacity, prefetch=prefetch, is_video=is_video)


def release_frames_on_marker() -> None:
    aiortc.rtcrtpreceiver.JitterBuffer = _jitter_buffer
