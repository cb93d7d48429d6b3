"""Growing a trained denoiser: deeper, or with a choice input. New blocks go
after the trained ones and start as the identity (adaLN-Zero: their gates are zero), so the
grown model computes exactly what the trained one did, and training goes on from there with
the extra capacity (`lsd train --init-from DIR` with a config whose only change is a larger
denoiser.depth). A choice input (denoiser.choice) starts with a zero projection: it adds nothing at first."""

from __future__ import annotations

import dataclasses

import torch

from .lsd_model import LSDModel


def grown_state(start: LSDModel, fresh: LSDModel) -> dict[str, torch.Tensor]:
    """The weights of `fresh` (a freshly initialised model, as deep as `start` or deeper)
    with every trained tensor of `start` in place; new blocks keep their fresh,
    identity-starting weights. At equal depth this is a plain copy."""
    have, want = start.config, fresh.config
    same = dataclasses.replace(want, denoiser=dataclasses.replace(
        want.denoiser, depth=have.denoiser.depth, choice=have.denoiser.choice))
    if (same != have or want.denoiser.depth < have.denoiser.depth
            or (have.denoiser.choice and not want.denoiser.choice)
            or have.denoiser.block_heads or have.denoiser.block_mlp):
        raise ValueError("model config differs from the start model's in more than a larger "
                         "denoiser.depth or an added denoiser.choice "
                         "(an unpruned denoiser can only be grown)")
    state = {k: v.float() for k, v in fresh.state_dict().items()}
    for key, value in start.state_dict().items():
        if key == "denoiser.age_bias":  # the new layers' rows stay 0
            state[key][: value.shape[0]] = value.float()
        else:
            state[key] = value.float()
    return state
