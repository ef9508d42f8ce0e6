"""The ``ckptkit`` command: a thin click layer over the library.

Sub-commands live in their own modules and are imported only when used, so
``ckptkit --help`` never imports torch, TensorFlow or transformers.
"""

from __future__ import annotations

import importlib
import sys

import click

from ckptkit import __version__

# command name -> "module:attribute"; each module imports only click at top level.
COMMANDS: dict[str, str] = {
    "inspect": "ckptkit.cli.inspect_cmd:inspect_command",
    "convert": "ckptkit.cli.convert_cmd:convert_command",
    "verify": "ckptkit.cli.verify_cmd:verify_command",
    "distill": "ckptkit.cli.distill_cmd:distill_group",
    "tokenizer": "ckptkit.cli.tokenizer_cmd:tokenizer_group",
    "card": "ckptkit.cli.hub_cmd:card_command",
    "upload": "ckptkit.cli.hub_cmd:upload_command",
}


def load_command(spec: str) -> click.Command:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            try:
                return load_command(self.lazy_commands[name])
            except (ImportError, AttributeError):
                if ctx.find_root().params.get("debug"):
                    raise
                return None
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ckptkit")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Move BERT-family checkpoints between TensorFlow, PyTorch and safetensors.

    \b
    Examples:
      ckptkit inspect examples/tiny-bert/model.ckpt
      ckptkit convert examples/tiny-bert out/tiny-bert --verify
    """
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every CkptkitError into one line on stderr and exit 2."""
    from ckptkit.errors import CkptkitError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="ckptkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ckptkit: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except CkptkitError as e:
        if debug:
            raise
        click.echo(f"ckptkit: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("ckptkit: interrupted", err=True)
        sys.exit(130)
    except OSError as e:  # disk full, permission denied: still one line
        if debug:
            raise
        click.echo(f"ckptkit: error: {e}", err=True)
        sys.exit(2)
