"""Training on several processes under ``torchrun`` (torch.distributed, one GPU per process):
joining the process group, the training device of a rank, averaging the gradients over the
ranks, and the weight hashes that check the ranks stayed in step (see
:mod:`seqagents.training.trainer`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "average_gradients",
    "check_ranks_in_sync",
    "init_distributed",
    "is_distributed",
    "rank_and_world_size",
    "resolve_train_device",
    "weights_hash",
    "weights_hash_of",
]


def is_distributed() -> bool:
    """Whether this process is in a joined torch.distributed process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if is_distributed():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def resolve_train_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA if available, else CPU; under torch.distributed CUDA means
    ``cuda:LOCAL_RANK`` (torchrun sets it), one GPU per process."""
    from seqagents._device import resolve_device

    device = resolve_device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def init_distributed(device: str | torch.device = "auto") -> bool:
    """Join torchrun's process group if this process was launched by it (``WORLD_SIZE`` > 1 in
    the environment) and it is not joined yet; returns whether training is distributed.

    The backend is nccl when ``device`` resolves to CUDA (each process takes the GPU
    ``LOCAL_RANK``), else gloo.

    Example:
        >>> init_distributed("cpu")  # a plain process: nothing to join
        False
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    from seqagents._device import resolve_device

    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return True


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Replace each gradient by its mean over the ranks, with one all-reduce of the gradients
    flattened into one vector. A parameter without a gradient on every rank keeps none (as in a
    single process: AdamW skips it); one with a gradient on some ranks only counts zeros on the
    others (a loss whose used parameters change from step to step)."""
    has_grad = torch.tensor([p.grad is not None for p in params], device=params[0].device)
    torch.distributed.all_reduce(has_grad, op=torch.distributed.ReduceOp.MAX)  # (n_params,)
    used = [p for p, flag in zip(params, has_grad.tolist()) if flag]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not used:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in used])  # (n_elements,)
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in used:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))  # back to the param's shape
        offset += n


def weights_hash(network: nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in state-dict order."""
    return weights_hash_of(*network.state_dict().values())


def weights_hash_of(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_ranks_in_sync(network: nn.Module, out_dir: Path | None, step: int) -> None:
    """All ranks must end with bitwise-equal weights (their gradients are averaged); rank 0
    (the one given an ``out_dir``) writes the hashes to ``distributed.json``. A mismatch is an
    error, not a silent drift."""
    from seqagents.training.run_folder import DISTRIBUTED_NAME

    world_size = torch.distributed.get_world_size()
    hashes: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(hashes, weights_hash(network))
    if out_dir is not None:
        report = {"world_size": world_size, "step": step, "weight_hashes": hashes}
        (out_dir / DISTRIBUTED_NAME).write_text(json.dumps(report, indent=2))
    if len(set(hashes)) != 1:
        names: list[Any] = [None] * world_size
        own = {k: weights_hash_of(v) for k, v in network.state_dict().items()}
        torch.distributed.all_gather_object(names, own)
        differ = sorted(k for k in own if len({n[k] for n in names}) > 1)
        raise RuntimeError(
            f"the ranks' weights differ after training ({len(differ)} tensors, e.g. "
            f"{differ[:5]}); the distributed setup is broken"
        )
