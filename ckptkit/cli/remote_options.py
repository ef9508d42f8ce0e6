"""``--connections``, ``--cache-dir`` and ``--allow-full-download``: the options of remote locations
(gs://, s3://, hf://, https://), shared by every command that reads a checkpoint. They only set
:data:`ckptkit.remote.settings.SETTINGS`; nothing remote is imported for a local path."""

from __future__ import annotations

import sys
from typing import Callable

import click

__all__ = ["remote_options", "DEFAULTS"]

# the options' defaults: those of ckptkit.remote.settings.RemoteSettings (tests/test_startup.py holds them equal),
# so a run that leaves them alone needs no remote module
DEFAULTS = {"connections": 8, "cache_dir": None, "allow_full_download": False}


def _set(name: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value) -> None:
        if value == DEFAULTS[name] and "ckptkit.remote.settings" not in sys.modules:
            return  # the settings start at these defaults: a local run imports nothing remote
        from ckptkit.remote.settings import SETTINGS, STATS

        if name == "connections":
            STATS.reset()  # counters per run
        setattr(SETTINGS, name, value)  # every run sets all three (defaults included)
    return callback


def remote_options(command: Callable) -> Callable:
    """Add the remote-location options to a click command (values go to the remote settings)."""
    options = [
        click.option("--connections", type=click.IntRange(min=1), default=DEFAULTS["connections"], show_default=True,
                     expose_value=False, callback=_set("connections"),
                     help="Concurrent range requests for a remote checkpoint."),
        click.option("--cache-dir", type=click.Path(file_okay=False), expose_value=False, callback=_set("cache_dir"),
                     help="Cache of remote checkpoints (default: $HF_HOME/ckptkit-remote)."),
        click.option("--allow-full-download", is_flag=True, default=DEFAULTS["allow_full_download"],
                     expose_value=False, callback=_set("allow_full_download"),
                     help="Download whole files from a server without range support."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
