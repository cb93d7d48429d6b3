"""Test-wide defaults."""

import os

import av
import numpy as np
import pytest

# Streams in the default set run on plain torch: building an OpenVINO graph for each of
# the many small test models would cost seconds apiece. test_openvino.py runs that backend
# (and checks it against this one); an LSD_BACKEND already set wins.
os.environ.setdefault("LSD_BACKEND", "eager")


@pytest.fixture
def sideways_clip():
    """write(path, upright_frames, degrees): a clip stored as a phone stores a portrait one,
    each frame turned on its side and the turn that shows it upright in the display matrix
    (PyAV's degrees count counter-clockwise, as VideoFrame.rotation reads them back)."""
    def write(path, frames, degrees):
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stored = [np.ascontiguousarray(np.rot90(f, -round(degrees / 90))) for f in frames]
            stream.height, stream.width = stored[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "0"}
            stream.set_display_rotation(degrees)
            for f in stored:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            container.mux(stream.encode())
    return write
