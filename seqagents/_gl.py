"""MuJoCo's headless GL choice, importable without gymnasium or torch (``seqagents`` calls it at
import, before anything imports mujoco; :mod:`seqagents.envs` re-exports it)."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["ensure_headless_gl"]

_logger = logging.getLogger("seqagents.envs")


def ensure_headless_gl() -> str | None:
    """Pick MuJoCo's EGL backend on a Linux machine without a display, unless already chosen.

    Sets ``MUJOCO_GL=egl`` only if ``MUJOCO_GL`` is unset, the platform is Linux and neither
    ``DISPLAY`` nor ``WAYLAND_DISPLAY`` is set (EGL is not available on macOS/Windows, and with a
    display MuJoCo's default GLFW backend works and also serves ``render_mode="human"``). It only
    takes effect if called before ``mujoco`` is imported, e.g. at package import or before the
    first MuJoCo env is made.

    Returns:
        The ``MUJOCO_GL`` value now in effect, or None if unset.

    Example:
        >>> ensure_headless_gl() in (None, "egl", "osmesa", "glfw", "glx")
        True
    """
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and headless and "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            _logger.debug("mujoco was imported before MUJOCO_GL was set; setting it anyway")
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL")
