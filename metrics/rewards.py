"""Rewards: differentiable scorers ``(x0 in [-1, 1], prompts) -> per-image reward`` by name.

Hyper-SD's human-feedback stage trains against one (ImageReward, an aesthetic predictor, or the
toy world's classifier); each is registered where it is defined and chosen by name in a config.
"""

from __future__ import annotations

from typing import Callable

import torch

from benchkit.core.registry import Registry

RewardFn = Callable[[torch.Tensor, list[str]], torch.Tensor]

# name -> factory(device) -> RewardFn
REWARDS: Registry[Callable[[torch.device], RewardFn]] = Registry("reward")
register_reward = REWARDS.register
