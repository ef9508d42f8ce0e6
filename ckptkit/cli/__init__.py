"""The ``ckptkit`` command: a thin click layer over the library.

Sub-commands live in their own modules and are imported only when used, so
``ckptkit --help`` never imports torch, TensorFlow or transformers.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable

# NumPy's OpenBLAS starts a busy-waiting thread per core when imported (~0.06 s of CPU on 2 cores, a third of
# `inspect`); the command's NumPy work is copies and small products that gain nothing from them. Set before
# anything imports NumPy; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from ckptkit import __version__  # noqa: E402

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


# command name -> the first paragraph of its help: `ckptkit --help` lists the commands from here without
# importing any (tests/test_startup.py holds each to the command's own help).
SUMMARIES: dict[str, str] = {
    "inspect": "List the tensors of a checkpoint: name, dtype, shape, size, grouped into model weights, "
               "optimizer state and counters, with totals and the global step.",
    "convert": "Convert SOURCE (TF checkpoint, hub folder, safetensors or .bin) into DESTINATION.",
    "verify": "Check OUTPUT against SOURCE: every tensor through the conversion plan (bitwise for float32), then "
              "the hub folder's outputs against a NumPy forward pass over the TF variables, then the tokenizers:",
    "distill": "Make, train and evaluate smaller students of a BERT-family teacher.",
    "tokenizer": "Export tokenizers as tokenizer.json folders.",
    "card": "(Re)write FOLDER/README.md, the model card, from FOLDER/ckptkit.json.",
    "upload": "Upload FOLDER to the Hugging Face Hub as NAMESPACE/NAME, in one commit.",
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from SUMMARIES, as click would shorten each command's help, importing none."""
        names = self.list_commands(ctx)
        if any(name not in SUMMARIES for name in names):
            return super().format_commands(ctx, formatter)
        limit = formatter.width - 6 - max(len(name) for name in names)
        with formatter.section("Commands"):
            formatter.write_dl([(name, click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit))
                                for name in names])


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ckptkit")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors (tokens redacted); may also be "
                                             "given after the subcommand.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Move BERT-family checkpoints between TensorFlow, PyTorch and safetensors.

    \b
    Examples:
      ckptkit inspect examples/tiny-bert/model.ckpt-20000
      ckptkit convert examples/tiny-bert out/tiny-bert --verify
    """
    ctx.obj = {"debug": debug}


def split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is accepted anywhere before ``--`` (``ckptkit convert --debug ...`` too); it is moved to the front.

    Example:
        >>> split_debug(["convert", "a", "b", "--debug"])
        (['--debug', 'convert', 'a', 'b'], True)
    """
    end = args.index("--") if "--" in args else len(args)
    rest = [a for a in args[:end] if a != "--debug"] + args[end:]
    debug = len(rest) != len(args)
    return (["--debug", *rest] if debug else rest), debug


# Libraries that log their own retries and tracebacks (gcsfs logs every failed try with its stack)
# while ckptkit reports the outcome as one line: quiet unless --debug.
THIRD_PARTY_LOGGERS = ("gcsfs", "s3fs", "fsspec", "aiohttp", "botocore", "boto3", "aiobotocore", "google",
                       "urllib3")


def _quiet_third_party_logs(debug: bool) -> None:
    """Silence the remote-I/O libraries' own log lines (not with ``--debug``)."""
    import logging

    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.CRITICAL + 1)


def _redact_log_records() -> None:
    """Log records pass through :func:`ckptkit.errors.redact` (a token never reaches a log line)."""
    import logging

    from ckptkit.errors import redact

    factory = logging.getLogRecordFactory()
    if getattr(factory, "ckptkit_redacting", False):
        return

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error path
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")
        return record

    redacting_factory.ckptkit_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)


class _AfterFirstImport:
    """A ``sys.meta_path`` entry that calls ``then()`` right after module ``name`` is first imported, by anyone:
    logging is set up when some library brings it in, and a command that never logs (``inspect``) does not
    import it (~3 ms of its start-up)."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - the meta path protocol
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run, then = spec.loader.exec_module, self.then

            def exec_then(module) -> None:  # noqa: ANN001
                run(module)
                then()

            spec.loader.exec_module = exec_then  # this spec's own loader instance
        return spec


def _install_redaction(debug: bool) -> None:
    """Warnings and log records pass through :func:`ckptkit.errors.redact`, and the remote libraries' log lines
    are quiet unless ``--debug``: log records once logging is imported (now, or when a library imports it)."""
    import warnings

    from ckptkit.errors import redact

    if not getattr(warnings.formatwarning, "ckptkit_redacting", False):
        formatwarning = warnings.formatwarning

        def redacting_formatwarning(*args, **kwargs) -> str:
            return redact(formatwarning(*args, **kwargs))

        redacting_formatwarning.ckptkit_redacting = True  # type: ignore[attr-defined]
        warnings.formatwarning = redacting_formatwarning

    def set_up_logging() -> None:
        _redact_log_records()
        _quiet_third_party_logs(debug)

    if "logging" in sys.modules:
        set_up_logging()
    elif not any(isinstance(finder, _AfterFirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterFirstImport("logging", set_up_logging))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _missing_package(error: BaseException) -> str | None:
    """A third-party package a command imports on demand is not installed: a user-facing one-liner."""
    if not isinstance(error, ModuleNotFoundError) or not error.name or error.name.split(".")[0] == "ckptkit":
        return None
    return (f"this command needs the Python package {error.name.split('.')[0]!r}, which is not installed "
            "(pip install 'ckptkit[full]')")


def _report(error: BaseException, *, debug: bool) -> int:
    """Print ``error`` as one line (after its traceback with --debug), redacted; return the exit status."""
    import traceback

    from ckptkit.errors import CkptkitError, redact

    if debug:
        click.echo(redact("".join(traceback.format_exception(error))).rstrip("\n"), err=True)
    missing = _missing_package(error)
    if missing or isinstance(error, (CkptkitError, OSError)):  # a user-facing problem: the message says what to do
        click.echo(redact(f"ckptkit: error: {missing or _one_line(error)}"), err=True)
        return 2
    advice = "report it with the traceback above" if debug else "rerun with --debug and report it"
    click.echo(redact(f"ckptkit: internal error: {type(error).__name__}: {_one_line(error)} ({advice})"), err=True)
    return 1


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure ends as one redacted line on stderr.

    ``ckptkit: error: ...`` (exit 2) for a CkptkitError or an OSError; ``ckptkit: internal error: ...``
    (exit 1) for anything else. ``--debug`` (anywhere on the line) prints the redacted traceback first.
    """
    import io

    from ckptkit.errors import redact

    args, debug = split_debug(list(argv if argv is not None else sys.argv[1:]))
    _install_redaction(debug)
    try:
        cli.main(args=args, prog_name="ckptkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ckptkit: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        shown = io.StringIO()
        e.show(file=shown)
        click.echo(redact(shown.getvalue()), err=True, nl=False)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("ckptkit: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place every failure becomes one line
        sys.exit(_report(e, debug=debug))
