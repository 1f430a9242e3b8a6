"""``seqagents push``: evaluate, record a replay, write the folder with its card, upload it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seqagents.cli.common import UserError, emit, shown

__all__ = ["cmd_push"]


def cmd_push(args: argparse.Namespace) -> None:
    """Evaluate, record a replay, write the folder with the model card, then upload it.

    Nothing is lost to the network (issue 23): the Hub login is checked before the evaluation
    runs, the folder (``--out``, else ``runs/push/<repo name>``) is written before the upload,
    and a failed upload names the folder and the command that retries it
    (``seqagents push --from-folder DIR REPO``). With ``--out`` nothing is uploaded.
    """
    import tempfile

    from seqagents.errors import require

    if args.from_folder:
        return _push_prepared_folder(args)
    if args.repo is None:
        raise UserError("push needs MODEL and REPO (or --from-folder DIR REPO)")
    if args.video:
        require("moviepy", "video")
    without_hub = "or pass --out DIR to write the folder without uploading"
    repo = _hub_access(args.repo, without_hub, login=not args.out)
    folder = Path(args.out or Path("runs") / "push" / repo.rpartition("/")[2])
    try:
        folder.mkdir(parents=True, exist_ok=True)  # a folder we cannot write fails here, first
    except OSError as e:
        raise UserError(f"cannot create the push folder {folder}: {e.strerror or e}") from e
    from seqagents.cli.evaluate import evaluate_model, record_episodes

    report, agent, entry = evaluate_model(
        args, args.model, env_id=None, n_envs=1, all_targets=False
    )
    record = report.to_record(command=_evaluate_command(args, repo))
    agent.config = agent.config.replace(evaluation=record)
    with tempfile.TemporaryDirectory() as tmp:
        video = None
        if args.video:
            video = record_episodes(agent, entry, args, f"{tmp}/replay.mp4", 1, env_id=None)
        for stale in folder.glob("replay.*"):  # an earlier push's replay is not this card's
            stale.unlink()
        agent._write_folder(folder, location=repo, video=video, public=True)
    where = shown(str(folder))
    url = None if args.out else _upload_prepared(folder, repo, args.private)
    summary = {"repo": repo, "uploaded": url is not None, "folder": where, "at": url or where}
    if url is None:
        text = f"{repo}: wrote {where}; upload it with: seqagents push --from-folder {where} {repo}"
    else:
        text = f"{repo}: {url} (mean return {report.results[0].mean_return:.2f})"
    emit(args.json, {**summary, **agent.config.evaluation}, text, indent=None)


def _evaluate_command(args: argparse.Namespace, repo: str) -> str:
    """The ``seqagents evaluate`` command that measures the push's results again from the Hub
    repo (stored with them: the card's "Reproduce" section)."""
    command = f"seqagents evaluate {repo} --episodes {args.episodes} --seed {args.seed}"
    if args.target_return:
        command += f" --target-return {args.target_return[0]:g}"
    command += {None: "", True: " --deterministic", False: " --stochastic"}[args.deterministic]
    if args.max_steps:
        command += f" --max-steps {args.max_steps}"
    return command


def _hub_access(repo: str, otherwise: str, login: bool = True) -> str:
    """The full repo id once the Hub login is known to work (``login=False``: once the id is
    well formed), else a one-line error (exit 2) that says how to log in and, ``otherwise``,
    what to do without the Hub."""
    from seqagents.checkpoints.hub import check_hub_access, check_repo_id
    from seqagents.errors import HubError

    try:
        if not login:
            check_repo_id(repo)
            return repo
        return check_hub_access(repo)
    except HubError as e:
        raise UserError(f"{e}; {otherwise}" if login else str(e)) from e


def _upload_prepared(folder: Path, repo: str, private: bool) -> str:
    """Upload ``folder`` to ``repo``; any failure is one line naming the folder to retry with."""
    from seqagents.checkpoints.hub import upload_folder
    from seqagents.checkpoints.native import quiet_hub_retries

    where = shown(str(folder))
    try:
        with quiet_hub_retries():
            return upload_folder(folder, repo, private=private or None)
    except Exception as e:  # whatever failed, the work is on disk: say how to upload it later
        logging.getLogger(__name__).info("upload of %s failed", where, exc_info=True)
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"upload to {repo} failed ({type(e).__name__}: {reason}); the prepared folder is "
            f"kept in {where}; retry with: seqagents push --from-folder {where} {repo}"
        ) from e


def _push_prepared_folder(args: argparse.Namespace) -> None:
    """``seqagents push --from-folder DIR REPO``: upload a folder an earlier push prepared."""
    from seqagents.checkpoints.native import CONFIG_NAME, WEIGHTS_NAME

    if args.repo is not None or args.out:
        raise UserError("--from-folder takes only REPO: seqagents push --from-folder DIR REPO")
    folder = Path(args.from_folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, "README.md") if not (folder / n).is_file()]
    if missing:
        raise UserError(
            f"{folder} is not a folder prepared by seqagents push (no {', '.join(missing)}); "
            "prepare one with: seqagents push MODEL REPO --out DIR"
        )
    repo = _hub_access(args.model, "nothing was uploaded")  # the one positional is REPO
    if repo not in (folder / "README.md").read_text():
        raise UserError(
            f"{folder} was prepared for another repo (its card does not name {repo}); prepare "
            f"it again with: seqagents push MODEL {repo} --out {folder}"
        )
    url = _upload_prepared(folder, repo, args.private)
    where = shown(str(folder))
    summary = {"repo": repo, "uploaded": True, "folder": where, "at": url}
    emit(args.json, summary, f"{repo}: {url} (uploaded {where})", indent=None)
