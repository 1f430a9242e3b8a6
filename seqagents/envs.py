"""Environment construction for checkpoints and zoo entries (headless rendering set up here)."""

from __future__ import annotations

import ast
import contextlib
import importlib.abc
import importlib.util
import io
import logging
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents._gl import ensure_headless_gl
from seqagents.errors import require

__all__ = [
    "make_env",
    "check_env_id_from_file",
    "ensure_headless_gl",
    "register_env_package",
    "register_known_envs",
    "describe_space",
    "spaces_match",
    "storable_space",
    # BabyAI
    "PRIVILEGED_KWARG",
    "BabyAIPrivileged",
    "MissionTokens",
    "QuietStdout",
    "babyai_goal_candidates",
    "is_babyai_env",
    # Atari
    "ATARI_PREPROCESSING_KWARG",
    "make_atari_env",
]

_logger = logging.getLogger(__name__)

# env id prefix -> (package that registers it, seqagents extra that installs it)
_ENV_PACKAGES = (
    ("BabyAI-", "minigrid", "babyai"),
    ("MiniGrid-", "minigrid", "babyai"),
    ("ALE/", "ale_py", "atari"),
)


def register_known_envs() -> None:
    """Make the env ids seqagents' agents are trained on constructible with a plain
    ``gymnasium.make``, without importing anything heavy (``import seqagents`` calls it).

    - ALE (``ALE/Breakout-v5``, ...): ``gym.register_envs(ale_py)`` when ale-py is installed
      (importing it costs about 60 ms).
    - BabyAI/MiniGrid (``BabyAI-GoToLocalS7N5-v0``, ...): importing minigrid costs about 0.6 s
      (pygame), so its ids are registered lazily, read off ``minigrid/__init__.py`` with their
      entry points and kwargs (about 30 ms); the first ``gym.make`` of one imports minigrid,
      which then registers its own specs in their place (no "Overriding environment" warnings,
      also when the user imports minigrid).
    - MuJoCo: its C-level warnings (gymnasium's models trigger ``settotalmass`` at every load)
      go to Python logging instead of stderr and a ``MUJOCO_LOG.TXT``, from the moment mujoco
      is imported (not imported here: about 0.3 s).

    Example:
        >>> import gymnasium as gym
        >>> register_known_envs()
        >>> "BabyAI-GoToLocalS7N5-v0" in gym.registry
        True
    """
    if importlib.util.find_spec("ale_py") is not None:
        import ale_py

        gym.register_envs(ale_py)
    _register_minigrid_lazily()
    if "mujoco" in sys.modules:
        _route_mujoco_log(sys.modules["mujoco"])
    elif not any(isinstance(f, _OnFirstImport) and f.name == "mujoco" for f in sys.meta_path):
        sys.meta_path.insert(0, _OnFirstImport("mujoco", after=_route_mujoco_log))


class _OnFirstImport(importlib.abc.MetaPathFinder):
    """Run ``before()`` just before module ``name`` is first imported and ``after(module)``
    just after (once; the import itself is left to the other finders)."""

    def __init__(
        self,
        name: str,
        before: Callable[[], None] | None = None,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        self.name, self.before, self.after = name, before, after

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if self.before is not None:
            self.before()
        if self.after is None:
            return None  # the other finders import it as usual
        spec = importlib.util.find_spec(fullname)
        loader, after = getattr(spec, "loader", None), self.after
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_hook(module: Any) -> None:
            exec_module(module)
            after(module)

        loader.exec_module = exec_then_hook  # this spec's own loader instance
        return spec


_LAZY_MINIGRID: set[str] = set()  # ids registered here until minigrid registers its own


def _register_minigrid_lazily() -> None:
    """Register minigrid's BabyAI-/MiniGrid- ids (entry points and kwargs as minigrid's
    ``register_minigrid_envs`` has them) without importing minigrid; see
    :func:`register_known_envs`."""
    if "minigrid" in sys.modules or _LAZY_MINIGRID:
        return
    spec = importlib.util.find_spec("minigrid")
    if spec is None or not spec.origin:
        return
    try:
        tree = ast.parse(Path(spec.origin).read_text())
    except (OSError, SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register"):
            continue
        try:
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:  # computed arguments: left to minigrid itself
            continue
        env_id = kwargs.get("id")
        if not is_babyai_env(env_id) or env_id in gym.registry or node.args:
            continue
        try:  # the spec gym.register would store, without its O(registry) checks per id
            gym.registry[env_id] = gym.envs.registration.EnvSpec(**kwargs)
        except (TypeError, gym.error.Error):
            continue
        _LAZY_MINIGRID.add(env_id)
    if _LAZY_MINIGRID:
        sys.meta_path.insert(0, _OnFirstImport("minigrid", before=_drop_lazy_minigrid))


def _drop_lazy_minigrid() -> None:
    """Remove the lazily registered ids: minigrid, being imported, registers its own."""
    for env_id in _LAZY_MINIGRID:
        gym.registry.pop(env_id, None)


def register_env_package(env_id: str) -> None:
    """Import the package that registers ``env_id`` (minigrid, ale-py) if gymnasium lacks it."""
    for prefix, module, extra in _ENV_PACKAGES:
        if env_id.startswith(prefix) and env_id not in gym.registry:
            gym.register_envs(require(module, extra))


def check_env_id_from_file(env_id: str | None, source: str) -> None:
    """Refuse an env id read from a file (a checkpoint's config, a dataset's metadata) that
    names a module: ``gymnasium.make("pkg.module:Env-v0")`` imports ``pkg.module``, which runs
    its code, so a downloaded checkpoint could run code by naming one. An id the user passes
    (``make_env(...)``, ``--env``) is theirs to trust and is not checked.

    Example:
        >>> check_env_id_from_file("evil.payload:Env-v0", "config.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: config.json names the env 'evil.payload:Env-v0', which would make ...
    """
    if env_id and ":" in env_id:
        module = env_id.split(":", 1)[0]
        raise ValueError(
            f"{source} names the env {env_id!r}, which would make gymnasium import the module "
            f"{module!r} and run its code; seqagents never imports a module named in a file. If "
            "you trust it, import it yourself and pass the env (or the id, e.g. --env) yourself"
        )


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with clear errors for missing optional packages.

    BabyAI/MiniGrid ids (see the BabyAI block below) are wrapped in :class:`QuietStdout`; the
    reserved kwarg ``privileged=True`` (:data:`PRIVILEGED_KWARG`, popped before
    ``gymnasium.make``) adds :class:`BabyAIPrivileged`. For ``ALE/`` ids the reserved kwarg
    ``atari_preprocessing=True`` (:data:`ATARI_PREPROCESSING_KWARG`) returns
    :func:`make_atari_env` with the other kwargs (the Atari evaluation pipeline).

    Example:
        >>> env = make_env("Pendulum-v1")
        >>> env.observation_space.shape
        (3,)
    """
    ensure_headless_gl()
    if kwargs.pop(ATARI_PREPROCESSING_KWARG, False):  # Atari block below
        return make_atari_env(env_id, **kwargs)
    register_env_package(env_id)
    privileged = is_babyai_env(env_id) and bool(kwargs.pop(PRIVILEGED_KWARG, False))
    mujoco_env = _route_mujoco_warnings(env_id)
    if kwargs.get("camera_name") is not None and not mujoco_env:
        raise ValueError(f"a camera name applies to MuJoCo envs only; {env_id} is not one")
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        extra = "mujoco" if "mujoco" in str(e).lower() else "all"
        raise gym.error.DependencyNotInstalled(
            f'{e}; install it with pip install "seqagents[{extra}]"'
        ) from e
    except gym.error.Error as e:
        raise gym.error.Error(
            f"cannot make env {env_id!r}: {e}. Check the id (gymnasium.pprint_registry() lists "
            "the registered ones)"
        ) from e
    if "camera_name" in kwargs:
        _check_camera(env, kwargs["camera_name"])
    if is_babyai_env(env_id):
        env = _wrap_babyai(env, privileged)
    return env


def render_kwargs(env_id: str) -> dict[str, Any]:
    """Extra ``make_env`` kwargs for watching ``env_id``: what :func:`seqagents.record_video`
    and ``seqagents record`` use unless told otherwise.

    HalfCheetah-v5's default camera does not follow the cheetah and its floor is drawn only
    80 m long (a fast cheetah runs 250 m in an episode), so it gets the ``track`` camera and a
    copy of gymnasium's model with a 4 km floor. MuJoCo planes are infinite for collisions
    (their size is only drawn), so the dynamics are unchanged (tested).

    Example:
        >>> render_kwargs("HalfCheetah-v5")["camera_name"]
        'track'
    """
    if env_id == "HalfCheetah-v5":
        return {"camera_name": "track", "xml_file": _long_floor_half_cheetah()}
    return {}


def _long_floor_half_cheetah() -> str:
    """Path of gymnasium's ``half_cheetah.xml`` with the floor drawn 2 km each way.

    MuJoCo sizes its clip planes by the model's extent (near plane ``znear * extent``), and
    a 4 km floor raises the computed extent 50-fold (8 m to 400 m), which moves the near plane
    from 8 cm to 4 m and clips away the cheetah 3 m in front of the tracking camera. The copy
    therefore pins ``<statistic>`` to the original model's extent and center.
    """
    import tempfile
    from pathlib import Path

    import mujoco
    from gymnasium.envs.mujoco import half_cheetah_v5

    source = Path(half_cheetah_v5.__file__).parent / "assets" / "half_cheetah.xml"
    text = source.read_text()
    floor = 'name="floor" pos="0 0 0" rgba="0.8 0.9 0.8 1" size="40 40 40"'
    model_tag = '<mujoco model="cheetah">'
    if floor not in text or 'texrepeat="60 60"' not in text or model_tag not in text:
        return str(source)  # another gymnasium layout: keep its model as it is
    original = mujoco.MjModel.from_xml_path(str(source)).stat  # extent 8 m, center 0
    center = " ".join(f"{c:g}" for c in original.center)
    statistic = f'<statistic extent="{original.extent:g}" center="{center}"/>'
    text = text.replace(model_tag, f"{model_tag}\n  {statistic}", 1)
    text = text.replace(floor, floor.replace('size="40 40 40"', 'size="2000 40 40"'))
    text = text.replace('texrepeat="60 60"', 'texrepeat="3000 60"')  # same checker squares
    target = Path(tempfile.gettempdir()) / "seqagents-render" / "half_cheetah_long_floor.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return str(target)


_MUJOCO_ROUTED = False


def _route_mujoco_warnings(env_id: str) -> bool:
    """For a MuJoCo env id (returns whether it is one): send MuJoCo's C-level warnings to
    Python logging (see :func:`_route_mujoco_log`)."""
    try:
        entry_point = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return False
    if "mujoco" not in entry_point:
        return False
    if _MUJOCO_ROUTED:
        return True
    try:
        import mujoco
    except ImportError:
        return True
    _route_mujoco_log(mujoco)
    return True


def _mujoco_warning(message: str) -> None:
    level = logging.DEBUG if "settotalmass" in message else logging.WARNING
    _logger.log(level, "MuJoCo: %s", message.strip())


def _route_mujoco_log(mujoco: Any) -> None:
    """Send MuJoCo's C-level warnings to Python logging instead of stderr and a
    ``MUJOCO_LOG.TXT`` in the working folder. gymnasium's own model files trigger the
    deprecation of ``settotalmass`` at every load (logged at DEBUG); any other MuJoCo warning is
    logged at WARNING. :func:`register_known_envs` calls it as soon as mujoco is imported, so
    plain ``gymnasium.make`` loops are quiet too."""
    global _MUJOCO_ROUTED
    if _MUJOCO_ROUTED or not callable(getattr(mujoco, "set_mju_user_warning", None)):
        return
    mujoco.set_mju_user_warning(_mujoco_warning)
    _MUJOCO_ROUTED = True


def _check_camera(env: gym.Env, camera: str | None) -> None:
    """A MuJoCo env silently renders from its default camera when ``camera_name`` is not one
    of its model's cameras: make that an error that lists the cameras there are."""
    model = getattr(env.unwrapped, "model", None)
    if camera is None or model is None or not hasattr(model, "ncam"):
        return
    import mujoco

    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    if camera not in names:
        env.close()
        raise ValueError(
            f"{env.spec.id if env.spec else 'the env'} has no camera {camera!r}; its cameras: "
            f"{names or 'none'} (omit the camera for the default free view)"
        )


def describe_space(space: gym.Space) -> str:
    """Short text for error messages: ``Box(shape=(17,), dtype=float64)`` or the space's repr."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    if isinstance(space, gym.spaces.Dict):
        items = ", ".join(f"{k}={describe_space(v)}" for k, v in space.spaces.items())
        return f"Dict({items})"
    if isinstance(space, gym.spaces.Text):
        return f"Text(max_length={space.max_length})"
    return repr(space)


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Whether a model made for space ``a`` can act in ``b``: same Box shape, same Discrete n
    (Box bounds and dtypes may differ), Dicts key by key, any two text spaces (minigrid's
    MissionSpace is stored as ``Text``), otherwise equal."""
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return a.shape == b.shape
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n
    if isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict):
        return a.spaces.keys() == b.spaces.keys() and all(
            spaces_match(a[key], b[key]) for key in a.spaces
        )
    if _is_text(a) and _is_text(b):  # minigrid's MissionSpace is stored as Text in datasets
        return True
    if (_is_text(a) and _is_token_box(b)) or (_is_token_box(a) and _is_text(b)):
        return True  # mission text vs the word ids of MissionTokens (checked when read)
    return a == b


def _is_token_box(space: gym.Space) -> bool:
    """A 1-D integer Box: the word ids :class:`MissionTokens` puts in place of mission text."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.integer)
    )


def _is_text(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Text) or type(space).__name__.endswith("MissionSpace")


# ------------------------------------------------------------------ BabyAI / MiniGrid levels
# (kept in this block: make_env calls _wrap_babyai for BabyAI-*/MiniGrid-* ids.)
_BABYAI_PREFIXES = ("BabyAI-", "MiniGrid-")
PRIVILEGED_KWARG = "privileged"
"""Reserved ``make_env`` kwarg of BabyAI/MiniGrid ids: ``privileged=True`` adds
:class:`BabyAIPrivileged`. It is popped before ``gymnasium.make``, so it can sit in a checkpoint's
or zoo entry's ``env_kwargs`` next to the level's own kwargs (e.g. ``doors_open=True``)."""


def is_babyai_env(env_id: str) -> bool:
    """Whether ``env_id`` is a BabyAI or MiniGrid level (``BabyAI-*``, ``MiniGrid-*``).

    Example:
        >>> is_babyai_env("BabyAI-GoToLocalS7N5-v0"), is_babyai_env("HalfCheetah-v5")
        (True, False)
    """
    return isinstance(env_id, str) and env_id.startswith(_BABYAI_PREFIXES)


class _DebugLogStream(io.TextIOBase):
    """A text stream that sends each complete line written to it to ``logger.debug``."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.debug("%s", line)
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.debug("%s", self._pending)
        self._pending = ""


class QuietStdout(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Send what the env prints to stdout during ``reset``/``step`` to a debug-level logger.

    minigrid's BabyAI levels ``print`` "Sampling rejected: unreachable object at ..." and
    "Timeout during mission generation: ..." while they generate a level (in
    ``minigrid/envs/babyai/core/roomgrid_level.py``, at reset), which would corrupt any output a
    script parses. :func:`make_env` adds this wrapper to every BabyAI/MiniGrid env, so the
    library, the ``seqagents`` command and vector envs built from :func:`make_env` stay quiet; the
    lines go to the ``seqagents.envs`` logger at DEBUG level. For ``gymnasium.make_vec``, pass it
    as a wrapper: ``gym.make_vec(env_id, 4, wrappers=[QuietStdout])``.

    ``sys.stdout`` is swapped (``contextlib.redirect_stdout``) only while the wrapped env's
    ``reset``/``step`` runs, so prints from other threads in that window are logged too.

    Example:
        >>> env = QuietStdout(make_env("BabyAI-GoToObjMazeS4R2-v0"))
        >>> _ = env.reset(seed=0)  # prints nothing
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._stream = _DebugLogStream(_logger)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        with contextlib.redirect_stdout(self._stream):
            try:
                return self.env.reset(**kwargs)
            finally:
                self._stream.flush()

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        with contextlib.redirect_stdout(self._stream):
            try:
                return self.env.step(action)
            finally:
                self._stream.flush()


def babyai_goal_candidates(env: gym.Env) -> np.ndarray:
    """Positions ``(n, 2)`` int64 of the objects BabyAI's bot would go to first, right after reset.

    ``minigrid.utils.baby_ai_bot.BabyAIBot`` turns the mission into a stack of subgoals; GoTo and
    Pickup (and PutNext, Open) push a ``GoNextToSubgoal`` on an object description last, so the
    top of the stack names the first target; its ``obj_poss`` are the positions of every object
    matching the description (minigrid 3.2.0, ``BabyAIBot._process_instr``).

    Args:
        env: a BabyAI env (any wrapper), just reset.

    Raises:
        ValueError: the bot's first subgoal is not "go next to an object" (a level without an
            object goal).
    """
    from minigrid.envs.babyai.core.verifier import ObjDesc

    BabyAIBot = require("minigrid.utils.baby_ai_bot", "babyai").BabyAIBot
    bot = BabyAIBot(env.unwrapped)
    top = bot.stack[-1] if bot.stack else None
    if top is None or type(top).__name__ != "GoNextToSubgoal" or not isinstance(top.datum, ObjDesc):
        raise ValueError(
            f"the BabyAI bot's first subgoal is {top!r}, not going next to an object; "
            f"{env.unwrapped.spec.id if env.unwrapped.spec else 'this level'} has no object goal "
            "for BabyAIPrivileged"
        )
    return np.asarray(top.datum.obj_poss, dtype=np.int64).reshape(-1, 2)  # (n, 2)


class BabyAIPrivileged(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """PRIVILEGED observations of LEAP's BabyAI setting: the full grid plus agent and goal cells.

    This is information a normal BabyAI agent does not get (it sees a 7x7 egocentric view and
    the mission text): the whole grid, its own coordinates and the coordinates of the object the
    mission refers to, taken from the expert bot. LEAP (Chen et al., 2023) conditions on exactly
    this. Results obtained with it are not comparable with BabyAI agents that see the standard
    observation; say so when reporting them.

    Observation (``Dict``, a proper gymnasium space):

    - ``image``: ``(W, H, 3)`` uint8, ``grid.encode()`` of the whole grid with the agent's cell
      set to ``[10, 0, direction]`` (``minigrid.wrappers.FullyObsWrapper``'s convention: object
      "agent", colour "red"), so codes stay within object < 11, colour < 6, state < 4;
    - ``direction``: ``Discrete(4)``, the agent's direction;
    - ``mission``: the mission text (minigrid's ``MissionSpace``);
    - ``agent_pos``: ``(2,)`` int64, ``env.unwrapped.agent_pos`` (x, y);
    - ``goal_pos``: ``(2,)`` int64 (x, y), fixed for the episode: at each reset, among the
      positions of the objects matching the bot's first target (:func:`babyai_goal_candidates`),
      the one nearest (Euclidean) to the agent; ties go to the first listed.

    ``info`` of ``reset`` also holds ``goal_candidates``, the number of matching objects (LEAP
    kept only demos with one).

    Get it from :func:`make_env` with the reserved kwarg ``privileged=True`` (see
    :data:`PRIVILEGED_KWARG`), which is how a checkpoint's or zoo entry's ``env_kwargs`` ask for
    it: ``make_env("BabyAI-GoToObjMazeS4-v0", doors_open=True, privileged=True)``.

    Args:
        env: a BabyAI env whose missions start with going to an object (GoTo*, Pickup*, ...).

    Example:
        >>> env = make_env("BabyAI-GoToLocalS7N5-v0", privileged=True)
        >>> obs, info = env.reset(seed=0)
        >>> sorted(obs), obs["image"].shape, obs["goal_pos"].dtype
        (['agent_pos', 'direction', 'goal_pos', 'image', 'mission'], (7, 7, 3), dtype('int64'))
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        spaces = env.observation_space
        if not isinstance(spaces, gym.spaces.Dict) or not {"direction", "mission"} <= set(
            spaces.spaces
        ):
            raise ValueError(
                f"BabyAIPrivileged needs a BabyAI Dict observation space, got {spaces}"
            )
        width, height = env.unwrapped.width, env.unwrapped.height
        position = gym.spaces.Box(0, max(width, height) - 1, shape=(2,), dtype=np.int64)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, shape=(width, height, 3), dtype=np.uint8),
                "direction": spaces["direction"],
                "mission": spaces["mission"],
                "agent_pos": position,
                "goal_pos": position,
            }
        )
        self._goal_pos = np.zeros(2, dtype=np.int64)

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        candidates = babyai_goal_candidates(self.env)  # (n, 2)
        agent = np.asarray(self.env.unwrapped.agent_pos, dtype=np.int64)  # (2,)
        distance = np.linalg.norm((candidates - agent).astype(np.float64), axis=1)  # (n,)
        self._goal_pos = candidates[int(np.argmin(distance))].copy()  # (2,)
        return self._observation(observation), {**info, "goal_candidates": len(candidates)}

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(observation), reward, terminated, truncated, info

    def _observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

        base = self.env.unwrapped
        image = base.grid.encode()  # (W, H, 3) uint8
        x, y = base.agent_pos
        image[x, y] = (OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"], base.agent_dir)
        return {
            "image": image,
            "direction": int(observation["direction"]),
            "mission": observation["mission"],
            "agent_pos": np.asarray(base.agent_pos, dtype=np.int64),  # (2,)
            "goal_pos": self._goal_pos.copy(),  # (2,)
        }


class MissionTokens(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """BabyAI's mission text as a fixed-size array of word ids, for vector envs that hold arrays.

    Stable-Baselines3's ``DummyVecEnv``/``SubprocVecEnv`` (and ``make_vec_env``) allocate one
    numpy buffer per observation key and cannot hold minigrid's ``MissionSpace``; this wrapper
    replaces ``mission`` by ``Box(0, vocabulary.size - 1, (vocabulary.max_len,), int64)``: the
    ids :meth:`MissionVocabulary.encode <seqagents.observations.MissionVocabulary.encode>`
    gives (left-padded with 0). seqagents' BabyAI agents read this form as they read the text,
    provided the ids come from their own vocabulary (``agent.mission_vocabulary``); the other
    keys (``image``, ``direction``, the privileged ones) pass unchanged.

    Args:
        env: a BabyAI env (any wrapper, privileged included) with a ``mission`` key.
        vocabulary: the agent's mission vocabulary (``agent.mission_vocabulary``).

    Example:
        >>> from seqagents import load_agent
        >>> agent = load_agent("dt/babyai-gotolocal-s7n5", device="cpu")
        >>> env = MissionTokens(agent.make_env(), agent.mission_vocabulary)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["mission"].shape == (agent.mission_vocabulary.max_len,)
        True
    """

    def __init__(self, env: gym.Env, vocabulary: Any) -> None:
        from seqagents.observations import MissionVocabulary

        if not isinstance(vocabulary, MissionVocabulary):
            raise TypeError(
                f"vocabulary must be a MissionVocabulary (agent.mission_vocabulary), got "
                f"{type(vocabulary).__name__}; non-BabyAI agents need no MissionTokens"
            )
        gym.utils.RecordConstructorArgs.__init__(self, vocabulary=vocabulary)
        gym.ObservationWrapper.__init__(self, env)
        spaces = env.observation_space
        if not isinstance(spaces, gym.spaces.Dict) or "mission" not in spaces.spaces:
            raise ValueError(
                f"MissionTokens needs a Dict observation space with a 'mission' key (BabyAI), "
                f"got {describe_space(spaces)}"
            )
        self.vocabulary = vocabulary
        tokens = gym.spaces.Box(0, vocabulary.size - 1, (vocabulary.max_len,), np.int64)
        self.observation_space = gym.spaces.Dict({**spaces.spaces, "mission": tokens})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        ids = self.vocabulary.encode([observation["mission"]])[0]  # (L,) int64
        return {**observation, "mission": ids}


def _wrap_babyai(env: gym.Env, privileged: bool) -> gym.Env:
    """The wrappers :func:`make_env` adds to BabyAI/MiniGrid envs: quiet stdout, then
    optionally the privileged observations."""
    env = QuietStdout(env)
    return BabyAIPrivileged(env) if privileged else env


# ------------------------------------------------------------------ Atari evaluation pipeline
# (kept in this block: make_env calls make_atari_env when ATARI_PREPROCESSING_KWARG is set.)
ATARI_PREPROCESSING_KWARG = "atari_preprocessing"
"""Reserved ``make_env`` kwarg of ``ALE/`` ids: ``atari_preprocessing=True`` builds
:func:`make_atari_env` (popped, the other kwargs go to it), so a checkpoint's ``env_id`` +
``env_kwargs`` (``{"atari_preprocessing": True, "repeat_action_probability": 0.0}``) rebuild the
evaluation env through ``make_env``."""


def make_atari_env(
    env_id: str,
    *,
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    max_num_frames_per_episode: int = 108_000,
    **ale_kwargs: Any,
) -> gym.Env:
    """The Atari evaluation env: full games, ``(4, 84, 84)`` uint8 frame stacks.

    ``ALE/<Game>-v5(frameskip=1)`` → ``AtariPreprocessing(noop_max=30, frame_skip=4,
    screen_size=84, grayscale_obs=True, terminal_on_life_loss=False)`` →
    ``FrameStackObservation(4)`` (padded at reset by repeating the reset frame, its default).
    Games end at game over, never at a life loss; ALE truncates them at 108,000 frames (27,000
    agent steps), the standard cap. No FIRE is pressed for the agent: the recorded datasets
    (:mod:`seqagents.data.atari`) hold the FIRE presses, so an agent trained on them presses it.

    Sticky actions are off by default (``repeat_action_probability=0.0``, ALE v5's own default is
    0.25): it matches the recorded PPO data and the DT paper's evaluation ("sticky actions off");
    a zoo entry may set it.

    Args:
        env_id: an ``ALE/<Game>-v5`` id.
        repeat_action_probability: ALE sticky actions.
        noop_max: maximum random no-ops (raw frames) at reset.
        frame_skip: frames per agent step (max-pooled over the last two).
        screen_size: frame height and width.
        frame_stack: frames per observation.
        max_num_frames_per_episode: ALE's frame cap (truncation).
        **ale_kwargs: other ``ALE/`` kwargs (``mode``, ``difficulty``, ``render_mode``, ...).

    Returns:
        The env; observation space ``Box(0, 255, (4, 84, 84), uint8)``.

    Example:
        >>> env = make_env("ALE/Breakout-v5", atari_preprocessing=True)
        >>> env.observation_space.shape, env.observation_space.dtype
        ((4, 84, 84), dtype('uint8'))
    """
    if not env_id.startswith("ALE/"):
        raise ValueError(
            f"{ATARI_PREPROCESSING_KWARG}=True needs an ALE/<Game>-v5 env id, got {env_id!r}."
        )
    if "frameskip" in ale_kwargs:
        raise ValueError("pass frame_skip (AtariPreprocessing's), not frameskip: ALE's is 1 here.")
    env = make_env(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        max_num_frames_per_episode=max_num_frames_per_episode,
        **ale_kwargs,
    )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        grayscale_obs=True,
        terminal_on_life_loss=False,
    )
    return gym.wrappers.FrameStackObservation(env, frame_stack)


def storable_space(space: gym.spaces.Space) -> gym.spaces.Space:
    """Replace spaces Minari cannot serialize (minigrid's ``MissionSpace``) by ``Text`` (datasets
    and checkpoint configs store spaces with Minari's serialization)."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({key: storable_space(sub) for key, sub in space.spaces.items()})
    if type(space).__name__.endswith("MissionSpace"):
        return gym.spaces.Text(max_length=1024, min_length=0, charset=string.printable)
    return space
