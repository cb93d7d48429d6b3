"""Test-wide defaults."""

import os

# Streams in the default set run on plain torch: building an OpenVINO graph for each of
# the many small test models would cost seconds apiece. test_openvino.py runs that backend
# (and checks it against this one); an LSD_BACKEND already set wins.
os.environ.setdefault("LSD_BACKEND", "eager")
