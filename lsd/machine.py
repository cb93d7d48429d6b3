"""Name the machine a measurement was taken on, so every number says where it came from."""

from __future__ import annotations

import os
import platform

import torch

from .precision import cpu_flags, cpuinfo

# the first flag a CPU has names its kind (fastest first)
CPU_KINDS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"),
             ("avx2", "AVX2"), ("asimd", "ARM NEON"))


def cpu_model() -> str:
    return cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_kind() -> str:
    """What matters for speed: the widest vector unit and native bf16, from the CPU's flags,
    and what torch's kernels use where that is less (ATEN_CPU_CAPABILITY caps it)."""
    flags = cpu_flags() or set()
    kind = next((name for flag, name in CPU_KINDS if flag in flags), "no AVX2")
    used = torch.backends.cpu.get_cpu_capability()
    capped = used.startswith("AVX2") and flags & {"avx512f", "amx_bf16"}
    return f"{kind}, run as {used}" if capped else kind


def machine_name(threads: int | None = None, device: str = "cpu") -> str:
    used = f", {threads} thread{'s' if threads != 1 else ''} used" if threads else ""
    host = f"{cpu_model()} ({cpu_kind()}, {os.cpu_count()} cores{used})"
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} on {host}"
    return host
