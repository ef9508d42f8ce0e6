"""``ckptkit verify``: compare a conversion's output with its source."""

from __future__ import annotations

import os
import sys

import click

from ckptkit.cli.remote_options import remote_options
from ckptkit.cli.common import emit_json, format_table, json_option, quiet_option


@click.command("verify")
@click.argument("source", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--family", help="Model family; detected by default.")
@click.option("--no-forward", is_flag=True, help="Compare tensors only; do not run the model.")
@click.option("--all", "show_all", is_flag=True, help="List every tensor, not only mismatches.")
@click.option("--no-tokenizer", "no_tokenizer", is_flag=True,
              help="OUTPUT was converted with --no-tokenizer: it may lack the source's tokenizer.")
@click.option("--engine", type=click.Choice(["numpy", "transformers"]), default="numpy", show_default=True,
              help="What computes the hub folder's outputs: ckptkit's NumPy engine over its weights and "
                   "config.json (no torch), or the transformers model class (needs ckptkit[verify]).")
@json_option
@quiet_option
@remote_options
def verify_command(source, output, family, no_forward, show_all, no_tokenizer, engine, as_json, quiet):
    """Check OUTPUT against SOURCE: every tensor through the conversion plan (bitwise for
    float32), then the hub folder's outputs against a NumPy forward pass over the TF
    variables, then the tokenizers: the one OUTPUT carries must give the ids of the one
    SOURCE carries on a fixed set of texts (English, Korean, rare characters, [MASK], pairs).
    Exits 1 on any mismatch, or when OUTPUT lost SOURCE's tokenizer.

    The hub folder's outputs come from ckptkit's NumPy engine (float64, from the folder's
    own weight names and config.json, as transformers computes them; no torch needed), or
    with --engine transformers from the transformers model itself.

    \b
    Examples:
      ckptkit convert examples/tiny-bert out/tiny-bert
      ckptkit verify examples/tiny-bert out/tiny-bert
      ckptkit verify examples/tiny-bert out/tiny-bert --engine transformers
    """
    from ckptkit.converters.verify import verify_conversion

    report = verify_conversion(source, output, family=family, forward=not no_forward, tokenizer=not no_tokenizer,
                               engine=engine)
    from ckptkit.output.record import command_line
    from ckptkit.output.results import record_verification

    recorded = record_verification(output, report.to_json(), command=command_line())  # the card's Verification
    if as_json:
        emit_json(report.to_json())
    elif not quiet:
        rows = [[r["name"], r["dtype"], str(r["shape"]), f"{r['max_abs_diff']:.3g}", "ok" if r["ok"] else "MISMATCH"]
                for r in report.tensors if show_all or not r["ok"]]
        if rows:
            click.echo(format_table(rows, ["tensor", "dtype", "shape", "max |diff|", "status"], right={3}))
        bitwise = sum(1 for r in report.tensors if r["max_abs_diff"] == 0.0)
        click.echo(f"tensors: {len(report.tensors)} compared, {bitwise} bitwise equal, "
                   f"{sum(1 for r in report.tensors if not r['ok'])} mismatched")
        if report.outputs:
            click.echo(format_table([[r["output"], str(r["shape"]), f"{r['max_abs_diff']:.3g}",
                                      f"{r['tolerance']:.0e}", "ok" if r["ok"] else "MISMATCH"]
                                     for r in report.outputs],
                                    ["output", "shape", "max |diff|", "tolerance", "status"], right={2, 3}))
            click.echo(f"compared: {report.compared}")
        if report.tokenizer:
            click.echo(f"tokenizer: {report.tokenizer['message']}")
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        click.echo("verification PASSED" if report.passed else "verification FAILED")
        if recorded:
            click.echo(f"recorded in {os.path.join(output, 'ckptkit.json')} (the model card shows it)")
    if not report.passed:
        sys.exit(1)
