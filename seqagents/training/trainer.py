"""The one training loop shared by every algorithm: :class:`Trainer`.

:class:`Trainer` knows nothing about any algorithm: it takes a network, a ``loss_fn``
(``(network, batch) -> scalar loss``) and a ``sample_fn`` (``(batch_size, rng) -> batch``) and
runs AdamW with linear warmup and grad-norm clipping, a tqdm progress bar, a JSONL metrics log,
periodic evaluation and checkpoint callbacks, and resumable trainer state. The set-up around it
(data, run folder, agent, training record) is :mod:`seqagents.training.recipe`; each algorithm
(:mod:`~seqagents.training.dt`, :mod:`~seqagents.training.tt`, :mod:`~seqagents.training.leap`)
supplies its batch -> loss code.

Reproducibility: the random state of step ``i`` is derived from ``(seed, rank, i)`` alone,
``np.random.SeedSequence([seed, rank, i])`` spawning one numpy generator (handed to
``sample_fn``) and one torch seed (``torch.manual_seed``, dropout). Nothing random carries over
from one step to the next, so the same seed gives the same loss curve on CPU, a resumed run
replays exactly what an uninterrupted one would have done (no RNG state needs saving), and the
evaluation callback may use randomness freely. GPU kernels may still add nondeterminism.

Distributed training: under ``torchrun`` (``torchrun --nproc_per_node N -m seqagents train
ENTRY``) :func:`~seqagents.training.distributed.init_distributed` joins the process group from
torchrun's environment (gloo on CPU, nccl on CUDA, one GPU per process). The Trainer then starts
every rank from rank 0's weights and, after each backward pass, averages the gradients over the
ranks with one all-reduce of them all flattened (each rank samples its own ``batch_size``
windows from its own ``rank``-dependent stream, so the global batch is ``batch_size *
world_size``); only rank 0 logs, evaluates and saves. Parameters without a gradient (DT's state
and return heads, outside the action loss) count as zero on every rank.
(``DistributedDataParallel`` was used before: with ``static_graph=True`` and such unused
parameters it silently skipped the gradient all-reduce, and every rank trained alone.) At the end
the ranks compare a hash of their weights, which must be bitwise equal, and rank 0 writes them to
``out_dir/distributed.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from seqagents.training.distributed import (
    average_gradients,
    check_ranks_in_sync,
    init_distributed,
    is_distributed,
    rank_and_world_size,
    resolve_train_device,
)
from seqagents.training.run_folder import (
    CHECKPOINT_DIR,
    METRICS_NAME,
    STATE_NAME,
    foreign_run_entries,
    replace_previous_run,
)
from seqagents.training.tensorboard_log import TensorBoardLog
from seqagents.training.train_config import RESUME_FREE_FIELDS, TrainConfig

__all__ = [
    "Batch",
    "CheckpointFn",
    "EvaluateFn",
    "LossFn",
    "SampleFn",
    "Trainer",
    # where they were before the trainer module was split (issue 27); import from there
    "CHECKPOINT_DIR",
    "TrainConfig",
    "foreign_run_entries",
    "init_distributed",
]

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
"""A training batch: named tensors (e.g. ``states (B, K, obs_dim)``, ``mask (B, K)``), or dicts
of tensors (BabyAI ``states``)."""
LossFn = Callable[[nn.Module, Batch], torch.Tensor]
"""``loss_fn(network, batch) -> scalar loss``."""
SampleFn = Callable[[int, np.random.Generator], Batch]
"""``sample_fn(batch_size, rng) -> batch``; draw all randomness from ``rng`` (see module doc)."""
EvaluateFn = Callable[[int], dict[str, Any]]
"""``evaluate(step) -> JSON-safe metrics``; called on rank 0 with the network in eval mode."""
CheckpointFn = Callable[[int, dict[str, Any]], None]
"""``on_checkpoint(step, {"loss": float | None, "eval": dict | None})``; rank 0 only."""

_STATE_FORMAT = "seqagents-trainer-state"


def _to_device(value: Any, device: torch.device) -> Any:
    """Tensors, and dicts of them (BabyAI states), moved to ``device``."""
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    return value.to(device, non_blocking=True)


def _param_groups(network: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's rule: decay tensors with >= 2 dims (Linear weights, embedding tables), not
    biases, LayerNorm gains or other vectors. The DT code decays every parameter; with
    lr * weight_decay = 1e-8 per step the difference is negligible."""
    params = [p for p in network.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Train ``network`` by minimising ``loss_fn`` on batches from ``sample_fn``.

    Per step: ``batch = sample_fn(batch_size, rng)`` (moved to the device), ``loss = loss_fn(model,
    batch)`` under bf16 autocast on CUDA, backward, grad-norm clipping, AdamW step, warmup
    scheduler step. See the module docstring for seeding, resuming and DDP.

    Files in ``config.out_dir`` (rank 0): ``metrics.jsonl`` (one JSON record per ``log_every``
    steps and per evaluation: ``step``, ``loss`` (mean since the previous record), ``lr`` and
    ``grad_norm`` (of the latest step, the norm before clipping), ``samples_per_s`` (training time
    only, all ranks) and ``eval`` when evaluated) and ``trainer_state.pt`` (network, optimizer and
    scheduler state dicts, step, config; loadable with ``torch.load(weights_only=True)``).
    ``on_checkpoint`` saves whatever the algorithm saves (e.g. an agent via ``save_pretrained``)
    at the same moments.

    Args:
        network: the model; moved to the config's device.
        loss_fn: ``(network, batch) -> scalar loss``.
        sample_fn: ``(batch_size, rng) -> batch``, drawing its randomness from ``rng`` only.
        config: optimisation and bookkeeping settings.
        evaluate: optional ``evaluate(step) -> metrics``, every ``eval_every`` steps and at the end.
        on_checkpoint: optional ``on_checkpoint(step, summary)``, every ``checkpoint_every`` steps
            and at the end, just before ``trainer_state.pt`` is written.
        progress_bar: show a tqdm bar on stderr.

    Example:
        >>> import numpy as np, torch
        >>> net = torch.nn.Linear(2, 1)
        >>> def sample(batch_size, rng):
        ...     x = torch.as_tensor(rng.normal(size=(batch_size, 2)), dtype=torch.float32)
        ...     return {"x": x, "y": x.sum(-1, keepdim=True)}
        >>> def loss(model, batch):
        ...     return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        >>> config = TrainConfig(steps=200, batch_size=16, learning_rate=0.05, warmup_steps=10,
        ...                      log_every=50, device="cpu")
        >>> history = Trainer(net, loss, sample, config, progress_bar=False).train()
        >>> [record["step"] for record in history], history[-1]["loss"] < 0.01
        ([50, 100, 150, 200], True)
    """

    def __init__(
        self,
        network: nn.Module,
        loss_fn: LossFn,
        sample_fn: SampleFn,
        config: TrainConfig,
        *,
        evaluate: EvaluateFn | None = None,
        on_checkpoint: CheckpointFn | None = None,
        progress_bar: bool = True,
    ) -> None:
        self.config = config
        self.loss_fn, self.sample_fn = loss_fn, sample_fn
        self.evaluate, self.on_checkpoint = evaluate, on_checkpoint
        self.progress_bar = progress_bar
        self.device = resolve_train_device(config.device)
        self.rank, self.world_size = rank_and_world_size()
        self.is_main = self.rank == 0
        if config.tensorboard and config.out_dir is None:
            raise ValueError("TrainConfig.tensorboard needs an out_dir to write the logs to")
        self._tensorboard = (
            TensorBoardLog(Path(config.out_dir)) if config.tensorboard and self.is_main else None
        )
        self.network = network.to(self.device)  # the bare module (what gets saved)
        if is_distributed():  # every rank starts from rank 0's weights
            for tensor in self.network.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.network, config.weight_decay),
            lr=config.learning_rate,
            betas=config.betas,
        )
        warmup = config.warmup_steps
        if warmup >= config.steps and self.is_main:
            logger.warning(
                "warmup_steps %d >= steps %d: the learning rate never reaches its peak %g",
                warmup,
                config.steps,
                config.learning_rate,
            )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.use_amp = config.amp == "bf16" or (config.amp == "auto" and self.device.type == "cuda")
        self.out_dir = Path(config.out_dir) if config.out_dir is not None else None
        self.step = 0  # gradient steps done
        self.history: list[dict[str, Any]] = []  # the metrics.jsonl records of this run
        self.last_loss: float | None = None  # mean loss of the latest record
        self.last_eval: dict[str, Any] | None = None  # latest evaluate() result
        # Losses of the steps since the latest record (summed on the device: no sync per step);
        # saved with the state, so a resumed run's records average the same steps.
        self._loss_sum = torch.zeros((), device=self.device)
        self._n_summed = 0
        self._lr = config.learning_rate  # learning rate of the latest step

    # ------------------------------------------------------------------ one step
    def step_rng(self, step: int) -> np.random.Generator:
        """Seed torch for step ``step`` and return that step's numpy generator (module doc)."""
        numpy_seq, torch_seq = np.random.SeedSequence([self.config.seed, self.rank, step]).spawn(2)
        seed = int(torch_seq.generate_state(1, np.uint64)[0])
        # The default generators directly: torch.manual_seed visits every backend (~0.3 ms).
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            index = self.device.index
            if index is None:
                index = torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(seed)
        return np.random.default_rng(numpy_seq)

    def train_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on ``batch``; returns ``(loss, grad_norm)`` as detached device
        tensors (no host sync)."""
        batch = _to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            loss = self.loss_fn(self.network, batch)  # ()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.world_size > 1:
            average_gradients(params, self.world_size)
        # With grad_clip = 0 an infinite max norm only measures the norm.
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip or math.inf)
        self._lr = self.optimizer.param_groups[0]["lr"]  # the lr this step used
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach(), grad_norm.detach()

    # ------------------------------------------------------------------ the loop
    def train(self, resume: bool = False) -> list[dict[str, Any]]:
        """Run until ``config.steps`` steps are done; returns the metrics records.

        Args:
            resume: continue from ``out_dir/trainer_state.pt`` if it exists (a warning and a
                fresh start if it does not). The metrics log is cut back to the resumed step.

        Raises:
            FloatingPointError: the loss became NaN or infinite.
        """
        config = self.config
        if resume:
            self._load_state()
        elif self.is_main and self.out_dir is not None:
            previous = None
            if config.overwrite:  # every set-up step has succeeded: the new run starts now
                previous = replace_previous_run(self.out_dir)
            elif (self.out_dir / STATE_NAME).is_file():
                logger.warning(
                    "%s holds a previous run; starting a new one that overwrites it (pass "
                    "resume=True to continue it instead)",
                    self.out_dir,
                )
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / METRICS_NAME).write_text("")  # a fresh run starts a fresh log
            if previous is not None:
                from seqagents._files import remove_folder

                remove_folder(previous)
                logger.info("replaced the previous run in %s", self.out_dir)
        if self.step >= config.steps:
            logger.info("nothing to do: %d of %d steps already done", self.step, config.steps)
            return self.history

        self.network.train()
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            desc="train",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not (self.progress_bar and self.is_main),
        )
        timer, timed_steps, grad_norm = time.perf_counter(), 0, torch.zeros(())
        try:
            while self.step < config.steps:
                rng = self.step_rng(self.step)
                loss, grad_norm = self.train_step(self.sample_fn(config.batch_size, rng))
                self._loss_sum += loss
                self._n_summed += 1
                timed_steps += 1
                self.step += 1
                bar.update(1)
                last = self.step == config.steps
                do_eval = bool(config.eval_every) and (self.step % config.eval_every == 0 or last)
                do_log = do_eval or last or self.step % config.log_every == 0
                do_save = last or (
                    bool(config.checkpoint_every) and self.step % config.checkpoint_every == 0
                )
                if not (do_log or do_save):
                    continue
                elapsed = time.perf_counter() - timer
                if do_log:
                    mean_loss = self._loss_sum / self._n_summed
                    record = self._record(mean_loss, grad_norm, timed_steps, elapsed)
                    self._loss_sum.zero_()
                    self._n_summed = 0
                    if do_eval and self.is_main:
                        record["eval"] = self.last_eval = self._evaluate()
                    self._write_record(record)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                if do_save and self.is_main:
                    self._save()
                timer, timed_steps = time.perf_counter(), 0  # samples/s: training time only
        finally:
            bar.close()
            self.network.eval()
            if self._tensorboard is not None:
                self._tensorboard.close()
        if is_distributed():
            check_ranks_in_sync(self.network, self.out_dir if self.is_main else None, self.step)
        return self.history

    def _record(
        self, mean_loss: torch.Tensor, grad_norm: torch.Tensor, n_steps: int, elapsed: float
    ) -> dict[str, Any]:
        loss = float(mean_loss)  # the one host sync per record
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the training loss is {loss} at step {self.step}; lower learning_rate or "
                "grad_clip, or check the dataset for NaN/inf values"
            )
        self.last_loss = loss
        samples = n_steps * self.config.batch_size * self.world_size
        return {
            "step": self.step,
            "loss": loss,
            "lr": self._lr,
            "grad_norm": float(grad_norm),
            "samples_per_s": samples / max(elapsed, 1e-9),
        }

    def _evaluate(self) -> dict[str, Any] | None:
        if self.evaluate is None:
            return None
        self.network.eval()
        try:
            result = self.evaluate(self.step)
        finally:
            self.network.train()
        logger.info("step %d: evaluation %s", self.step, result)
        return result

    def _write_record(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.history.append(record)
        logger.debug("%s", record)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / METRICS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            self._tensorboard.write(record)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain Python values (no pickled objects).

        ``last_eval`` is stored as a JSON string so that any JSON-safe metrics round-trip.
        """
        return {
            "format": _STATE_FORMAT,
            "step": self.step,
            "network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "config": json.dumps(self.config.to_dict()),
            "world_size": self.world_size,
            "last_loss": self.last_loss,
            "last_eval": json.dumps(self.last_eval),
            "loss_sum": self._loss_sum.detach().cpu().clone(),
            "n_summed": self._n_summed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (network, optimizer, scheduler, step)."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError("not a seqagents trainer state (missing format marker)")
        # A field added since the state was saved counts as its default there.
        saved = {**TrainConfig().to_dict(), **json.loads(state["config"])}
        current = self.config.to_dict()
        free = RESUME_FREE_FIELDS
        changed = sorted(k for k in current if k not in free and saved.get(k) != current[k])
        if changed:
            logger.warning(
                "resuming with different settings than the saved run: %s (saved %s); the "
                "result will differ from an uninterrupted run",
                {k: current[k] for k in changed},
                {k: saved.get(k) for k in changed},
            )
        try:
            self.network.load_state_dict(state["network"])
        except RuntimeError as error:
            raise ValueError(
                f"the saved trainer state does not fit this network (different model config?): "
                f"{str(error).splitlines()[0]}"
            ) from error
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.last_loss = state.get("last_loss")
        self.last_eval = json.loads(state.get("last_eval") or "null")
        # States saved before the loss window was kept start a new window (as they did).
        self._loss_sum = state.get("loss_sum", torch.zeros(())).to(self.device).clone()
        self._n_summed = int(state.get("n_summed", 0))

    def _save(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step, {"loss": self.last_loss, "eval": self.last_eval})
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / f"{STATE_NAME}.tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.out_dir / STATE_NAME)  # atomic: a crash never leaves half a file
        logger.info("step %d: saved %s", self.step, self.out_dir / STATE_NAME)

    def _load_state(self) -> None:
        if self.out_dir is None:
            raise ValueError("resume=True needs TrainConfig.out_dir (where trainer_state.pt is)")
        path = self.out_dir / STATE_NAME
        if not path.is_file():
            logger.warning("resume=True but %s does not exist; starting from step 0", path)
            if self.is_main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / METRICS_NAME).write_text("")
            return
        import pickle
        import zipfile

        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            raise ValueError(
                f"{path} cannot be read ({str(e).split('. ')[0][:200]}); it is corrupt or "
                "truncated: restore it, or start the run again without resuming"
            ) from e
        if not isinstance(state, dict):
            raise ValueError(f"{path} is not a seqagents trainer state (not a dict)")
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a complete seqagents trainer state ({e!r})") from e
        logger.info("resumed from %s at step %d", path, self.step)
        metrics = self.out_dir / METRICS_NAME
        if self.is_main and metrics.is_file():
            # Records written after the saved step (a crash between saves) are replayed: drop them.
            try:
                records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
                records = [r for r in records if isinstance(r["step"], int)]
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(
                    f"{metrics} is not a metrics log of JSON records with a step ({e}); restore "
                    "it or move it away to resume without the earlier records"
                ) from e
            self.history = [r for r in records if r["step"] <= self.step]
            metrics.write_text("".join(json.dumps(r) + "\n" for r in self.history))
            if self._tensorboard is not None:
                self._tensorboard.backfill(self.history, self.step)
