"""``ckptkit distill cache``: store a teacher's outputs on a corpus for ``distill train --teacher-cache``.

Only click is imported here; the work is :func:`ckptkit.distill.teacher_cache_run.cache_teacher_outputs`.
"""

from __future__ import annotations

import click

from ckptkit.cli.common import emit_json, info, json_option, quiet_option


@click.command("cache")
@click.argument("teacher", type=click.Path())
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The cache folder.")
@click.option("--objective", type=click.Choice(["mlm", "hidden"]), default="mlm", show_default=True,
              help="As in distill train: mlm stores top-k log-probs on masked blocks; hidden only hidden states.")
@click.option("--max-seq-length", type=int, default=128, show_default=True, help="Tokens per packed block.")
@click.option("--text-column", default="text", show_default=True, help="Field of .jsonl rows / .parquet column.")
@click.option("--top-k", type=click.IntRange(min=1), default=64, show_default=True,
              help="Teacher tokens kept per position (plus one bucket for the rest of the mass).")
@click.option("--temperature", type=float, default=2.0, show_default=True,
              help="Temperature of the stored distribution (= distill train --temperature).")
@click.option("--hidden-states", default="last", show_default=True,
              help="hidden_states to store: last, none, or indices (0 = embeddings), e.g. 4,8,12.")
@click.option("--mlm-probability", type=float, default=0.15, show_default=True, help="As in distill train.")
@click.option("--mlm-smoothing", type=float, default=0.0, show_default=True, help="As in distill train.")
@click.option("--seed", type=int, default=42, show_default=True, help="Masking seed (= distill train --seed).")
@click.option("--whole-word-mask", is_flag=True,
              help="As in distill train: mask whole words (train with --whole-word-mask).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Blocks per forward.")
@click.option("--dtype", "value_dtype", type=click.Choice(["float16", "float32"]), default="float16",
              show_default=True, help="Storage of log-probs and hidden states.")
@click.option("--device", help="cpu, cuda, cuda:1 ... [cuda when available].")
@click.option("--bf16", is_flag=True, help="Run the teacher in bfloat16 autocast.")
@click.option("--piece-mb", type=float,
              help="Text per piece, the unit of sharding, resuming and caching [about 1/256 of the text, "
                   "4 KiB to 8 MiB; distill train reads the cache's].")
@click.option("--overwrite", is_flag=True, help="Rebuild a cache that was built for other settings.")
@quiet_option
@json_option
def cache_command(teacher, data, out, quiet, as_json, **options) -> None:
    """Run TEACHER once over DATA and store its outputs in --out for distill train --teacher-cache.

    DATA: .txt (one text per line), .jsonl, .parquet files or folders of them, as given to distill
    train. Stored per token: the top-k log-probabilities at --temperature plus the log of the rest
    of the mass (so the cached KL is a true KL), and the chosen hidden states, in memory-mapped
    pieces. Interrupted, the same command finishes the missing pieces. A cache is keyed by teacher,
    data, tokenization and masking; distill train refuses one built for other settings.

    \b
    Example:
      ckptkit distill cache out/kobert corpus.txt --out out/kobert-cache --max-seq-length 128 --top-k 64
      ckptkit distill train --student out/student3 --train-file corpus.txt --teacher-cache out/kobert-cache \\
        --output-dir out/distil --max-steps 20000
    """
    from ckptkit.distill.teacher_cache_run import cache_teacher_outputs

    report = cache_teacher_outputs(teacher, data, out=out, **options)
    if as_json:
        emit_json(report)
        return
    if not quiet:
        click.echo(format_cache_report(report))


def format_cache_report(report: dict) -> str:
    """What was built, what a token costs, and when the cache pays for itself."""
    stored = f"top-{report['top_k']} log-probs + rest (T={report['temperature']:g})" if report["top_k"] else "no logits"
    hidden = f"hidden states {report['hidden_states']}" if report["hidden_states"] else "no hidden states"
    pays = (f"pays for itself after {report['break_even_epochs']:g} epochs"
            if report["break_even_epochs"] is not None else "does not pay (reading is not faster than the teacher)")
    return "\n".join([
        f"teacher cache {report['cache_dir']}: {report['examples']:,} blocks, {report['tokens']:,} tokens in "
        f"{report['pieces']} pieces ({report['pieces_built']} built now, {report['pieces_reused']} reused)"
        + ("; whole-word masks (distill train --whole-word-mask reads it)" if report.get("whole_word_mask") else ""),
        f"stored per token: {stored}, {hidden} in {report['value_dtype']}: {report['bytes_per_token']:g} bytes/token, "
        f"{report['bytes'] / 2**20:.1f} MiB",
        f"build {report['build_s']:g} s (teacher forward {report['teacher_forward_s']:g} s); reading an epoch "
        f"{report['read_s_per_epoch']:g} s: each epoch saves {report['saved_s_per_epoch']:g} s, {pays}",
    ])
