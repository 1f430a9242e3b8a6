"""Export a Decision Transformer policy to TorchScript or ONNX, for use without seqagents.

As d3rlpy's ``save_policy`` does for its algorithms, the exported file is a greedy policy with
the checkpoint's preprocessing inside: state normalization (``state_mean``/``state_std``), the
return scale and the timestep clamp. What stays outside is what makes a sequence policy one:
the caller keeps the last ``K`` steps (``context_len``, fixed at export) of each env and passes
them as one window, left-padded, at every step. The window's inputs, for ``B`` envs:

==================  ==============================  ============================================
input               shape, dtype                    meaning
==================  ==============================  ============================================
``states``          ``(B, K, *obs_shape)`` float32  raw observations s_{t-K+1} .. s_t
``actions``         ``(B, K, act_dim)`` float32,    actions a_{t-K+1} .. a_{t-1}, then anything
                    or ``(B, K)`` int64 (discrete)  (a_t is not chosen yet; it is never read)
``returns_to_go``   ``(B, K)`` float32              returns-to-go in reward units: the target
                                                    return at t = 0, then ``rtg_t = rtg_{t-1} -
                                                    r_{t-1}`` (the agents' time-index rule)
``timesteps``       ``(B, K)`` int64                the steps' indices in the episode (0, 1, ...)
``attention_mask``  ``(B, K)`` bool                 False on left padding (the first K-1 steps)
==================  ==============================  ============================================

Output ``action``: ``(B, act_dim)`` float32 (continuous) or ``(B,)`` int64 (discrete, argmax).
The numbers a loop needs (``context_len``, ``target_return``, shapes, the env id) are stored in
the file: TorchScript ``_extra_files["seqagents.json"]``, ONNX ``metadata_props["seqagents"]``.

A loop with onnxruntime and numpy only (``agent.export("policy.onnx")`` wrote the file)::

    import gymnasium as gym, json, numpy as np, onnxruntime as ort

    session = ort.InferenceSession("policy.onnx")
    meta = json.loads(session.get_modelmeta().custom_metadata_map["seqagents"])
    K, obs_shape, act_shape = meta["context_len"], meta["observation_shape"], meta["action_shape"]
    window = {"states": np.zeros((1, K, *obs_shape), np.float32),
              "actions": np.zeros((1, K, *act_shape), np.float32),
              "returns_to_go": np.zeros((1, K), np.float32),
              "timesteps": np.zeros((1, K), np.int64),
              "attention_mask": np.zeros((1, K), bool)}
    env = gym.make(meta["env_id"])
    obs, _ = env.reset(seed=0)
    rtg, done, t = meta["target_return"], False, 0
    while not done:
        for value in window.values():  # shift the window left by one step
            value[:, :-1] = value[:, 1:].copy()
        new = {"states": obs, "actions": 0, "returns_to_go": rtg, "timesteps": t,
               "attention_mask": True}
        for key, value in new.items():
            window[key][:, -1] = value
        action = session.run(None, window)[0][0]
        window["actions"][:, -1] = action
        obs, reward, terminated, truncated, _ = env.step(action)
        rtg, t, done = rtg - reward, t + 1, terminated or truncated

TT (beam search) and LEAP (iterative refinement with random re-masking) plan with loops and
random draws inside ``predict``; they are not exported. BabyAI's Dict observations (mission
word ids, FiLM) are not exported either: export a DT with Box observations (MuJoCo, Atari).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

__all__ = ["EXPORT_FORMATS", "export_policy", "read_export_metadata"]

EXPORT_FORMATS = {".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx"}
"""File suffix -> format of :func:`export_policy`."""
_INPUTS = ("states", "actions", "returns_to_go", "timesteps", "attention_mask")
_METADATA_KEY = "seqagents"


class _DTPolicy(nn.Module):
    """The exported greedy DT policy: normalization, return scale, timestep clamp inside."""

    def __init__(self, agent: Any) -> None:
        super().__init__()
        self.network = copy.deepcopy(agent.network).cpu().eval()
        stats = agent.conditioning
        self.register_buffer("state_mean", stats.state_mean.detach().cpu().clone())
        self.register_buffer("state_std", stats.state_std.detach().cpu().clone())
        self.return_scale = float(agent.return_scale)
        self.max_timestep = int(agent.model_config.max_ep_len) - 1
        self.discrete = bool(agent.model_config.discrete)
        self.requires_grad_(False)  # an inference graph: no autograd for its callers

    def forward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        normalized = (states.float() - self.state_mean) / self.state_std  # (B, K, *obs_shape)
        rtg = (returns_to_go.float() / self.return_scale).unsqueeze(-1)  # (B, K, 1)
        steps = timesteps.clamp(0, self.max_timestep)  # (B, K)
        pred = self.network.act(normalized, actions, rtg, steps, attention_mask)  # (B, act_dim)
        return pred.argmax(-1) if self.discrete else pred  # (B,) or (B, act_dim)


def export_policy(
    agent: Any,
    path: str | Path,
    *,
    target_return: float | None = None,
    opset_version: int = 17,
) -> dict[str, Any]:
    """Write ``agent``'s greedy policy to ``path`` (``.pt``/``.ts``: TorchScript, ``.onnx``:
    ONNX) with its preprocessing inside; see the module docstring for the inputs.

    Args:
        agent: a :class:`~seqagents.DecisionTransformerAgent` with Box observations.
        path: the output file; its suffix picks the format.
        target_return: the target return stored in the metadata (default: the agent's).
        opset_version: ONNX opset.

    Returns:
        The metadata stored in the file (``format``, ``context_len``, ``target_return``,
        ``observation_shape``, ``action_shape``, ``discrete``, ``inputs``, ``output``, ...).

    Raises:
        ValueError: an unknown suffix, or an agent that cannot be exported (TT, LEAP, BabyAI).
    """
    path = Path(path)
    kind = EXPORT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"cannot tell the export format from {path.name!r}: use a .pt or .ts (TorchScript) "
            "or .onnx (ONNX) suffix"
        )
    _check_exportable(agent)
    policy = _DTPolicy(agent)
    cfg = agent.model_config
    metadata = {
        "format": kind,
        "algorithm": agent.config.algorithm,
        "env_id": agent.env_id,
        "env_kwargs": agent.config.env_kwargs,
        "context_len": int(cfg.context_len),
        "target_return": float(agent.target_return if target_return is None else target_return),
        "return_scale": policy.return_scale,
        "max_timestep": policy.max_timestep,
        "observation_shape": list(agent.observation_space.shape),
        "action_shape": list(agent.action_space.shape),
        "discrete": policy.discrete,
        "n_actions": int(cfg.act_dim) if policy.discrete else None,
        "inputs": list(_INPUTS),
        "output": "action",
        "time_index": "rtg_0 = target_return, rtg_t = rtg_{t-1} - r_{t-1}; the newest step "
        "is the window's last, its action a placeholder",
    }
    example = _example_window(agent, batch=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's legacy ONNX exporter
        if kind == "torchscript":
            traced = torch.jit.trace(policy, example, check_trace=False)
            traced.save(str(path), _extra_files={"seqagents.json": json.dumps(metadata)})
        else:
            batch = {"states": {0: "batch"}, "actions": {0: "batch"}}
            batch.update({name: {0: "batch"} for name in _INPUTS[2:]})
            torch.onnx.export(
                policy,
                example,
                str(path),
                input_names=list(_INPUTS),
                output_names=["action"],
                dynamic_axes={**batch, "action": {0: "batch"}},
                opset_version=opset_version,
                dynamo=False,
            )
            _add_onnx_metadata(path, metadata)
    return metadata


def read_export_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata :func:`export_policy` stored in ``path`` (TorchScript or ONNX; reading ONNX
    metadata needs the ``onnx`` package)."""
    path = Path(path)
    if EXPORT_FORMATS.get(path.suffix.lower()) == "torchscript":
        extra = {"seqagents.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra["seqagents.json"])
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props[_METADATA_KEY])


def _check_exportable(agent: Any) -> None:
    algorithm = getattr(getattr(agent, "spec", None), "algorithm", None)
    if algorithm != "dt":
        raise ValueError(
            f"export supports Decision Transformer agents; this is a {algorithm or type(agent)} "
            "agent: TT's beam search and LEAP's iterative refinement (random re-masking) plan "
            "with loops and random draws inside predict and are not exported"
        )
    if not isinstance(agent.observation_space, gym.spaces.Box):
        raise ValueError(
            "export supports Box observations (MuJoCo vectors, Atari frames); this agent reads "
            f"{type(agent.observation_space).__name__} observations (BabyAI missions)"
        )


def _example_window(agent: Any, batch: int) -> tuple[torch.Tensor, ...]:
    """A padded example window of ``batch`` envs (the tracer's inputs)."""
    cfg = agent.model_config
    K, shape = cfg.context_len, tuple(agent.observation_space.shape)
    low = np.nan_to_num(np.asarray(agent.observation_space.low, np.float32), neginf=-1.0)
    states = torch.as_tensor(np.broadcast_to(low, (batch, K, *shape)).copy())  # (B, K, *shape)
    if cfg.discrete:
        actions = torch.zeros(batch, K, dtype=torch.long)  # (B, K)
    else:
        actions = torch.zeros(batch, K, cfg.act_dim)  # (B, K, act_dim)
    rtg = torch.full((batch, K), float(agent.target_return or 0.0))  # (B, K)
    timesteps = torch.arange(K).repeat(batch, 1)  # (B, K)
    mask = torch.ones(batch, K, dtype=torch.bool)  # (B, K)
    mask[0, : K - 1] = False  # one row padded, so the traced graph keeps the masked path
    return states, actions, rtg, timesteps, mask


def _add_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    try:
        import onnx
    except ImportError:
        warnings.warn(
            f"{path}: the metadata was not stored (pip install onnx); the inputs are described "
            "in seqagents.export",
            UserWarning,
            stacklevel=3,
        )
        return
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = _METADATA_KEY, json.dumps(metadata)
    onnx.save(model, str(path))
