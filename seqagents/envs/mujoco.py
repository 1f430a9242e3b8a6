"""MuJoCo envs: the render settings for watching them (HalfCheetah's tracking camera on a long
floor), camera checks, and MuJoCo's C-level warnings sent to logging."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym

__all__ = ["render_kwargs"]

_logger = logging.getLogger("seqagents.envs")


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
