"""Name the machine a measurement was taken on, so every number says where it came from."""

from __future__ import annotations

import os
import platform

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
