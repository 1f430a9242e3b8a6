"""Uploading a prepared checkpoint folder to the Hugging Face Hub.

Split in two so that no work is lost to the network (issue 23, item 4): :func:`check_hub_access`
runs first, before any long evaluation, and says in one line what is missing (a token, the
network, write access to the namespace); :func:`upload_folder` runs last, on a folder that is
already on disk, so that a failed upload can be retried without redoing anything.

Example:
    >>> repo_id = check_hub_access("me/dt-halfcheetah")  # doctest: +SKIP
    >>> upload_folder("runs/push/dt-halfcheetah", repo_id)  # doctest: +SKIP
    'https://huggingface.co/me/dt-halfcheetah/commit/...'
"""

from __future__ import annotations

from pathlib import Path

from seqagents.checkpoints.native import hub_errors, quiet_hub_retries
from seqagents.errors import HubError

__all__ = ["LOGIN_HINT", "check_hub_access", "check_repo_id", "upload_folder"]

LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN to a write token"


def check_hub_access(repo_id: str, token: str | None = None) -> str:
    """Check that ``repo_id`` can be uploaded to, with one request, before any long work.

    Checks that the repo id is well formed, that a token is known (``token``, else ``HF_TOKEN``
    or the one saved by ``hf auth login``), that the Hub answers and accepts the token, that the
    token may write, and that its user may write to the repo's namespace.

    Args:
        repo_id: ``"namespace/name"``, or ``"name"`` for the token's own namespace.
        token: a Hub token; ``None`` uses the saved one.

    Returns:
        The full repo id (``"name"`` becomes ``"<user>/name"``).

    Raises:
        HubError: one line saying what is wrong and how to fix it.
    """
    from huggingface_hub import HfApi, get_token

    check_repo_id(repo_id)
    token = token or get_token()
    if not token:
        raise HubError(f"not logged in to the Hugging Face Hub: {LOGIN_HINT}")
    try:
        with quiet_hub_retries():
            me = HfApi(token=token).whoami()
    except (*hub_errors(), OSError) as e:  # requests' errors are OSErrors
        status = getattr(getattr(e, "response", None), "status_code", None)
        what, fix = (
            ("the Hugging Face Hub refused the token", LOGIN_HINT)
            if status in (401, 403)
            else ("cannot reach the Hugging Face Hub", "check the network (or HF_HUB_OFFLINE)")
        )
        raise HubError(f"{what} ({type(e).__name__}: {_first_line(e)}); {fix}") from e
    user = str(me.get("name", ""))
    role = me.get("auth", {}).get("accessToken", {}).get("role")
    if role == "read":
        raise HubError(f"the token of {user} is read-only: {LOGIN_HINT}")
    namespace, _, name = repo_id.rpartition("/")
    allowed = {user, *(str(org.get("name")) for org in me.get("orgs", []))}
    if namespace and namespace not in allowed:
        raise HubError(
            f"{user} cannot create repos in {namespace!r}; use one of "
            f"{', '.join(sorted(n + '/' + name for n in allowed if n))}"
        )
    return f"{namespace or user}/{name}"


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`HubError` (one line) unless ``repo_id`` is a well-formed Hub repo id.

    Example:
        >>> check_repo_id("me/dt-halfcheetah")
        >>> check_repo_id("me/dt/halfcheetah")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        seqagents.errors.HubError: 'me/dt/halfcheetah' is not a Hub repo id: ...
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HubError(f"{repo_id!r} is not a Hub repo id: {_first_line(e)}") from e


def upload_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    branch: str | None = None,
    commit_message: str = "Upload seqagents checkpoint",
) -> str:
    """Create the Hub repo ``repo_id`` if needed and upload every file of ``folder`` to it.

    Args:
        folder: a checkpoint folder (``config.json``, ``model.safetensors``, ``README.md``).
        repo_id: the Hub repo to create or update.
        private: create the repo as private (an existing repo keeps its visibility).
        token: a Hub token; ``None`` uses the saved one.
        branch: the branch to commit to (``None``: the default branch).
        commit_message: the commit's message.

    Returns:
        The commit URL.

    Raises:
        huggingface_hub's and requests' errors, unchanged (the caller knows what to retry).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), revision=branch, commit_message=commit_message
    )
    return str(getattr(info, "commit_url", info))


def _first_line(error: BaseException) -> str:
    """An exception's message on one line (the Hub's errors span several)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
