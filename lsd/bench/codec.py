"""`lsd bench codec`: train one codec variant on random stills and report its held-out
reconstruction PSNR beside its encode/decode time in the compute dtype (lsd.precision), so codec designs are compared by
one command (the numbers behind the design doc's codec choice)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import AutoencoderConfig
from ..data.stills import still_frames
from ..machine import machine_name
from ..models import build_codec
from ..precision import decide
from ..train.autoencoder import reconstruction_psnr, train_codec
from .model_cost import time_ms


def bench_codec(channels: tuple[int, int] = (64, 128), latent_channels: int = 8, blocks: int = 1,
                steps: int = 1200, pool_frames: int = 6000, val_frames: int = 300,
                progress: bool = True) -> dict:
    cfg = AutoencoderConfig(channels=tuple(channels), latent_channels=latent_channels, blocks=blocks)
    pool = still_frames(pool_frames, seed=0)
    val = still_frames(val_frames, split="val")
    torch.manual_seed(0)
    codec = build_codec(cfg)
    t0 = time.time()
    losses = train_codec(codec, pool, steps, progress=progress)
    seconds = time.time() - t0
    psnr_val = reconstruction_psnr(codec, val)
    precision = decide("cpu")
    fast = codec.to(precision.dtype).eval()
    frame = torch.rand(1, 3, 128, 128).to(precision.dtype)
    with torch.no_grad():
        latent = fast.encode(frame)
        enc = time_ms(lambda: fast.encode(frame), 100, 10)
        dec = time_ms(lambda: fast.decode(latent), 100, 10)
    return {"channels": list(channels), "latent_channels": latent_channels, "blocks": blocks,
            "steps": steps, "train_s": round(seconds, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 5),
            "val_psnr_db": round(psnr_val, 2),
            "encode_ms_p50": round(float(np.median(enc)), 3),
            "decode_ms_p50": round(float(np.median(dec)), 3),
            "params": sum(p.numel() for p in codec.parameters()), **precision.to_dict(),
            "machine": machine_name(torch.get_num_threads())}
