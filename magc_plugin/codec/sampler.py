"""Seeded, respaced ancestral sampling of the conditional denoiser.

DDIM with eta = 1 is the respaced ancestral DDPM sampler of the paper (no classifier-free
guidance). The paper starts from pure noise (``start`` 1.0); a model may instead start part of
the way down the schedule, from its stage-1 latent noised to that point, and run only that part.
The noise is supplied by a *noise source* so that the tiling engine can make it depend on
position in the raster (seamless tiles); the default source is a seeded CPU generator,
identical on every machine.
"""
import torch
from diffusers import DDIMScheduler, DDPMScheduler

SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon", clip_sample=False)


def training_scheduler(schedule=None):
    return DDPMScheduler(**(schedule or SCHEDULE))


def sampling_scheduler(schedule=None):
    return DDIMScheduler(**(schedule or SCHEDULE), set_alpha_to_one=False, timestep_spacing="trailing")


class SeededNoise:
    """Noise source: draw k (0 = initial noise, i + 1 = noise of step i) from one seeded CPU generator."""

    def __init__(self, seed):
        self.generator = torch.Generator("cpu").manual_seed(int(seed))

    def __call__(self, k, shape):
        return torch.randn(shape, generator=self.generator)


class Cancelled(Exception):
    """Raised by a progress callback to stop sampling."""


@torch.no_grad()
def sample(denoiser, latent_tilde, one_hot, steps=20, noise=0, eta=1.0, callback=None, schedule=None, start=1.0):
    """Run the last round(steps * start) of `steps` respaced steps; returns z_hat with latent_tilde's shape.

    noise: an int seed or a callable (k, shape) -> CPU tensor.
    start: 1.0 starts from pure noise; below it, from latent_tilde noised to the first step run.
    callback(step_index, steps_run) is called after every step; it may raise to cancel.
    """
    source = SeededNoise(noise) if isinstance(noise, int) else noise
    scheduler = sampling_scheduler(schedule)
    steps = int(steps)
    scheduler.set_timesteps(steps)
    device, dtype = latent_tilde.device, latent_tilde.dtype
    shape = tuple(latent_tilde.shape)
    skipped = min(int(round(steps * (1.0 - float(start)))), steps - 1)
    timesteps = scheduler.timesteps[skipped:]
    x = source(0, shape).to(device, dtype)
    x = scheduler.add_noise(latent_tilde, x, timesteps[:1]) if skipped else x * scheduler.init_noise_sigma
    for i, t in enumerate(timesteps):
        eps = denoiser(x, t, latent_tilde, one_hot)
        x = scheduler.step(eps, t, x, eta=eta, variance_noise=source(i + 1, shape).to(device, dtype)).prev_sample
        if callback is not None:
            callback(i, len(timesteps))
    return x
