"""Options and output helpers shared by every command."""

from __future__ import annotations

import sys
from typing import Any

import click

from ckptkit.formatting import format_table, human_bytes  # noqa: F401  (re-exported for the commands)
from ckptkit.progress import set_quiet


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    set_quiet(value)
    return value


quiet_option = click.option("--quiet", "-q", is_flag=True, expose_value=True, callback=_set_quiet,
                            help="No progress bars and no informational output.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout instead of tables.")


def emit_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout (with ``remote``: bytes transferred and skipped, after
    a run that read a remote checkpoint)."""
    remote = sys.modules.get("ckptkit.remote.settings")
    if remote is not None and remote.STATS.remote and isinstance(document, dict):
        document = {**document, "remote": remote.STATS.to_json()}
    import json  # only --json needs it

    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def info(message: str, *, quiet: bool = False) -> None:
    """An informational line on stderr (keeps stdout clean for tables and JSON)."""
    if not quiet:
        click.echo(message, err=True)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
