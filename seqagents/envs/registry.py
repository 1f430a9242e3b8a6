"""Which env ids gymnasium can make: ALE and BabyAI ids registered without heavy imports, the
package behind an id imported on demand, and env ids read from files refused when they name a
module."""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from seqagents.envs.babyai import is_babyai_env
from seqagents.envs.mujoco import _route_mujoco_log
from seqagents.errors import require

__all__ = ["check_env_id_from_file", "register_env_package", "register_known_envs"]

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
