"""Publish a hub folder to the Hugging Face Hub with huggingface_hub's HfApi.

What happens, in order: the folder is listed (temporary and cache files are skipped, see
:data:`SKIP_RULES`); the model card is refreshed from ckptkit.json so its snippet names the
repo (a folder of parts also gets a top-level card, :mod:`ckptkit.hub.publish`); every
``ckptkit.json`` is sent as its public copy (local paths made relative, see
:mod:`ckptkit.output.paths_public`; ``card_paths="full"`` keeps them); the repo is created if missing; the branch named by ``revision`` is created if missing;
then every file goes up in **one commit** (``HfApi.create_commit``; large files go to the Hub's
large-file storage first and are committed only once all have arrived). Folders past
:data:`LARGE_FOLDER_FILES` files or :data:`LARGE_FOLDER_BYTES` bytes use huggingface_hub's
large-folder path (``HfApi.upload_folder``: streamed, resumable, several commits).

Nothing is left that a retry cannot complete: a commit either lands whole or not at all, and
running the same call again skips what the Hub already has. Every failure becomes one
:class:`~ckptkit.errors.HubError` line saying what to do; the token is never printed.

Example:
    >>> result = upload_folder("out/kobert", repo_id="me/kobert", dry_run=True)  # doctest: +SKIP
    >>> [f.path for f in result.uploaded]  # doctest: +SKIP
    ['README.md', 'ckptkit.json', 'config.json', 'model.safetensors']
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptkit import __version__
from ckptkit.errors import CheckpointNotFoundError, CkptkitError, HubError, UsageError, register_secret
from ckptkit.hub.publish import PUBLIC_JSON_FILES, card_steps, published_bytes, refresh_cards
from ckptkit.hub.translate import translate
from ckptkit.output.names import MARKER_FILE
from ckptkit.output.paths_public import PATH_MODES

__all__ = ["upload_folder", "plan_files", "UploadResult", "FileAction", "resolve_endpoint",
           "SKIP_RULES", "LARGE_FOLDER_FILES", "LARGE_FOLDER_BYTES"]

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
LARGE_FOLDER_FILES = 256
LARGE_FOLDER_BYTES = 20 * 2**30
# files the Hub stores in large-file storage (it decides; this is only the dry-run's guess)
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".model", ".npz", ".onnx")
LFS_MIN_BYTES = 10 * 2**20

# (glob on the path relative to the folder, or on any one of its parts) -> why it is not uploaded
SKIP_RULES: tuple[tuple[str, str], ...] = (
    (".git", "git metadata"),
    (".cache", "cache"),
    ("__pycache__", "cache"),
    (".ipynb_checkpoints", "cache"),
    ("*.pyc", "cache"),
    (".DS_Store", "cache"),
    ("*.tmp", "temporary file"),
    (".tmp*", "temporary file"),
    (".*.tmp.*", "temporary file"),
    ("*.part", "temporary file"),
    ("*.partial", "temporary file"),
    ("*.incomplete", "temporary file"),
    ("*.lock", "temporary file"),
    ("*~", "temporary file"),
    (".*.swp", "temporary file"),
    ("checkpoint-*", "training checkpoint (distill train --resume state)"),
    ("teacher-cache", "cached teacher outputs (distill train --cache-teacher)"),
    ("ranks", "per-process training state"),
    (MARKER_FILE, "ckptkit's output-folder marker (local only)"),
    ("training_args.bin", "pickled training arguments (local paths; ckptkit.json keeps the training summary)"),
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass(frozen=True)
class FileAction:
    """One file of the folder and what the upload does with it (``upload``, ``upload (LFS)``, ``skip: …``)."""

    path: str
    size: int
    action: str

    @property
    def skipped(self) -> bool:
        return self.action.startswith("skip")


@dataclass(frozen=True)
class UploadResult:
    """What :func:`upload_folder` did (or, with ``dry_run``, would do)."""

    repo_id: str
    revision: str
    commit_message: str
    dry_run: bool
    strategy: str  # "single commit" | "large folder"
    steps: tuple[str, ...]
    files: tuple[FileAction, ...]
    endpoint: str
    repo_url: str | None = None
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None

    @property
    def uploaded(self) -> list[FileAction]:
        return [f for f in self.files if not f.skipped]

    @property
    def skipped(self) -> list[FileAction]:
        return [f for f in self.files if f.skipped]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.uploaded)

    @property
    def url(self) -> str | None:
        """The page to look at: the pull request, else the commit, else the repo."""
        return self.pr_url or self.commit_url or self.repo_url

    def to_json(self) -> dict[str, Any]:
        """Same as :meth:`to_dict` (the name other ckptkit results use)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``ckptkit upload --json`` prints)."""
        return {
            "repo_id": self.repo_id, "revision": self.revision, "commit_message": self.commit_message,
            "dry_run": self.dry_run, "strategy": self.strategy, "steps": list(self.steps),
            "endpoint": self.endpoint, "repo_url": self.repo_url, "commit_url": self.commit_url,
            "commit_oid": self.commit_oid, "pr_url": self.pr_url, "url": self.url, "total_bytes": self.total_bytes,
            "files": [{"path": f.path, "size": f.size, "action": f.action} for f in self.files],
        }


# ----------------------------------------------------------------------------- planning (no network)
def _skip_reason(relative: str) -> str | None:
    parts = relative.split("/")
    for pattern, reason in SKIP_RULES:
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return reason
    return None


def _upload_action(relative: str, size: int) -> str:
    return "upload (LFS)" if size >= LFS_MIN_BYTES or relative.endswith(LFS_SUFFIXES) else "upload"


def plan_files(folder: str | os.PathLike) -> list[FileAction]:
    """Every file under ``folder`` (sorted) with its size and what an upload does with it.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "config.json").write_text("{}"); _ = (d / "model.safetensors.tmp").write_text("x")
        >>> [(f.path, f.action) for f in plan_files(d)]
        [('config.json', 'upload'), ('model.safetensors.tmp', 'skip: temporary file')]
    """
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointNotFoundError("folder does not exist", path=root, hint="give the folder ckptkit wrote")
    actions = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        size = path.stat().st_size
        reason = _skip_reason(relative)
        actions.append(FileAction(relative, size, f"skip: {reason}" if reason else _upload_action(relative, size)))
    return actions


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The Hub URL to talk to: ``endpoint``, else ``$HF_ENDPOINT`` (read now, not at import), else huggingface.co.

    Example:
        >>> resolve_endpoint("http://127.0.0.1:8000/")
        'http://127.0.0.1:8000'
    """
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _steps(*, repo_id: str, private: bool, revision: str, create_pr: bool, strategy: str, message: str,
           n_files: int, card_lines: list[str]) -> tuple[str, ...]:
    steps = list(card_lines)
    steps.append(f"create {'private' if private else 'public'} repo {repo_id} if missing")
    if revision != DEFAULT_REVISION:
        steps.append(f"create branch '{revision}' if missing" if not create_pr else
                     f"target existing branch '{revision}'")
    target = f"a pull request against '{revision}'" if create_pr else f"branch '{revision}'"
    how = "in one commit" if strategy == "single commit" else "with the resumable large-folder upload"
    steps.append(f"upload {n_files} files {how} to {target}: {message!r}")
    return tuple(steps)


# ----------------------------------------------------------------------------- the upload
def _check_options(repo_id: str, *, revision: str, create_pr: bool, strategy: str, card_paths: str) -> None:
    if card_paths not in PATH_MODES:
        raise UsageError(f"--card-paths {card_paths!r}", hint="one of " + ", ".join(PATH_MODES))
    if "{part}" in repo_id:
        raise UsageError(f"--repo-id {repo_id!r}: {{part}} is for a folder of parts (ELECTRA's discriminator and "
                         "generator)", hint="upload the folder that holds the parts, or drop {part}")
    if not _REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r} is not NAMESPACE/NAME",
                         hint="e.g. --repo-id my-user/kobert-base (letters, digits, '-', '_', '.')")
    if create_pr and strategy == "large folder" and revision != DEFAULT_REVISION:
        raise UsageError("a large-folder upload opens pull requests against 'main' only",
                         hint="drop --revision or --create-pr")


def _quiet_hub_progress() -> None:
    from ckptkit.progress import is_quiet

    if is_quiet() or not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _allow_pattern(path: str) -> str:
    return glob.escape(path)


def upload_folder(folder: str | os.PathLike, *, repo_id: str, private: bool = False,
                  commit_message: str | None = None, revision: str | None = None, create_pr: bool = False,
                  token: str | None = None, dry_run: bool = False, endpoint: str | None = None,
                  update_card: bool = True, large: bool | None = None, card_paths: str = "public") -> UploadResult:
    """Upload a hub folder to ``repo_id`` in one commit (create the repo and branch if missing).

    Args:
        folder: the folder ckptkit wrote (config.json, weights, README.md, ckptkit.json, ...).
        repo_id: ``NAMESPACE/NAME`` on the Hub.
        private: create the repo private (an existing repo keeps its visibility).
        commit_message: default ``"Upload NAME with ckptkit VERSION"``.
        revision: the branch to commit to (created if missing); default ``main``.
        create_pr: open a pull request instead of committing to the branch.
        token: default: huggingface_hub's lookup (``HF_TOKEN``, then ``hf auth login``'s file).
        dry_run: only list the files and the steps; needs neither a token nor the network.
        endpoint: the Hub URL; default ``$HF_ENDPOINT`` read at call time, else huggingface.co.
        update_card: refresh README.md from ckptkit.json first (when the folder has one).
        large: force (True) or forbid (False) the large-folder upload; default: by size.
        card_paths: ``"public"``: the cards and the uploaded ckptkit.json show local paths relative
            to the working directory, or only the file's own name when outside it; ``"full"`` keeps them.

    Returns:
        An :class:`UploadResult` (commit URL, pull request URL, every file and its action).

    Raises:
        HubError: one line saying what went wrong and what to do.

    Example:
        >>> upload_folder("out/kobert", repo_id="me/kobert", private=True)  # doctest: +SKIP
        UploadResult(repo_id='me/kobert', ..., commit_url='https://huggingface.co/me/kobert/commit/...')
    """
    folder = Path(folder)
    files, plan = _plan(folder, repo_id=repo_id, private=private, commit_message=commit_message,
                        revision=revision, create_pr=create_pr, endpoint=endpoint,
                        update_card=update_card, large=large, card_paths=card_paths)
    if dry_run:
        return UploadResult(dry_run=True, files=tuple(files), **plan)
    if update_card:
        refresh_cards(folder, repo_id=repo_id, card_paths=card_paths)
        files = plan_files(folder)
    pushed = _push(folder, [f for f in files if not f.skipped], plan, private=private, revision=revision,
                   create_pr=create_pr, token=token, card_paths=card_paths)
    return UploadResult(dry_run=False, files=tuple(files), **pushed, **plan)


def _plan(folder: Path, *, repo_id: str, private: bool, commit_message: str | None, revision: str | None,
          create_pr: bool, endpoint: str | None, update_card: bool,
          large: bool | None, card_paths: str) -> tuple[list[FileAction], dict[str, Any]]:
    """The files and what the upload will do (no network): strategy, branch, message, steps."""
    files = plan_files(folder)
    uploads = [f for f in files if not f.skipped]
    if not uploads:
        raise UsageError("nothing to upload", path=folder, hint="the folder has no files besides skipped ones")
    if large is None:
        large = len(uploads) > LARGE_FOLDER_FILES or sum(f.size for f in uploads) > LARGE_FOLDER_BYTES
    strategy = "large folder" if large else "single commit"
    branch = revision or DEFAULT_REVISION
    _check_options(repo_id, revision=branch, create_pr=create_pr, strategy=strategy, card_paths=card_paths)
    message = commit_message or f"Upload {repo_id.split('/')[1]} with ckptkit {__version__}"
    steps = _steps(repo_id=repo_id, private=private, revision=branch, create_pr=create_pr, strategy=strategy,
                   message=message, n_files=len(uploads),
                   card_lines=card_steps(folder, card_paths=card_paths) if update_card else [])
    return files, dict(repo_id=repo_id, revision=branch, commit_message=message, strategy=strategy, steps=steps,
                       endpoint=resolve_endpoint(endpoint))


def _operations(folder: Path, uploads: list[FileAction], *, card_paths: str) -> list:
    """One ``CommitOperationAdd`` per file; ckptkit's own JSON files are sent as their public copies."""
    from huggingface_hub import CommitOperationAdd

    return [CommitOperationAdd(path_in_repo=f.path,
                               path_or_fileobj=published_bytes(folder, f.path, card_paths=card_paths)
                               or str(folder / f.path))
            for f in uploads]


def _push(folder: Path, uploads: list[FileAction], plan: dict[str, Any], *, private: bool, revision: str | None,
          create_pr: bool, token: str | None, card_paths: str) -> dict[str, str | None]:
    """Create the repo (and branch) and commit ``uploads``; every failure becomes one HubError line."""
    repo_id, branch, message, hub = plan["repo_id"], plan["revision"], plan["commit_message"], plan["endpoint"]
    context = {"repo_id": repo_id, "namespace": repo_id.split("/")[0], "revision": branch, "endpoint": hub}
    resolved_token = token
    register_secret(token)
    try:
        from huggingface_hub import HfApi, get_token

        _quiet_hub_progress()
        resolved_token = token or get_token()
        register_secret(resolved_token)  # redacted from every message, log line and --debug traceback
        if not resolved_token:
            raise HubError("no Hugging Face token found", hint="set HF_TOKEN or run `hf auth login` with a write token")
        api = HfApi(endpoint=hub, token=resolved_token, library_name="ckptkit", library_version=__version__)
        repo_url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
        if branch != DEFAULT_REVISION and not create_pr:
            api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
        records = [f for f in uploads if f.path.rsplit("/", 1)[-1] in PUBLIC_JSON_FILES]
        if plan["strategy"] == "large folder":
            info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message,
                                     revision=revision, create_pr=create_pr, repo_type="model",
                                     allow_patterns=[_allow_pattern(f.path) for f in uploads if f not in records])
            if records:  # the public copies of the records, in a last small commit
                info = api.create_commit(repo_id, _operations(folder, records, card_paths=card_paths),
                                         commit_message=message, revision=revision, create_pr=create_pr,
                                         repo_type="model")
        else:
            info = api.create_commit(repo_id, _operations(folder, uploads, card_paths=card_paths),
                                     commit_message=message, revision=revision, create_pr=create_pr,
                                     repo_type="model")
    except CkptkitError:
        raise
    except Exception as e:  # the one translation point: huggingface_hub, HTTP and network errors
        raise translate(e, context, resolved_token) from e
    return dict(repo_url=str(repo_url), commit_url=getattr(info, "commit_url", None),
                commit_oid=getattr(info, "oid", None), pr_url=getattr(info, "pr_url", None))
