"""The synthetic paired-video world: inputs, styled targets, exact optical flow."""

from .paired import Sample, clip, paired_stream, world_config
from .pictures import VAL_SEED_START, split_of
from .world import World, WorldConfig, WorldFrame

__all__ = ["Sample", "clip", "paired_stream", "world_config", "VAL_SEED_START", "split_of",
           "World", "WorldConfig", "WorldFrame"]
