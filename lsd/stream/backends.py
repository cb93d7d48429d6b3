"""What runs a stream's frames: the one place that picks the backend.

- `openvino`: the frame as one OpenVINO graph (lsd.stream.openvino_step), the CPU default:
  the fastest measured on both kinds of CPU (README, "How fast");
- `compile`: torch.compile (inductor) of the encoder, denoiser and decoder;
- `eager`: plain torch, the fallback that always works (and a GPU's path: CUDA graphs).
`auto` is openvino on a CPU where it is installed, else eager. `--backend` (or
`LSD_BACKEND`) overrides the choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

ENV = "LSD_BACKEND"
BACKENDS = ("eager", "compile", "openvino")
CHOICES = ("auto", *BACKENDS)


@dataclass(frozen=True)
class Backend:
    name: str
    reason: str

    def to_dict(self) -> dict:
        return {"backend": self.name, "backend_reason": self.reason}


def parse_backend(name: str | None, where: str = "backend") -> str:
    name = (name or "auto").strip().lower()
    if name not in CHOICES:
        raise ValueError(f"{where} must be one of {', '.join(CHOICES)}, not {name!r}")
    return name


def decide_backend(device: str | torch.device = "cpu", asked: str | None = None,
                   openvino: bool | None = None) -> Backend:
    """The backend for a stream on `device`, and why. asked: auto or a backend (None or
    auto: LSD_BACKEND, else decide); openvino: whether it is installed (None: look)."""
    from .openvino_step import available

    device = torch.device(device)
    asked = parse_backend(asked)
    reason = f"asked for {asked}"
    if asked == "auto" and os.environ.get(ENV):
        asked = parse_backend(os.environ[ENV], ENV)
        reason = f"{ENV}={asked}"
    openvino = available() if openvino is None else openvino
    if asked == "openvino":
        if device.type != "cpu":
            raise ValueError(f"the openvino backend runs on the CPU, not on {device.type}")
        if not openvino:
            raise ValueError("the openvino backend needs the openvino and onnx packages "
                             "(pip install openvino onnx)")
    if asked != "auto":
        return Backend(asked, reason)
    if device.type != "cpu":
        graphs = " with CUDA graphs" if device.type == "cuda" else ""
        return Backend("eager", f"{device.type}: torch{graphs}")
    if openvino:
        return Backend("openvino", "CPU: one OpenVINO graph a frame, the fastest measured")
    return Backend("eager", "CPU without openvino installed: plain torch")


def streamed_with(device: str | torch.device = "cpu") -> dict:
    """The dtype and backend a stream on `device` runs in when not told (as `Stream`
    decides them), and why: for the reports of benches that run many streams."""
    from ..precision import decide

    return {**decide(device).to_dict(), **decide_backend(device).to_dict()}
