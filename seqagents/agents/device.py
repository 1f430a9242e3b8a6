"""The device an agent computes on: ``"auto"`` and names resolved and checked to exist."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"`` as :class:`torch.device`, checked to exist here.

    Raises:
        ValueError: an unknown device name, or a device this machine does not have (the
            message says which devices there are).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"unknown device {str(device)!r}; expected auto, cpu, cuda, cuda:N or mps"
        ) from e
    if resolved.type not in ("cpu", "cuda", "mps", "meta"):
        raise ValueError(f"device {str(device)!r} is not supported; use auto, cpu, cuda or mps")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise ValueError(
                f"device {str(device)!r}: CUDA is not available on this machine (torch "
                f"{torch.__version__}, built {built} CUDA); use device='cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available; use 'cpu' or 'auto'")
    return resolved
