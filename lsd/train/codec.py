"""Training the codec: reconstruct world frames and styled targets.

Loss: L1 + MSE on pixels. The decoder is trained on slightly noisy latents (LATENT_NOISE of
the latent's own spread), because at inference it decodes what the denoiser made, which is
never exactly an encoder output; a tiny L2 pull on the latent keeps its scale from
wandering. After training, `calibrate` measures the latent statistics used to normalise
latents for flow matching.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..metrics import psnr
from ..models.codec import Codec
from ..precision import autocast, decide
from .clips import to_frames, to_uint8

LATENT_NOISE = 0.1
LATENT_L2 = 1e-4


def codec_loss(codec: Codec, x: torch.Tensor, generator: torch.Generator | None = None):
    z = codec.encode_raw(x)
    noise = torch.randn(z.shape, generator=generator).to(z)
    noisy = z + LATENT_NOISE * z.detach().std() * noise
    recon = (codec._decode(noisy) + 1) / 2
    loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + LATENT_L2 * z.pow(2).mean()
    return loss


def train_codec(codec: Codec, frames: np.ndarray, steps: int, batch: int = 32, lr: float = 2e-3,
                seed: int = 0, progress: bool = True) -> list[float]:
    """Train on a pool of (N, H, W, 3) uint8 frames (random batches, random flips), then
    calibrate the latent statistics on up to 1024 of them. Returns the loss per step."""
    precision = decide("cpu")
    g = torch.Generator().manual_seed(seed)
    pool = to_frames(frames)
    opt = torch.optim.AdamW(codec.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    codec.train()
    losses = []
    bar = tqdm(range(steps), desc="codec", disable=not progress)
    for _ in bar:
        x = pool[torch.randint(len(pool), (batch,), generator=g)]
        flip = torch.rand(batch, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        with autocast("cpu", precision):
            loss = codec_loss(codec, x, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    codec.eval()
    codec.calibrate(pool[:1024])
    return losses


@torch.no_grad()
def reconstruction_psnr(codec: Codec, frames: np.ndarray, batch: int = 64) -> float:
    """Mean PSNR (dB) of decode(encode(frame)) over uint8 frames, as a viewer would see it
    (rounded to 8 bits)."""
    scores, precision = [], decide("cpu")
    for i in range(0, len(frames), batch):
        x = to_frames(frames[i:i + batch])
        with autocast("cpu", precision):
            recon = codec.decode(codec.encode(x), x).float()
        scores += [psnr(a, b) for a, b in zip(frames[i:i + batch], to_uint8(recon))]
    return float(np.mean(scores))
