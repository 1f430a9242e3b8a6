"""Checkpoint reading and writing of the agents: ``from_pretrained``, ``save_pretrained``,
``push_to_hub``, ``export`` and the model card.

Owns the agent's side of the native format (``config.json`` + ``model.safetensors`` + model
card, read and written through ``huggingface_hub``'s :class:`ModelHubMixin`, never pickle):
resolving a Hub id, local folder or zoo entry name; reading a folder's files from one version;
dispatching to the algorithm's loader (native or foreign format); atomic saves. The agent's
:class:`~seqagents.config.AgentConfig` is written as it is: nothing is copied into it here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import torch
from huggingface_hub import ModelCard, ModelHubMixin
from huggingface_hub.errors import HFValidationError
from safetensors.torch import save_file
from torch import nn

from seqagents._device import resolve_device
from seqagents._files import check_regular_file, read_files
from seqagents.checkpoints.card import model_card, public_spec
from seqagents.checkpoints.native import (
    CONFIG_NAME,
    FORMAT,
    WEIGHTS_NAME,
    CheckpointFiles,
    build_network,
    hub_errors,
    load_weights,
    not_found,
    quiet_hub_retries,
)
from seqagents.config import AgentConfig
from seqagents.errors import CheckpointError

__all__ = ["CheckpointIO"]

_AgentT = TypeVar("_AgentT", bound="CheckpointIO")
_MAX_CONFIG_BYTES = 1 << 26  # 64 MB of config.json, far above any real one (< 1 MB)


class CheckpointIO(ModelHubMixin):
    """The checkpoint methods of :class:`~seqagents.agents.base.SequenceAgent`.

    An agent class names its ``algorithm`` and supplies ``_from_config`` (native checkpoint),
    ``_from_foreign`` (a supported foreign format) and ``_state_dict_to_save``; ``config`` is
    its :class:`~seqagents.config.AgentConfig`.
    """

    algorithm: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Any]]] = {}  # algorithm -> agent class

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("algorithm"):  # a class naming its own algorithm, not a subclass
            CheckpointIO._registry[cls.algorithm] = cls  # of one (that keeps its loader)

    network_class: ClassVar[type[nn.Module]]  # the algorithm's network (built from config.model)

    @classmethod
    def _from_config(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> Any:
        """A native checkpoint: its config (with ``overrides``, one validation) and weights."""
        saved = AgentConfig.from_dict(config)
        network = build_network(cls.network_class, saved.model, files.model_id)
        load_weights(network, files.load_safetensors(), files.model_id)
        return cls(network, saved.replace(**overrides), device)  # type: ignore[call-arg]

    @classmethod
    def _from_foreign(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> Any:
        raise CheckpointError(f"{files.model_id}: {cls.__name__} reads no foreign format")

    def _state_dict_to_save(self) -> dict[str, torch.Tensor]:
        return self.network.state_dict()  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[_AgentT],
        repo_id_or_path: str | Path,
        *,
        revision: str | None = None,
        device: str = "auto",
        cache_dir: str | Path | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        env: gym.Env | None = None,
        **overrides: Any,
    ) -> _AgentT:
        """Load an agent from a Hub repo id, a local folder or a zoo entry name.

        Args:
            repo_id_or_path: ``"user/repo"`` on the Hugging Face Hub, a local directory
                holding ``config.json`` (native ``model.safetensors``, or a supported foreign
                format such as transformers' ``decision_transformer``), or a zoo entry name
                with a checkpoint (``"halfcheetah-medium"``, ``"dt/breakout"``).
            revision: Hub branch, tag or commit.
            device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:0"``, ...
            env: optional env to check the checkpoint's spaces against.
            **overrides: algorithm options, e.g. ``target_return=6000`` for DT.

        Raises:
            CheckpointError: missing, corrupt or mismatched checkpoint (the message says why).
        """
        resolve_device(device)  # an unknown or absent device fails before any download
        path = Path(repo_id_or_path)
        if path.exists() and not path.is_dir():
            raise CheckpointError(f"{path} is a file; expected a checkpoint folder or Hub repo id")
        if not path.exists():  # a zoo entry name ("halfcheetah-medium") -> its checkpoint
            from seqagents.zoo import did_you_mean, resolve_model

            try:
                repo_id_or_path = resolve_model(str(repo_id_or_path))[0]
            except LookupError as e:
                raise CheckpointError(str(e)) from e
            path = Path(repo_id_or_path)
        if not path.exists() and str(repo_id_or_path).count("/") != 1:
            raise CheckpointError(
                f"{repo_id_or_path!r} is neither an existing local folder, a zoo entry nor a Hub "
                f"repo id of the form 'user/name'{did_you_mean(str(repo_id_or_path))}"
            )
        agent = cls._read_checkpoint(
            path,
            str(repo_id_or_path),
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
            device=device,
            overrides=overrides,
        )
        if env is not None:
            agent.check_env(env)
        return agent

    @classmethod
    def _read_checkpoint(
        cls: type[_AgentT],
        path: Path,
        repo_id_or_path: str,
        *,
        revision: str | None,
        cache_dir: str | Path | None,
        token: str | bool | None,
        local_files_only: bool,
        force_download: bool,
        device: str,
        overrides: dict,
    ) -> _AgentT:
        """Read the checkpoint (see :meth:`from_pretrained`).

        A local folder's ``config.json`` and ``model.safetensors`` are read at once, from one
        version of the folder (:func:`seqagents._files.read_files`): a folder re-saved meanwhile
        (``save_pretrained`` swaps in a whole new one) gives the old or the new checkpoint,
        never one's config with the other's weights.
        """
        if path.is_dir():
            from seqagents.checkpoints import native  # MAX_PARAMETERS may be raised at run time

            weights = 8 * native.MAX_PARAMETERS + 2**26  # float64 at most, plus the header
            limits = {CONFIG_NAME: _MAX_CONFIG_BYTES, WEIGHTS_NAME: weights}
            preloaded = read_files(path, [CONFIG_NAME, WEIGHTS_NAME], CheckpointError, limits)
            config = None
            if CONFIG_NAME in preloaded:
                config = _read_config(path / CONFIG_NAME, preloaded[CONFIG_NAME])
            return cls._from_pretrained(
                model_id=repo_id_or_path,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
                config=config,
                device=device,
                overrides=overrides,
                preloaded=preloaded,
            )
        try:
            # config.json read here first from the Hub: bad JSON or a non-object is an error
            # naming the file (the mixin would raise a bare JSONDecodeError/AttributeError)
            files = CheckpointFiles(
                repo_id_or_path, revision, cache_dir, force_download, local_files_only, token
            )
            _read_config(files.path(CONFIG_NAME))
            with quiet_hub_retries():
                return super().from_pretrained(
                    repo_id_or_path,
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=local_files_only,
                    force_download=force_download,
                    device=device,
                    overrides=overrides,
                )
        except HFValidationError as e:
            raise CheckpointError(f"{repo_id_or_path!r} is not a valid Hub repo id: {e}") from e
        except hub_errors() as e:
            raise not_found(repo_id_or_path, e) from e

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        device: str = "auto",
        overrides: dict | None = None,
        preloaded: dict[str, bytes] | None = None,
        **_: Any,
    ) -> Any:
        files = CheckpointFiles(
            model_id, revision, cache_dir, force_download, local_files_only, token, preloaded
        )
        if config is None and not os.path.isdir(model_id):
            files.path(CONFIG_NAME)  # the mixin swallows Hub misses: raise the real reason
        if config is None:
            raise CheckpointError(
                f"{model_id}: no {CONFIG_NAME} found; a checkpoint folder needs {CONFIG_NAME} "
                f"and {WEIGHTS_NAME} (written by save_pretrained)"
            )
        if config.get("format") == FORMAT:
            algorithm = config.get("algorithm")
            target = cls._registry.get(algorithm)
            if target is None:
                raise CheckpointError(
                    f"{model_id}/{CONFIG_NAME} names algorithm {algorithm!r}; seqagents loads "
                    f"{sorted(cls._registry)}. Fix the file or re-save the checkpoint"
                )
            if cls.algorithm and not issubclass(cls, target):
                raise CheckpointError(
                    f"{model_id} is a {algorithm!r} checkpoint; load it with "
                    f"{target.__name__}.from_pretrained or seqagents.load_agent"
                )
            try:
                maker = cls if cls.algorithm else target  # a subclass loads as itself
                return maker._from_config(config, files, device, overrides or {})
            except ValueError as e:  # a config section or override that is rejected
                if str(e).startswith(model_id):
                    raise
                where = f"{model_id}/{CONFIG_NAME}" + (" or the overrides" if overrides else "")
                raise CheckpointError(f"{where}: {e}") from e
        from seqagents.checkpoints import foreign_algorithm

        algorithm = foreign_algorithm(config, model_id, cls.algorithm)
        import seqagents.agents  # noqa: F401  (registers every agent class)

        return cls._registry[algorithm]._from_foreign(config, files, device, overrides or {})

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write the checkpoint folder: ``config.json``, ``model.safetensors``, ``README.md``.

        The write is atomic: the folder is written as a hidden temporary sibling and swapped
        into place, so a save that fails half-way (a full disk, a crash) leaves the previous
        checkpoint as it was, and a reader (:meth:`from_pretrained`, another process) sees the
        old checkpoint or the new one, never one's config beside the other's weights. Other
        files in an existing folder (a replay video, ``metrics.jsonl``) are carried over.
        Symbolic links are never written through: a link in the folder (a Hub cache snapshot is
        made of links into its blob store) is replaced by a file, a link as the folder itself by
        a folder. Files get the modes of the user's umask.

        Args:
            save_directory: the checkpoint folder (created with its parents if needed).
            push_to_hub: also upload it with :meth:`push_to_hub` (to ``repo_id``, default the
                folder name, with ``push_to_hub_kwargs``).

        Raises:
            FileExistsError: ``save_directory`` is a file.
            ValueError: ``save_directory`` is the working folder or holds it.
            OSError: the folder could not be written (the previous checkpoint is unchanged).
        """
        from seqagents._files import apply_umask, remove_folder, swap_into_place, temp_sibling

        target = Path(os.path.abspath(save_directory))
        if Path.cwd().resolve().is_relative_to(target.resolve()):
            raise ValueError(
                f"save_pretrained({str(save_directory)!r}): the working folder (or one holding "
                "it) cannot be replaced; save into a sub-folder"
            )
        if target.exists() and not target.is_dir():
            raise FileExistsError(
                f"{target} is a file; save_pretrained writes a checkpoint folder: pass a folder"
            )
        new = temp_sibling(target)
        try:
            self._write_folder(new, location=str(save_directory))
            _carry_over(target, new)
            apply_umask(new)
            swap_into_place(new, target)
        except BaseException:
            remove_folder(new)
            raise
        if push_to_hub:
            return self.push_to_hub(repo_id or target.name, **push_to_hub_kwargs)
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        self._write_folder(Path(save_directory), location=str(save_directory))

    def _write_folder(
        self,
        directory: Path,
        location: str,
        video: str | Path | None = None,
        public: bool = False,
    ) -> None:
        """``config.json``, ``model.safetensors`` and a fresh model card (``README.md``, always
        rewritten so that it describes what is saved) whose usage snippet loads ``location``;
        a ``video`` is copied in as ``replay<suffix>`` and shown in the card. ``public``: the
        folder is for the Hub, so its ``config.json`` holds no local path either (the card
        never does). A link in the way of one of these files is replaced, never written
        through; the files written get the modes of the user's umask."""
        from seqagents._files import apply_umask, remove_entry, write_text

        saved = self.config.to_checkpoint()  # type: ignore[attr-defined]
        spec = public_spec(saved) if public else saved
        write_text(directory / CONFIG_NAME, json.dumps(spec.to_dict(), indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self._state_dict_to_save().items()}
        remove_entry(directory / WEIGHTS_NAME)
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        written = [CONFIG_NAME, WEIGHTS_NAME, "README.md"]
        replay = None
        if video is not None:
            replay = f"replay{Path(video).suffix}"
            remove_entry(directory / replay)
            shutil.copyfile(video, directory / replay)
            written.append(replay)
        card = model_card(saved, type(self).__name__, location=location, replay=replay)
        write_text(directory / "README.md", str(card))
        apply_umask(directory, written)

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        video: str | Path | None = None,
        commit_message: str = "Upload seqagents checkpoint",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
    ) -> str:
        """Upload the checkpoint (config, weights, model card) and an optional replay video to
        the Hub repo ``repo_id``, creating it if needed; returns the commit URL. The uploaded
        config and card hold no local path (the run folder is dropped, absolute paths are
        reduced to their names).

        Example:
            >>> agent.push_to_hub("me/dt-halfcheetah", video="replay.mp4")  # doctest: +SKIP
        """
        from huggingface_hub import HfApi

        from seqagents.checkpoints.hub import upload_folder

        if "/" not in repo_id:  # the card's snippet names the full id
            repo_id = f"{HfApi(token=token).whoami()['name']}/{repo_id}"
        with tempfile.TemporaryDirectory() as tmp:
            self._write_folder(Path(tmp), location=repo_id, video=video, public=True)
            return upload_folder(
                tmp,
                repo_id,
                private=private,
                token=token,
                branch=branch,
                commit_message=commit_message,
            )

    def export(self, path: str | Path, **kwargs: Any) -> dict[str, Any]:
        """Write the greedy policy, preprocessing inside, to ``path`` (``.pt``: TorchScript,
        ``.onnx``: ONNX) for use without seqagents; see :func:`seqagents.export.export_policy`
        (Decision Transformer agents with Box observations).

        Example:
            >>> agent.export("policy.onnx")  # doctest: +SKIP
        """
        from seqagents.export import export_policy

        return export_policy(self, path, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """A model card with the measured results as Hub ``model-index`` metadata."""
        spec = self.config.to_checkpoint()  # type: ignore[attr-defined]
        return model_card(spec, type(self).__name__, location=kwargs.get("location"))


def _carry_over(old: Path, new: Path) -> None:
    """Put into ``new`` the entries of the folder ``old`` that ``new`` lacks (what a save does not
    write: a replay video, ``metrics.jsonl``): files as hard links where the file system allows
    (no copy of the data), links as links, folders recursively."""
    if not old.is_dir():
        return

    def link_or_copy(source: str, destination: str) -> None:
        try:
            os.link(source, destination, follow_symlinks=False)
        except OSError:
            shutil.copy2(source, destination, follow_symlinks=False)

    from seqagents._files import TEMP_MARKERS

    for entry in os.scandir(old):
        if os.path.lexists(new / entry.name):
            continue
        if entry.name.startswith(".") and any(m in entry.name for m in TEMP_MARKERS):
            continue  # another save's temporary folder, not part of the checkpoint
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), new / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry.path, new / entry.name, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(entry.path, str(new / entry.name))


def _read_config(path: Path, data: bytes | None = None) -> dict:
    """A checkpoint's ``config.json`` (its bytes ``data`` when read already) as a dict, or a
    :class:`CheckpointError` naming the file."""
    try:
        if data is None:
            check_regular_file(path, CheckpointError)
            data = path.read_bytes()
        config = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(
            f"{path} is not valid JSON ({e}); re-save the checkpoint or restore the file"
        ) from e
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} holds a JSON {type(config).__name__}; expected an object (written by "
            "save_pretrained)"
        )
    return config
