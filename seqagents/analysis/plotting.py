"""What every analysis figure shares: a pyplot-free Figure, the model colours, smoothing, and
:func:`save_figure` (the PNG and the numbers behind it, side by side)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqagents.errors import require

__all__ = ["MODEL_COLORS", "jsonable", "moving_average", "new_figure", "save_figure"]

MODEL_COLORS = {"DT": "tab:blue", "TT": "tab:orange", "LEAP": "tab:green"}


def new_figure(
    n_axes: int = 1, width: float = 5.0, height: float = 3.6, columns: int | None = None
) -> tuple[Any, list[Any]]:
    """A pyplot-free Figure with ``n_axes`` panels, ``columns`` per row (default: one row);
    ``width``/``height`` are one panel's, in inches."""
    require("matplotlib", "analysis")
    from matplotlib.figure import Figure

    cols = min(n_axes, columns or n_axes)
    rows = -(-n_axes // cols)  # ceil
    fig = Figure(figsize=(width * cols, height * rows), dpi=80, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).reshape(-1))
    for extra in axes[n_axes:]:
        extra.remove()
    return fig, axes[:n_axes]


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (odd windows are centred exactly); at the
    ends the mean of the points the window covers, so the length is unchanged and a constant
    stays constant.

    Example:
        >>> moving_average([0.0, 3.0, 0.0, 3.0], 3).tolist()
        [1.5, 1.0, 2.0, 1.5]
    """
    x = np.asarray(values, dtype=np.float64)
    if window <= 1 or x.size == 0:
        return x.copy()
    kernel = np.ones(int(window))
    total = np.convolve(x, kernel, mode="same")
    count = np.convolve(np.ones_like(x), kernel, mode="same")
    return total / count


def save_figure(fig: Any, data: dict, out_dir: str | os.PathLike[str], name: str) -> Path:
    """Write ``out_dir/name.png`` and the numbers behind it, ``out_dir/name.json``.

    Example:
        >>> import tempfile
        >>> from seqagents.analysis.figures import training_curves
        >>> fig, data = training_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
        >>> save_figure(fig, data, tempfile.mkdtemp(), "curves").suffix
        '.png'
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path)
    (out / f"{name}.json").write_text(json.dumps(jsonable(data)) + "\n")
    return path


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
