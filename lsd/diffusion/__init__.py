"""Flow matching and its samplers."""

from .flow import add_noise, euler_step, expand_like, predict_x0, sample_t_logit_normal, velocity
from .guidance import guided, guided_steps
from .rollout import commit_frame, generate_frame, rollout
from .samplers import Denoiser, sample_euler, sample_shortcut, time_grid

__all__ = ["add_noise", "euler_step", "expand_like", "predict_x0", "sample_t_logit_normal",
           "velocity", "guided", "guided_steps", "commit_frame", "generate_frame", "rollout",
           "Denoiser", "sample_euler", "sample_shortcut", "time_grid"]
