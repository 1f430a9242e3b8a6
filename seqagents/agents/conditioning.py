"""Return conditioning and state normalization: the one component DT and LEAP hold.

Owns, on the agent's device: the state statistics (``(s - mean) / std`` before the state
encoder), each env's scaled return-to-go and its update rule, and this episode's target return
(episode state, set by ``agent.reset(target_return=...)``; the saved default stays in the
agent's :class:`~seqagents.config.AgentConfig`). TT holds none of it.
"""

from __future__ import annotations

import numpy as np
import torch

from seqagents.config import StatePreprocessing, check_target_return

__all__ = ["ReturnConditioning"]


class ReturnConditioning:
    """State normalization and returns-to-go of one agent's envs.

    Example:
        >>> from seqagents.config import StatePreprocessing
        >>> c = ReturnConditioning(StatePreprocessing(return_scale=10.0), (2,), "cpu")
        >>> c.allocate(1)
        >>> c.step(torch.zeros(1), np.array([True]), default_target=50.0)
        >>> c.returns_to_go()
        array([50.], dtype=float32)
    """

    def __init__(
        self,
        preprocessing: StatePreprocessing,
        state_shape: tuple[int, ...],
        device: torch.device | str,
        *,
        returns: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.state_shape = tuple(state_shape)
        self.returns = returns  # False: a model that conditions on no return (BabyAI LEAP)
        # This episode's target return (reset(target_return=...)); None: the saved default.
        self.episode_target: float | None = None
        self.configure(preprocessing)
        self.rtg = torch.zeros(0, device=self.device, dtype=torch.float32)  # (n,) scaled RTG

    def configure(self, preprocessing: StatePreprocessing) -> None:
        """Take the statistics and return scale of ``preprocessing`` (validated there)."""
        self.return_scale = preprocessing.return_scale
        self.state_mean, self.state_std = (
            torch.as_tensor(
                default(self.state_shape) if value is None else value,
                dtype=torch.float32,
                device=self.device,
            ).reshape(self.state_shape)
            for value, default in (
                (preprocessing.state_mean, np.zeros),
                (preprocessing.state_std, np.ones),
            )
        )

    def set_episode_target(self, target_return: float | None) -> None:
        """The target return of the episodes until the next reset (None: the saved default)."""
        if target_return is not None:
            if not self.returns:
                raise ValueError("this LEAP agent is not return-conditioned (no target return)")
            target_return = check_target_return(target_return)
        self.episode_target = target_return

    def allocate(self, n_envs: int) -> None:
        """Empty returns-to-go for ``n_envs`` envs (float32 whatever the default dtype)."""
        self.rtg = torch.zeros(n_envs, device=self.device, dtype=torch.float32)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``(obs - mean) / std`` in float32: ``(n, *state_shape)``."""
        return (obs.float() - self.state_mean) / self.state_std

    def embed(
        self, network: torch.nn.Module, obs: torch.Tensor | dict[str, torch.Tensor], check: bool
    ) -> torch.Tensor:
        """``(n, H)`` embeddings of the new states, the only encoding each state gets (the
        contexts cache it): flat states normalized, images and BabyAI dicts as they come.
        ``check=False`` skips the finiteness check (a caller that checks its prediction instead
        calls :meth:`check_embedding` when that fails: one host sync per step, not two)."""
        if isinstance(obs, dict):
            return network.embed_state(obs)
        embedded = network.embed_state(self.normalize(obs))
        if check:
            self.check_embedding(obs, embedded)
        return embedded

    def check_embedding(self, obs: torch.Tensor | dict, embedded: torch.Tensor) -> None:
        """Raise the "observation overflows" error if ``embedded`` is not finite."""
        if bool(torch.isfinite(embedded).all()) or isinstance(obs, dict):
            return
        states = self.normalize(obs)
        raise ValueError(
            "the observation overflows: after normalization by the checkpoint's state_mean/"
            f"state_std its largest magnitude is {states.abs().max().item():.3g} and the "
            "state embedding is not finite; nothing was stored. Check the observation (and "
            "that no wrapper rescales it)"
        )

    def step(self, rewards: torch.Tensor, starts: np.ndarray, default_target: float | None) -> None:
        """``rtg_t = rtg_{t-1} - r_{t-1} / return_scale``; the episode's target (else
        ``default_target``) where an episode starts (the time-index convention is written in
        the agents' ``_step``). ``self.rtg`` becomes a new tensor: the old one is left as it was
        (the DT agent restores it after a failed step)."""
        self.rtg = self.rtg - rewards / self.return_scale  # (n,)
        if starts.any():
            target = self.episode_target if self.episode_target is not None else default_target
            new = torch.as_tensor(starts, device=self.device)
            self.rtg.masked_fill_(new, (target or 0.0) / self.return_scale)

    def returns_to_go(self) -> np.ndarray:
        """Each env's current return-to-go in reward units, ``(n_envs,)``."""
        return (self.rtg * self.return_scale).cpu().numpy()
