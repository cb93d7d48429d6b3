"""Closed-form motion: every position, angle and scale is a smooth function of time, so
any frame can be rendered directly and the flow between two frames is exact.

Transforms are 3x3 homogeneous matrices acting on column vectors (x, y, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def affine(linear: np.ndarray, offset) -> np.ndarray:
    m = np.eye(3)
    m[:2, :2] = linear
    m[:2, 2] = offset
    return m


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map point arrays (x, y) through the affine matrix m."""
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


@dataclass(frozen=True)
class Wobble:
    """A smooth, bounded, endless 1-D path: base + sum of sinusoids (+ a constant rate)."""

    base: float
    amplitudes: tuple[float, ...] = ()
    frequencies: tuple[float, ...] = ()  # radians per frame
    phases: tuple[float, ...] = ()
    rate: float = 0.0  # per frame, for unbounded quantities such as a spin angle

    @staticmethod
    def random(rng: np.random.Generator, base: float, amplitude: float, freq: tuple[float, float],
               terms: int = 2, rate: float = 0.0) -> "Wobble":
        amps = tuple(float(a) for a in rng.uniform(0.3, 1.0, terms) * amplitude / terms)
        freqs = tuple(float(f) for f in rng.uniform(*freq, terms))
        phases = tuple(float(p) for p in rng.uniform(0, 2 * np.pi, terms))
        return Wobble(base, amps, freqs, phases, rate)

    def __call__(self, t: float) -> float:
        v = self.base + self.rate * t
        for a, f, p in zip(self.amplitudes, self.frequencies, self.phases):
            v += a * np.sin(f * t + p)
        return float(v)


@dataclass(frozen=True)
class Shake:
    """Short camera-shake bursts: a fast oscillation under a sin^2 envelope."""

    starts: tuple[float, ...]
    durations: tuple[float, ...]
    amplitudes: tuple[float, ...]  # in screen units (fraction of the short side)
    frequency: float = 1.9  # radians per frame: a few frames per swing
    phase: float = 0.0

    @staticmethod
    def random(rng: np.random.Generator, length: int, rate: float) -> "Shake":
        n = int(rng.poisson(rate * length))
        starts = tuple(float(s) for s in np.sort(rng.uniform(0, max(length - 1, 1), n)))
        return Shake(
            starts,
            tuple(float(d) for d in rng.uniform(8, 20, n)),
            tuple(float(a) for a in rng.uniform(0.01, 0.03, n)),
            float(rng.uniform(1.5, 2.4)),
            float(rng.uniform(0, 2 * np.pi)),
        )

    def __call__(self, t: float) -> tuple[float, float]:
        dx = dy = 0.0
        for s, d, a in zip(self.starts, self.durations, self.amplitudes):
            u = (t - s) / d
            if 0.0 < u < 1.0:
                env = a * np.sin(np.pi * u) ** 2
                dx += env * np.sin(self.frequency * t + self.phase)
                dy += env * np.cos(1.3 * self.frequency * t + self.phase)
        return dx, dy
