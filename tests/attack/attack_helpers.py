"""Helpers shared by the attack tests (inputs, random noise baselines, the eps-ball check)."""

import torch


def images(n=3, size=32, seed=0):
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


def corner_noise(x, eps, seed=123):
    """Random noise of L-inf norm exactly eps (random sign per pixel): the strongest random noise of that norm."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
    return (x + eps * sign).clamp(0, 1)


def in_ball(adv, x, eps):
    return float((adv - x).abs().max()) <= eps + 1e-6 and float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
