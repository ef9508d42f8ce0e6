"""``ckptkit inspect``: what is in a checkpoint, grouped by role, without reading the weights."""

from __future__ import annotations

import click

from ckptkit.cli.remote_options import remote_options
from ckptkit.cli.common import emit_json, format_table, human_bytes, json_option, quiet_option
from ckptkit.converters.inspection import CHECKSUMS, check_all, family_of, summarize  # noqa: F401 (re-exported)

ROLE_TITLES = {"weight": "Model weights", "optimizer": "Optimizer state", "counter": "Counters",
               "metadata": "Checkpoint metadata"}
_FORMAT_FACTS = (("kind", "{}"), ("names", "{}"), ("num_shards", "{} shard(s)"), ("partitioned", "{} partitioned"))


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _size(tensor) -> str:
    return human_bytes(tensor.nbytes) if tensor.dtype.name != "object" else "-"


def _format_line(summary: dict) -> str:
    facts = [template.format(summary["extras"][key]) for key, template in _FORMAT_FACTS
             if summary["extras"].get(key)]
    return f"Format: {summary['format']}" + (f" ({', '.join(facts)})" if facts else "")


def _summary_lines(summary: dict) -> list[str]:
    totals = summary["totals"]
    lines = [f"Checkpoint: {summary['path']}", _format_line(summary)]
    if summary["family"]:
        lines.append(f"Family: {summary['family']}")
    lines.append(f"global_step: {summary['global_step'] if summary['global_step'] is not None else '-'}")
    for role, t in totals["by_role"].items():
        lines.append(f"{ROLE_TITLES.get(role, role)}: {t['tensors']} tensors, {t['parameters']:,} parameters, "
                     f"{human_bytes(t['bytes'])}")
    lines.append(f"Total: {totals['tensors']} tensors, {totals['parameters']:,} parameters, "
                 f"{human_bytes(totals['bytes'])}")
    if summary.get("check"):
        lines.append(_check_line(summary["check"]))
    return lines


def _role_tables(ckpt, roles) -> list[str]:
    blocks = []
    for role in roles:
        rows = [[t.name, t.dtype.name, _shape(t.shape), _size(t)] for t in ckpt.values() if t.role == role]
        blocks.append(f"\n{ROLE_TITLES.get(role, role)} ({len(rows)})\n" +
                      format_table(rows, ["name", "dtype", "shape", "size"], right={3}))
    return blocks


def _check_line(check: dict) -> str:
    read = f"Checked: read all {check['tensors']} tensors ({human_bytes(check['bytes'])})"
    if check["checksum"]:
        return f"{read}, every {check['checksum']} checksum matches"
    return f"{read}; this format stores no checksums, every tensor is complete and readable"


@click.command("inspect")
@click.argument("path", type=click.Path())
@json_option
@quiet_option
@remote_options
@click.option("--check", is_flag=True, help="Also read every tensor, verifying its checksum (TF: CRC32C); the "
                                             "summary says how many tensors and bytes were read and checked.")
def inspect_command(path: str, as_json: bool, quiet: bool, check: bool) -> None:
    """List the tensors of a checkpoint: name, dtype, shape, size, grouped into model
    weights, optimizer state and counters, with totals and the global step.

    PATH is a TF checkpoint directory, prefix or .index file, a .safetensors or
    PyTorch .bin file (or its index json), or a hub folder. Only metadata is read,
    unless --check is given. --quiet prints the summary without the tables.

    \b
    Examples:
      ckptkit inspect examples/tiny-bert/model.ckpt-20000
      ckptkit inspect examples/tiny-bert/ --json | jq '.tensors[] | select(.role == "weight") | .name'
      ckptkit inspect examples/tiny-bert/model.ckpt-20000.index --check --quiet
    """
    from ckptkit.converters.source import open_source

    with open_source(path) as source:
        ckpt = source.checkpoint
        checked = check_all(ckpt) if check else None
        summary = summarize(ckpt)
        if checked:
            summary["check"] = checked
        if as_json:
            emit_json(summary)
            return
        click.echo("\n".join(_summary_lines(summary)))
        if not quiet:
            click.echo("\n".join(_role_tables(ckpt, summary["totals"]["by_role"])))
