"""The serve jitter buffer: a video frame goes to the decoder when its marked last packet
is in, not when the next frame starts (lsd.serve.jitter)."""

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from lsd.serve.jitter import FrameEndJitterBuffer, release_frames_on_marker


def packet(seq: int, timestamp: int, marker: bool = False) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = bytes([seq])  # as the receiver sets it: the depayloaded bytes
    return p


def test_a_frame_is_released_on_its_marked_last_packet():
    buf = FrameEndJitterBuffer(capacity=16, is_video=True)
    assert buf.add(packet(0, 100))[1] is None
    assert buf.add(packet(1, 100))[1] is None
    frame = buf.add(packet(2, 100, marker=True))[1]
    assert frame is not None and frame.data == bytes([0, 1, 2]) and frame.timestamp == 100
    # aiortc's own buffer still holds the same frame: it waits for the next one to begin
    stock = JitterBuffer(capacity=16, is_video=True)
    assert all(stock.add(packet(s, 100, s == 2))[1] is None for s in range(3))
    assert stock.add(packet(3, 200))[1].data == bytes([0, 1, 2])


def test_a_gap_waits_and_a_lost_marker_falls_back_to_the_next_frame():
    buf = FrameEndJitterBuffer(capacity=16, is_video=True)
    assert buf.add(packet(0, 100))[1] is None
    assert buf.add(packet(2, 100, marker=True))[1] is None  # packet 1 missing: wait
    frame = buf.add(packet(1, 100))[1]  # the retransmission completes it
    assert frame.data == bytes([0, 1, 2])
    assert buf.add(packet(3, 200))[1] is None  # frame 200's marked packet never comes
    assert buf.add(packet(4, 200))[1] is None
    frame = buf.add(packet(5, 300))[1]  # frame 300 begins: 200 is complete after all
    assert frame.data == bytes([3, 4]) and frame.timestamp == 200
    assert buf.add(packet(6, 300, marker=True))[1].data == bytes([5, 6])


def test_receivers_get_it_for_video_only(monkeypatch):
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "JitterBuffer", aiortc.rtcrtpreceiver.JitterBuffer)
    release_frames_on_marker()
    make = aiortc.rtcrtpreceiver.JitterBuffer
    assert type(make(capacity=512, is_video=True)) is FrameEndJitterBuffer
    assert type(make(capacity=16, prefetch=4)) is JitterBuffer
