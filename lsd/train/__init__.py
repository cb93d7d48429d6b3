"""Training: the codec, the denoiser (Diffusion Forcing + history augmentation), distillation."""
