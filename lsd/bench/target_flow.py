"""Do the styles' targets move with the scene? Warp error of each style's target under the
exact flow, away from occlusions, beside the same with the flow one pixel off."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data import paired_stream
from ..machine import machine_name
from ..metrics import warp_error
from ..styles import style_names

OCCLUSION_MARGIN = 2  # px the occlusion mask is grown by: "away from occlusions"
OFF_BY = 1.0  # px added to the flow for the comparison column


def bench_target_flow(seeds: int = 3, frames: int = 40, size: int = 128) -> dict:
    per_style, input_err = {}, []
    for name in style_names():
        exact, off = [], []
        for seed in range(11, 11 + seeds):
            prev = None
            for s in paired_stream(seed, name, size=size, frames=frames):
                if prev is not None and not prev.occluded.all():
                    mask = ndimage.binary_dilation(prev.occluded, iterations=OCCLUSION_MARGIN)
                    exact.append(warp_error(prev.target, s.target, prev.flow, mask))
                    off.append(warp_error(prev.target, s.target, prev.flow + OFF_BY, mask))
                    input_err.append(warp_error(prev.input, s.input, prev.flow, mask))
                prev = s
        per_style[name] = {"exact_flow": round(float(np.mean(exact)), 2),
                           "flow_off_1px": round(float(np.mean(off)), 2)}
    return {"per_style": per_style, "input_exact_flow": round(float(np.mean(input_err)), 2),
            "seeds": seeds, "frames": frames, "size": size, "units": "mean abs error, 0-255",
            "machine": machine_name()}
