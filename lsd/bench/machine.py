"""Name the machine a measurement was taken on, so every number says where it came from."""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(threads: int | None = None, device: str = "cpu") -> str:
    used = f", {threads} thread{'s' if threads != 1 else ''} used" if threads else ""
    host = f"{cpu_model()} ({os.cpu_count()} cores{used})"
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} on {host}"
    return host


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with torch on `threads` threads (None or 0: as it is), then put the count
    back: a bench called from a library or a test must not change the caller's."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
