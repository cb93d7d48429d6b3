"""Structured pruning of the denoiser: whole attention heads and MLP channels leave their
block, so every matrix stays dense, just smaller. torch-pruning does the tensor surgery on
each Linear (weights, biases and their gradients); which rows belong to a head, the age-bias
rows and the config that rebuilds the pruned shape are ours.

A head is `head_dim` (a multiple of the alignment) wide, so dropping heads keeps the
attention width aligned; MLP channels are dropped in multiples of the alignment.
"""

from __future__ import annotations

import dataclasses

import torch
import torch_pruning as tp

from .lsd_model import LSDModel


def prune_block(model: LSDModel, index: int, drop_heads: list[int], drop_channels: list[int]) -> None:
    """Remove heads `drop_heads` and MLP hidden channels `drop_channels` from block `index`
    in place; `model.config` is updated to match (see `pruned_config`)."""
    den = model.denoiser
    block, hd = den.blocks[index], den.cfg.head_dim
    attn = block.attn
    drop_heads = sorted(set(drop_heads))
    if drop_heads:
        if len(drop_heads) >= attn.heads:
            raise ValueError(f"block {index}: cannot drop all {attn.heads} heads")
        keep = [h for h in range(attn.heads) if h not in drop_heads]
        width = attn.heads * hd
        head_cols = [h * hd + j for h in drop_heads for j in range(hd)]
        # qkv's output rows are laid out (q|k|v, head, head_dim); proj reads (head, head_dim)
        tp.prune_linear_out_channels(attn.qkv, [part * width + c for part in range(3) for c in head_cols])
        tp.prune_linear_in_channels(attn.proj, head_cols)
        with torch.no_grad():  # the kept heads' age biases move to the first rows
            rows = den.age_bias[index]
            kept = rows[keep].clone()
            rows.zero_()
            rows[: len(keep)] = kept
        attn.heads = len(keep)
    if drop_channels:
        if len(set(drop_channels)) >= block.mlp[0].out_features:
            raise ValueError(f"block {index}: cannot drop every MLP channel")
        tp.prune_linear_out_channels(block.mlp[0], sorted(set(drop_channels)))
        tp.prune_linear_in_channels(block.mlp[2], sorted(set(drop_channels)))
    cfg = pruned_config(model)
    model.config = dataclasses.replace(model.config, denoiser=cfg)
    den.cfg = cfg


def pruned_config(model: LSDModel):
    """The denoiser config that builds the model's present shape (per-block widths)."""
    den = model.denoiser
    return dataclasses.replace(den.cfg, block_heads=tuple(b.attn.heads for b in den.blocks),
                               block_mlp=tuple(b.mlp[0].out_features for b in den.blocks))
