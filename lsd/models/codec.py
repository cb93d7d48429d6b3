"""Frames <-> latents. Frames are float RGB in [0, 1], shaped (..., 3, H, W); latents are
(..., C, H/8, W/8), normalised per channel to zero mean and unit variance (the statistics
are measured on data after training, `calibrate`), which is the scale flow matching wants.

Two codecs share that interface:
- `ConvCodec`: space-to-depth (pixel unshuffle) then a few 3x3 convolutions at 1/4
  and 1/8 size, and the mirror image back; no normalisation layers (slow on CPU) and no
  attention, so one 128x128 frame encodes or decodes in about a millisecond in bf16;
- `PatchCodec`: pixel space, each 8x8 patch is a 192-channel latent pixel, no parameters.

A conv codec whose decoder sees the input (`sees_input: true`) decodes with the input frame
beside the latent: its features at 1/4 size join the decoder there, so hard edges the 16x16
latent blurs come back from the camera frame every output is generated from. The encoder is
unchanged (the latent space the denoiser works in stays the same); the frame branch starts
at zero, so such a codec made from a trained one first decodes exactly as it did
(`lsd decoder`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CodecConfig


class Codec(nn.Module):
    sees_input = False  # whether decode needs the input frame

    def __init__(self, latent_channels: int):
        super().__init__()
        self.latent_channels = latent_channels
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) in [-1, 1]
        raise NotImplementedError

    def _decode(self, z: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError  # -> (N, 3, H, W) in ~[-1, 1]; frame (N, 3, H, W) in [-1, 1]

    def encode_raw(self, frames: torch.Tensor) -> torch.Tensor:
        """The latent before normalisation (what `calibrate` measures)."""
        lead = frames.shape[:-3]
        z = self._encode(frames.reshape(-1, *frames.shape[-3:]) * 2 - 1)
        return z.reshape(*lead, *z.shape[1:])

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        z = self.encode_raw(frames)
        return (z - _channels(self.latent_mean, z)) / _channels(self.latent_std, z)

    def decode(self, latents: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Frames from latents; `frames` are the input frames (..., 3, H, W) in [0, 1] they
        were generated from: a decoder that sees the input needs them, the others ignore them."""
        z = latents * _channels(self.latent_std, latents) + _channels(self.latent_mean, latents)
        lead = z.shape[:-3]
        z = z.reshape(-1, *z.shape[-3:])
        if not self.sees_input:
            x = self._decode(z)
        elif frames is None:
            raise ValueError("this codec's decoder sees the input: decode(latents, frames=inputs)")
        else:
            x = self._decode(z, frames.reshape(-1, *frames.shape[-3:]) * 2 - 1)
        return ((x + 1) / 2).reshape(*lead, *x.shape[1:])

    @torch.no_grad()
    def calibrate(self, frames: torch.Tensor) -> None:
        """Set the per-channel latent statistics from a batch of frames (..., 3, H, W)."""
        z = self.encode_raw(frames).float()
        z = z.movedim(-3, 0).reshape(self.latent_channels, -1)
        self.latent_mean.copy_(z.mean(1))
        self.latent_std.copy_(z.std(1).clamp_min(1e-4))


def _channels(stat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return stat.to(like.dtype).view(-1, 1, 1)


class Residual(nn.Module):
    """x + conv(silu(x)): one 3x3 convolution per block keeps the codec cheap."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.silu(x))


class ConvCodec(Codec):
    def __init__(self, cfg: CodecConfig):
        super().__init__(cfg.latent_channels)
        c4, c8 = cfg.channels  # widths at 1/4 and 1/8 of the frame size
        lat = cfg.latent_channels
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(4), nn.Conv2d(48, c4, 3, padding=1),
            *[Residual(c4) for _ in range(cfg.blocks)],
            nn.PixelUnshuffle(2), nn.Conv2d(4 * c4, c8, 3, padding=1),
            *[Residual(c8) for _ in range(cfg.blocks)],
            nn.SiLU(), nn.Conv2d(c8, lat, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(lat, c8, 3, padding=1),
            *[Residual(c8) for _ in range(cfg.blocks)],
            nn.SiLU(), nn.Conv2d(c8, 4 * c4, 3, padding=1), nn.PixelShuffle(2),
            *[Residual(c4) for _ in range(cfg.blocks)],
            nn.SiLU(), nn.Conv2d(c4, 48, 3, padding=1), nn.PixelShuffle(4))
        self.sees_input = cfg.sees_input
        if cfg.sees_input:
            self.frame_in = nn.Sequential(
                nn.PixelUnshuffle(4), nn.Conv2d(48, c4, 3, padding=1), Residual(c4), Residual(c4),
                nn.SiLU(), nn.Conv2d(c4, c4, 1))
            self.frame_mix = Residual(c4)
            for conv in (self.frame_in[-1], self.frame_mix.conv):  # start as the plain decoder
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.quarter = 4 + cfg.blocks  # decoder layers before the 1/4-size stage

    def _encode(self, x):
        return self.encoder(x)

    def _decode(self, z, frame=None):
        if frame is None:
            return self.decoder(z)
        h = z  # one pass over the layers: no Sequential slices built on every frame
        for i, layer in enumerate(self.decoder):
            if i == self.quarter:
                h = self.frame_mix(h + self.frame_in(frame))
            h = layer(h)
        return h


class PatchCodec(Codec):
    """Pixel space: the 'latent' of a frame is its 8x8 patches stacked on channels."""

    def __init__(self, cfg: CodecConfig):
        super().__init__(3 * cfg.factor ** 2)
        self.factor = cfg.factor

    def _encode(self, x):
        return F.pixel_unshuffle(x, self.factor)

    def _decode(self, z, frame=None):
        return F.pixel_shuffle(z, self.factor)


def build_codec(cfg: CodecConfig) -> Codec:
    return {"conv": ConvCodec, "patches": PatchCodec}[cfg.kind](cfg)


def upgraded_names(tensors: dict) -> dict:
    """An older checkpoint's weights in today's names (the decoder's input branch was
    called guide_in / guide_mix)."""
    old = {"codec.guide_in.": "codec.frame_in.", "codec.guide_mix.": "codec.frame_mix."}
    out = {}
    for key, value in tensors.items():
        for prefix, new in old.items():
            if key.startswith(prefix):
                key = new + key[len(prefix):]
        out[key] = value
    return out
