"""The identity-conditioned diffusion prior: model, training and the differentiable sampler."""
