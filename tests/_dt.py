"""A Decision Transformer agent's windows recomputed from the raw steps, as an agent without
caches would keep them (to check the agent's cached tokens and predictions against)."""

from __future__ import annotations

import numpy as np
import torch

from seqagents import DecisionTransformerAgent


class ReferenceWindows:
    """What an agent without caches keeps: each env's raw steps (network inputs), re-assembled
    into left-padded ``(n, K)`` windows for ``DecisionTransformer.act`` and ``step_tokens``."""

    def __init__(self, agent: DecisionTransformerAgent, n: int) -> None:
        self.agent, self.K = agent, agent.model_config.context_len
        self.steps: list[list[dict]] = [[] for _ in range(n)]

    def add(self, obs, starts: np.ndarray) -> None:
        """Record the new step of every env (its action still unknown)."""
        agent, cfg = self.agent, self.agent.model_config
        states, _ = agent._observation_check(obs)
        if not isinstance(states, dict):
            states = agent.conditioning.normalize(states)  # (n, *shape)
        for i, steps in enumerate(self.steps):
            if starts[i]:
                steps.clear()
            state = {k: v[i] for k, v in states.items()} if isinstance(states, dict) else states[i]
            t = min(steps[-1]["t"] + 1, cfg.max_ep_len - 1) if steps else 0
            steps.append({"state": state, "t": t, "action": None, "rtg": None})

    def finish(self, actions: np.ndarray) -> None:
        """The agent's chosen actions and the returns-to-go it conditioned on."""
        for i, steps in enumerate(self.steps):
            steps[-1]["action"] = torch.as_tensor(np.asarray(actions[i]))
            steps[-1]["rtg"] = self.agent.conditioning.rtg[i].clone()

    def window(self, placeholder: torch.Tensor):
        """``(states, actions, rtg, timesteps, mask)`` of the newest ``K`` steps per env, each
        ``(n, K, ...)`` (BabyAI states: a dict of such); the newest step's action is
        ``placeholder`` until :meth:`finish`."""
        rows = []
        for i, steps in enumerate(self.steps):
            last = steps[-self.K :]
            pad = self.K - len(last)
            acts = [placeholder if s["action"] is None else s["action"] for s in last]
            rtg = [self.agent.conditioning.rtg[i] if s["rtg"] is None else s["rtg"] for s in last]
            rows.append(
                (
                    _left_pad([s["state"] for s in last], pad),
                    _left_pad(acts, pad),  # (K, act_dim) or (K,)
                    _left_pad(rtg, pad)[:, None],  # (K, 1)
                    torch.tensor([0] * pad + [s["t"] for s in last]),  # (K,)
                    torch.tensor([False] * pad + [True] * len(last)),  # (K,)
                )
            )
        return tuple(_stack(list(field)) for field in zip(*rows, strict=True))


def _stack(items: list) -> torch.Tensor | dict[str, torch.Tensor]:
    """``torch.stack`` of tensors, or key by key of dicts of tensors."""
    if isinstance(items[0], dict):
        return {k: torch.stack([item[k] for item in items]) for k in items[0]}
    return torch.stack(items)


def _left_pad(items: list, pad: int) -> torch.Tensor | dict[str, torch.Tensor]:
    """``items`` stacked, ``(k, ...)``, after ``pad`` zero rows: ``(pad + k, ...)``."""
    if isinstance(items[0], dict):
        return {k: _left_pad([item[k] for item in items], pad) for k in items[0]}
    x = torch.stack(items)  # (k, ...)
    return torch.cat([x.new_zeros(pad, *x.shape[1:]), x])  # (pad + k, ...)
