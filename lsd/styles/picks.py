"""A stream's picks: the random choices a memory style makes once per stream (pop_art's
four colours out of twelve), drawn from the stream's seed by the one function that both
the synthetic world's renderer and the streaming engine call.

A model with a choice input (denoiser.choice) is told the picks as a code on every frame,
so it need not invent a choice from noise at frame 0 and then copy it through a chain of
its own outputs. In training the synthetic world tells it the picks it drew for the
target; a stream draws its own from its seed and keeps them for every frame and prompt.
"""

from __future__ import annotations

import numpy as np

OPTIONS = 12  # each pick is one of this many options
PICKS = 4  # distinct options picked per stream, in order
CODE_SIZE = PICKS * OPTIONS


def stream_picks(seed: int) -> np.ndarray:
    """(PICKS,) distinct option indices in random order, from the seed alone."""
    rng = np.random.default_rng([seed, 0x909])
    return rng.choice(OPTIONS, PICKS, replace=False)


def null_code() -> np.ndarray:
    """A code that names no pick: every option of every pick at 1/OPTIONS, the mean of all
    streams' codes. Through the model's linear projection it moves the prompt to the middle
    of all streams' told prompts, a prompt the model has in effect seen in training (a zero
    code, the projection's starting point, it has not). Choice guidance compares against
    it; choice_dropout trains on it."""
    return np.full(CODE_SIZE, 1.0 / OPTIONS, np.float32)


def picks_code(seed: int) -> np.ndarray:
    """The picks as a model is told them: one one-hot row of OPTIONS per pick, flattened
    to (CODE_SIZE,) float32."""
    code = np.zeros((PICKS, OPTIONS), np.float32)
    code[np.arange(PICKS), stream_picks(seed)] = 1.0
    return code.reshape(-1)
