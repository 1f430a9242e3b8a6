"""Decision Transformer agent: a DT checkpoint behind the SB3-style ``predict`` protocol."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from seqagents.agents.base import SequenceAgent, config_setting
from seqagents.agents.conditioning import ReturnConditioning
from seqagents.agents.spaces import encoder_for_space
from seqagents.checkpoints.native import (
    CheckpointFiles,
    build_network,
    converted_spec,
    load_weights,
)
from seqagents.config import AgentConfig, DTInference, StatePreprocessing
from seqagents.context import RollingContext
from seqagents.errors import CheckpointError
from seqagents.models.dt import DecisionTransformer, DTConfig
from seqagents.observations import MissionVocabulary

__all__ = ["DecisionTransformerAgent"]

logger = logging.getLogger(__name__)


class DecisionTransformerAgent(SequenceAgent):
    """Return-conditioned policy (Chen et al. 2021) for one env or a batch of envs.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents import DecisionTransformerAgent
        >>> env = gym.make("Pendulum-v1")
        >>> agent = DecisionTransformerAgent.create(env.observation_space, env.action_space,
        ...                                         target_return=-200.0, return_scale=100.0)
        >>> obs, _ = env.reset(seed=0)
        >>> action, _ = agent.predict(obs)
        >>> obs, reward, terminated, truncated, _ = env.step(action)
        >>> action, _ = agent.predict(obs, reward=reward)
        >>> action.shape
        (1,)
    """

    algorithm = "dt"
    network_class = DecisionTransformer

    def __init__(
        self, network: DecisionTransformer, config: AgentConfig, device: str = "auto"
    ) -> None:
        super().__init__(network, config, device)
        self.conditioning = ReturnConditioning(
            config.preprocessing, config.model.state_shape, self.device
        )
        self._check_spaces()
        self._ctx: RollingContext | None = None

    @property
    def target_return(self) -> float:
        """The target return the episodes start from, in reward units: the one given to
        ``reset(target_return=...)`` until the next reset, else the saved default. Setting it
        sets the saved default (``config.inference.target_return``)."""
        episode = self.conditioning.episode_target
        return self.config.inference.target_return if episode is None else episode

    @target_return.setter
    def target_return(self, value: float) -> None:
        self.config = self.config.replace(target_return=value)

    return_scale: float = config_setting(
        "preprocessing", "return_scale", "Returns-to-go are divided by it."
    )

    def _check_spaces(self) -> None:
        cfg, obs, act = self.model_config, self.observation_space, self.action_space
        shape = obs["image"].shape if isinstance(obs, gym.spaces.Dict) else obs.shape
        if tuple(shape or ()) != cfg.state_shape:
            raise CheckpointError(
                f"the network expects states of shape {cfg.state_shape} but the checkpoint's "
                f"observation space is {obs}"
            )
        n_act = act.n if isinstance(act, gym.spaces.Discrete) else int(np.prod(act.shape))
        if n_act != cfg.act_dim or isinstance(act, gym.spaces.Discrete) != cfg.discrete:
            raise CheckpointError(
                f"the network has act_dim={cfg.act_dim} (discrete={cfg.discrete}) but the "
                f"checkpoint's action space is {act}"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        observation_space: gym.Space,
        action_space: gym.Space,
        model_config: DTConfig | None = None,
        *,
        env_id: str | None = None,
        env_kwargs: dict | None = None,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
        return_scale: float = 1000.0,
        target_return: float = 0.0,
        target_returns: list[float] | None = None,
        mission_vocabulary: MissionVocabulary | None = None,
        device: str = "auto",
        seed: int | None = None,
        **model_kwargs: Any,
    ) -> DecisionTransformerAgent:
        """A new, randomly initialised agent for the given spaces (to train, or to test with).

        ``model_kwargs`` override fields of the default :class:`DTConfig` (e.g. ``n_layer=1``);
        the state encoder follows the observation space (:func:`encoder_for_space`; BabyAI's
        Dict observations need ``mission_vocabulary``).
        """
        if model_config is None:
            discrete = isinstance(action_space, gym.spaces.Discrete)
            model_config = DTConfig(
                **{
                    **encoder_for_space(observation_space, mission_vocabulary),
                    "act_dim": int(action_space.n if discrete else np.prod(action_space.shape)),
                    "discrete": discrete,
                    **model_kwargs,
                }
            )
        if seed is not None:
            torch.manual_seed(seed)
        config = AgentConfig.new(
            cls.algorithm,
            model_config,
            observation_space,
            action_space,
            StatePreprocessing(state_mean, state_std, return_scale, mission_vocabulary),
            DTInference(
                target_return=float(target_return),
                target_returns=tuple(target_returns or [target_return]),
            ),
            env_id=env_id,
            env_kwargs=env_kwargs,
        )
        return cls(DecisionTransformer(model_config), config, device)

    @classmethod
    def _from_foreign(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> DecisionTransformerAgent:
        """transformers ``decision_transformer`` checkpoint (e.g. the edbeeching repos)."""
        from seqagents.checkpoints import known_repo, known_repo_id, known_repos
        from seqagents.checkpoints.hf_dt import convert_hf_dt_state_dict, dt_config_from_hf

        model_config = dt_config_from_hf(config, overrides.pop("context_len", 20))
        named = overrides.pop("known_repo", None)  # a local copy of a known repo, by its id
        if named is not None and known_repo(str(named)) is None:
            raise CheckpointError(
                f"known_repo={named!r} is not in seqagents' registry; known repos: "
                f"{', '.join(known_repos())}"
            )
        source = known_repo_id(str(named or files.model_id))  # a local copy: the repo's id
        known = known_repo(source) if source else {}
        mean = overrides.pop("state_mean", known.get("state_mean"))
        std = overrides.pop("state_std", known.get("state_std"))
        env_id = overrides.pop("env_id", known.get("env_id"))
        if mean is None or std is None:
            dims = (model_config.state_shape[0], model_config.act_dim)
            same = [
                repo
                for repo in known_repos()
                if (known_repo(repo) or {}).get("state_dim") == dims[0]
                and (known_repo(repo) or {}).get("act_dim") == dims[1]
            ]
            copy_hint = (
                " If this folder is a download of a known repo, name it: "
                f"known_repo={same[0]!r} (same dims: {', '.join(same)})."
                if same
                else ""
            )
            raise CheckpointError(
                f"{files.model_id}: transformers Decision Transformer checkpoints do not store "
                "their state normalization and this repo is not in seqagents' registry "
                "(seqagents.checkpoints.known_repos()); pass state_mean=... and state_std=... "
                f"(the dataset's per-dimension mean/std, usually in the model card).{copy_hint}"
            )
        dim = model_config.state_shape[0]
        if len(mean) != dim or len(std) != dim:
            raise CheckpointError(
                f"{files.model_id}: state_mean/state_std have {len(mean)}/{len(std)} values, "
                f"the checkpoint's state_dim is {dim}"
            )
        if env_id is None:
            raise CheckpointError(f"{files.model_id}: unknown env; pass env_id='...'")
        targets = known.get("target_returns", [0.0])
        spec = converted_spec(
            cls.algorithm,
            model_config.to_dict(),
            dim,
            model_config.act_dim,
            env_id,
            source or files.model_id,  # provenance: the Hub id, never a local path
            preprocessing={
                "state_mean": list(mean),
                "state_std": list(std),
                "return_scale": float(known.get("return_scale", 1000.0)),
            },
            inference={"target_return": float(targets[0]), "target_returns": list(targets)},
        )
        network = build_network(DecisionTransformer, model_config, files.model_id)
        state = convert_hf_dt_state_dict(files.load_foreign_weights())
        load_weights(network, state, files.model_id)
        return cls(network, AgentConfig.from_checkpoint(spec).replace(**overrides), device)

    @property
    def returns_to_go(self) -> np.ndarray:
        """Current return-to-go of each env, in reward units (``(n_envs,)``)."""
        return self.conditioning.returns_to_go()

    # ------------------------------------------------------------------ acting
    def _allocate(self, n_envs: int) -> None:
        super()._allocate(n_envs)
        cfg = self.model_config
        self._ctx = RollingContext(
            n_envs,
            cfg.context_len,
            {
                # Each step's tokens (R_t, s_t, a_t), embedded once (DecisionTransformer.
                # step_tokens): the state when it arrives, the action once it is chosen.
                "tokens": ((3, cfg.hidden_size), torch.float32),
                "timesteps": ((), torch.long),
            },
            self.device,
        )

    def _step(
        self, obs: torch.Tensor, rewards: torch.Tensor, starts: np.ndarray, deterministic: bool
    ) -> torch.Tensor:
        cfg, ctx = self.model_config, self._ctx
        assert ctx is not None
        # Time-index convention (the one place it lives): at step t the agent receives s_t and
        # r_{t-1} (0 at t = 0), updates rtg_t = rtg_{t-1} - r_{t-1} / scale, appends
        # (rtg_t, s_t, t), predicts a_t from the s_t token and stores a_t in the window.
        if not deterministic and not cfg.discrete:
            self._warn_once(
                "deterministic",
                "deterministic=False has no effect on a Decision Transformer with continuous "
                "actions: it predicts one action per step (as in the paper), so the action is "
                "the same as with deterministic=True",
                stacklevel=4,
            )
        net, conditioning = self.network, self.conditioning
        state_emb = conditioning.embed(net, obs, check=False)  # (n, H): the only encoding of s_t
        rtg_before = conditioning.rtg  # restored if the prediction is not finite
        conditioning.step(rewards, starts, self.config.inference.target_return)  # (n,)
        if starts.any():
            ctx.clear(torch.as_tensor(starts, device=self.device))
        t = torch.as_tensor(np.minimum(self._t, cfg.max_ep_len - 1), device=self.device)  # (n,)
        tokens = net.step_tokens(state_emb, None, conditioning.rtg[:, None], t)  # (n, 3, H)
        ctx.push(tokens=tokens, timesteps=t)
        full = bool(self._t.min() >= cfg.context_len - 1)  # no padding: plain causal attention
        window = ctx["tokens"]  # (n, K, 3, H)
        pred = net.act_tokens(
            window, ctx["timesteps"], None if full else ctx.mask
        )  # (n, act_dim): prediction at s_t
        if not np.isfinite(pred.cpu().numpy()).all():  # the step's one host sync
            ctx.pop()  # nothing of this step stays in the context
            conditioning.rtg = rtg_before
            conditioning.check_embedding(obs, state_emb)  # an overflowing observation says so
            bad = torch.flatten(~torch.isfinite(pred).all(-1)).nonzero().flatten().tolist()
            raise ValueError(
                f"the network's prediction is NaN/inf for env(s) {bad[:5]}; the step was not "
                "stored. Check the observations (huge values overflow the network) and the "
                "reward, target_return and return_scale"
            )
        if cfg.discrete:
            action = (
                pred.argmax(-1)
                if deterministic
                else torch.multinomial(pred.softmax(-1), 1, generator=self._generator)[:, 0]
            )  # (n,)
        else:
            action = pred
        # The a_t token so far is its bare position (step_tokens with actions=None).
        window[:, -1, 2] += net.embed_actions(action)  # (n, H)
        return action.reshape(-1, *self.action_space.shape)
