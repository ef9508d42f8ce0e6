"""The one place where huggingface_hub, HTTP and network errors become a one-line :class:`HubError`.

Rules are a table (:func:`_error_rules`): the first rule matching the error or one of its causes
gives the message and what to do; the token is registered as a secret and never shown.

Example:
    >>> error = translate(ConnectionError("refused"), {"repo_id": "me/x", "namespace": "me",
    ...     "revision": "main", "endpoint": "https://huggingface.co"}, token=None)
    >>> print(error)
    cannot reach https://huggingface.co (ConnectionError) (check the network connection (or HF_ENDPOINT / --endpoint), then run the same command again to resume)
"""

from __future__ import annotations

from typing import Callable

from ckptkit.errors import HubError, redact, register_secret

__all__ = ["translate"]


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _server_says(error: BaseException) -> str:
    text = getattr(error, "server_message", None) or str(error)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().endswith("Client Error.")),
                "")
    return line[:200]


def _error_rules() -> list[tuple[Callable[[BaseException], bool], Callable[[BaseException, dict], tuple[str, str]]]]:
    """(matches, (message, hint)) pairs, first match wins; imports huggingface_hub lazily."""
    from huggingface_hub import errors as hf

    try:
        import httpx2 as httpx
    except ImportError:  # huggingface_hub < 2 uses httpx
        import httpx  # type: ignore[no-redef]
    http = hf.HfHubHTTPError

    def status(*codes: int) -> Callable[[BaseException], bool]:
        return lambda e: isinstance(e, http) and _status(e) in codes

    def is_(*types: type) -> Callable[[BaseException], bool]:
        return lambda e: isinstance(e, types)

    return [
        (is_(hf.OfflineModeIsEnabled), lambda e, c: (
            "huggingface_hub is in offline mode", "unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE to upload")),
        (is_(hf.LocalTokenNotFoundError), lambda e, c: (
            "no Hugging Face token found", "set HF_TOKEN or run `hf auth login` with a write token")),
        (status(401), lambda e, c: (
            f"{c['endpoint']} rejected the token (401 Unauthorized) for {c['repo_id']}",
            "set a valid write token in HF_TOKEN or run `hf auth login`, then run the same command again")),
        (is_(hf.RevisionNotFoundError), lambda e, c: (
            f"branch '{c['revision']}' does not exist in {c['repo_id']}",
            "create it first or drop --revision; a pull request needs an existing target branch")),
        (lambda e: isinstance(e, hf.RepositoryNotFoundError) or status(404)(e), lambda e, c: (
            f"repository {c['repo_id']} or namespace '{c['namespace']}' not found (404)",
            f"check --repo-id and that your token may write to '{c['namespace']}'")),
        (status(403), lambda e, c: (
            f"no write access to {c['repo_id']} (403 Forbidden)",
            f"use a token with write access to '{c['namespace']}', or a namespace you own")),
        (status(429), lambda e, c: (
            "the Hub is rate-limiting this account (429)", "wait a few minutes, then run the same command again")),
        (lambda e: isinstance(e, http) and (_status(e) or 0) >= 500, lambda e, c: (
            f"{c['endpoint']} answered {_status(e)} (server error); nothing was committed",
            "run the same command again later: it resumes and skips what already arrived")),
        (lambda e: isinstance(e, http) and (_status(e) or 0) in (400, 409, 413, 422), lambda e, c: (
            f"the Hub rejected the upload ({_status(e)}): {_server_says(e)}",
            "fix or remove the file it names, then run the same command again")),
        (lambda e: isinstance(e, ValueError) and ("LFS batch" in str(e) or "README.md" in str(e)), lambda e, c: (
            f"the Hub rejected a file: {' '.join(str(e).split())[:200]}", "fix or remove that file, then run the same command again")),
        (is_(httpx.TransportError, ConnectionError, TimeoutError), lambda e, c: (
            f"cannot reach {c['endpoint']} ({type(e).__name__})",
            "check the network connection (or HF_ENDPOINT / --endpoint), then run the same command again to resume")),
        (is_(http), lambda e, c: (
            f"the Hub answered {_status(e)}: {_server_says(e)}", "run the same command again; if it persists, report it")),
    ]


def _causes(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _explain(error: BaseException, context: dict[str, str]) -> tuple[str, str]:
    rules = _error_rules()
    for cause in _causes(error):
        for matches, explain in rules:
            if matches(cause):
                return explain(cause, context)
    return (f"upload to {context['repo_id']} failed ({type(error).__name__})",
            "run again with --debug to see the traceback")


def translate(error: BaseException, context: dict[str, str], token: str | None) -> HubError:
    """The one place where huggingface_hub and network errors become a one-line HubError."""
    register_secret(token)  # never echo a secret, even if a server put it in its answer
    message, hint = _explain(error, context)
    return HubError(redact(message), hint=redact(hint))
