"""The compute dtype for a device: the one place that decides it.

On a CPU, bf16 is fast only where the chip runs it natively (AVX512-BF16 or AMX: Zen 4,
Sapphire Rapids and later); elsewhere (AVX2-only chips, most laptops and desktops) torch
emulates it, about 90 times slower than fp32. So a CPU gets bf16 only when its flags say
native bf16 *and* a one-off matmul probe measures bf16 faster than fp32 (a hypervisor or
`ONEDNN_MAX_CPU_ISA` can hide the instructions the flags advertise); else fp32. CUDA gets
bf16. `--dtype` (or `LSD_DTYPE`) overrides the choice. Checkpoints keep their storage
dtype; `lsd.load(..., dtype=)` casts them to the compute dtype.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import torch

ENV = "LSD_DTYPE"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CHOICES = ("auto", *DTYPES)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags in /proc/cpuinfo
PROBE_SIZE = 256  # the probe's square matmul: 33 MFLOP, ~35 ms where bf16 is emulated
MIN_BF16_SPEEDUP = 1.2  # bf16 must beat fp32 by this much to be worth its rounding
# what trained checkpoints store: half fp32's bytes (each shipped model under 40 MB);
# a storage format, not a compute dtype: loading casts to the compute dtype
STORAGE = torch.bfloat16

_asked: tuple[str, str] | None = None  # (dtype name, where it was asked): the command line's


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def to_dict(self) -> dict:
        """What a summary or --json says about it."""
        return {"dtype": self.name, "dtype_reason": self.reason}


def cpuinfo(*fields: str) -> str | None:
    """The first of these /proc/cpuinfo fields there is, or None (no such file, or field)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(fields):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (x86 `flags`, ARM `Features`), or None where unknown."""
    flags = cpuinfo("flags", "Features")
    return None if flags is None else set(flags.split())


def _rate(dtype: torch.dtype, reps: int, warmup: int = 3) -> float:
    """GFLOP/s of a PROBE_SIZE matmul in `dtype`, the best of `reps` after `warmup`."""
    a = torch.randn(PROBE_SIZE, PROBE_SIZE).to(dtype)
    for _ in range(warmup):  # the first products build (JIT) the kernels
        a @ a
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * PROBE_SIZE ** 3 / max(best, 1e-9) / 1e9


@functools.cache
def bf16_speedup() -> float:
    """bf16 matmul rate over fp32's on this CPU, measured once per process: ~40 ms where
    bf16 is emulated (one product shows it), ~10 ms where it is native."""
    fp32 = _rate(torch.float32, 10)
    bf16 = _rate(torch.bfloat16, 1, warmup=1)
    if bf16 <= fp32 / 3:  # looks emulated; so can a cold first use (AMX's kernels built, a
        bf16 = _rate(torch.bfloat16, 1, warmup=3)  # core another process just left): again
    if bf16 > fp32 / 3:  # not plainly emulated: measure it as carefully as fp32
        bf16 = _rate(torch.bfloat16, 10)
    return bf16 / fp32


def parse_dtype(name: str | None, where: str = "dtype") -> str:
    """A --dtype / LSD_DTYPE value, checked: auto, float32 or bfloat16 (None: auto)."""
    name = (name or "auto").strip().lower()
    aliases = {"fp32": "float32", "f32": "float32", "bf16": "bfloat16"}
    name = aliases.get(name, name)
    if name not in CHOICES:
        raise ValueError(f"{where} must be one of {', '.join(CHOICES)}, not {name!r}")
    return name


def ask(name: str | None, where: str = "--dtype") -> None:
    """Make `name` (auto, float32, bfloat16) this process's choice for every later
    `decide` not told otherwise: the command line's --dtype, for every model a command runs."""
    global _asked
    name = parse_dtype(name)
    _asked = None if name == "auto" else (name, where)


def decide(device: str | torch.device = "cpu", asked: str | None = None, *,
           flags: set[str] | None | bool = True, speedup=None) -> Precision:
    """The compute dtype for `device`, and why.

    asked: auto, float32 or bfloat16 (None or auto: what `ask` was told, else LSD_DTYPE,
    else decide).
    flags and speedup are for tests: the CPU's flags (True: read them) and a callable
    giving bf16's measured matmul speedup (None: bf16_speedup)."""
    asked = parse_dtype(asked)
    if asked != "auto":
        return Precision(DTYPES[asked], f"asked for {asked}")
    if _asked is not None:
        return Precision(DTYPES[_asked[0]], f"{_asked[1]} {_asked[0]}")
    env = parse_dtype(os.environ.get(ENV), ENV)
    if env != "auto":
        return Precision(DTYPES[env], f"{ENV}={env}")
    device = torch.device(device)
    if device.type == "cuda":
        return Precision(torch.bfloat16, "CUDA: bf16 tensor cores")
    if device.type != "cpu":
        return Precision(torch.float32, f"{device.type}: fp32")
    flags = cpu_flags() if flags is True else flags
    if flags is not None:
        native = sorted(set(NATIVE_BF16_FLAGS) & flags)
        if not native:
            return Precision(torch.float32, "this CPU has no native bf16 (no avx512_bf16 or "
                             "amx_bf16): bf16 would be emulated, fp32 is faster")
    else:
        native = []
    ratio = (speedup or bf16_speedup)()
    if ratio < MIN_BF16_SPEEDUP:
        return Precision(torch.float32, f"bf16 matmul measured {ratio:.2f}x fp32 here: fp32")
    why = "native bf16 (" + ", ".join(native) + "), " if native else ""
    return Precision(torch.bfloat16, f"{why}bf16 matmul measured {ratio:.1f}x fp32")


def autocast(device: str | torch.device, precision: Precision):
    """Mixed precision for training in `precision.dtype` (fp32: off, no autocast at all)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=precision.dtype,
                          enabled=precision.dtype != torch.float32)
