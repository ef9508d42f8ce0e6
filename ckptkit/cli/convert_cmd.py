"""``ckptkit convert``: a thin layer over :func:`ckptkit.converters.convert.convert_checkpoint`."""

from __future__ import annotations

import shlex
import sys

import click

from ckptkit.cli.remote_options import remote_options
from ckptkit.cli.common import emit_json, info, json_option, quiet_option
from ckptkit.cli.family_options import FamilyOptionsCommand

TARGET_CHOICES = ["hf", "tf1", "safetensors", "pytorch"]
DTYPE_CHOICES = ["float32", "float16", "bfloat16"]


def _tokenizer_text(t: dict) -> str:
    return f"tokenizer {t['class']} ({t['vocab_size']} tokens, pad_token_id {t['pad_token_id']})"


def _verification_text(v: dict) -> str:
    tokenizer = f"; tokenizer: {v['tokenizer']['message']}" if v.get("tokenizer") else ""
    return (f"verified: {v['tensors_bitwise']}/{v['tensors_checked']} tensors bitwise, forward max |diff| "
            f"{v['max_abs_diff']:.2e} ({'PASS' if v['passed'] else 'FAIL'}){tokenizer}")


def _model_line(plan: dict) -> str:
    parts = plan.get("parts")
    what = (f"parts {', '.join(f'{name}/ ({cls})' for name, cls in parts.items())}" if parts
            else f"class {plan.get('model_class')}")
    step = f", global_step {plan['global_step']}" if plan.get("global_step") is not None else ""
    return f"  family {plan.get('family')}, {what}{step}"


def _facts(result) -> list[str]:
    """Tokenizer and verification lines: one per part folder when the output has several, else one."""
    per_part = bool(result.plan.info.get("parts")) and result.plan.info.get("target") == "hf"
    rows = [(result.tokenizer, _tokenizer_text), (result.verification, _verification_text)]
    lines = []
    for value, describe in rows:
        if per_part:
            lines += [f"  {name}/: {describe(v)}" for name, v in (value or {}).items() if v]
        elif value:
            lines.append(f"  {describe(value)}")
    if "verify" in result.timings:
        verified = result.verification or {}
        engines = {v.get("engine") for v in ([verified] if "passed" in verified else verified.values()) if v}
        lines.append(f"  verified in {result.timings['verify']:.2f} s"
                     + (" (includes loading torch and transformers)" if "transformers" in engines else ""))
    return lines


def _summary(result) -> str:
    """The text report of a conversion (stderr): what was written where, dropped, verified, and how long.

    "wrote ... in N s" times writing the tensors alone; verifying is timed on its own line."""
    plan = result.plan.info
    reasons: dict[str, int] = {}
    for d in result.plan.dropped:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
    write = result.timings.get("write", result.seconds)
    lines = [f"converted {plan.get('source_format')} -> {result.destination}", _model_line(plan),
             f"  wrote {len(result.plan.outputs)} tensors ({result.plan.total_bytes / 2**20:.1f} MiB) "
             f"in {write:.2f} s: {', '.join(result.files)}"]
    lines += [f"  dropped {n} {reason}" for reason, n in reasons.items()]
    lines += _facts(result)
    lines += [f"  warning: {w}" for w in result.plan.warnings]
    lines.append(f"  done in {result.seconds:.2f} s")
    return "\n".join(lines)


# the options families declare (--part, --generator-heads, --tf-layout) follow --global-step
@click.command("convert", cls=FamilyOptionsCommand, family_command="convert", after="global_step")
@click.argument("source", type=click.Path())
@click.argument("destination", type=click.Path(), required=False)
@click.option("--to", "to", type=click.Choice(TARGET_CHOICES),
              help="Target: hf (hub folder; default for TF sources), tf1 (TF checkpoint; default for hub "
                   "folders), safetensors or pytorch (same tensors, other format).")
@click.option("--format", "weights_format", type=click.Choice(["safetensors", "pytorch"]), default="safetensors",
              show_default=True, help="Weights file format of an hf folder.")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), help="Cast floating tensors (default: keep).")
@click.option("--max-shard-size", help="Split weights into shards of at most this size, e.g. 2GB.")
@click.option("--family", help="Model family (bert, bigbird, electra); detected from names by default.")
@click.option("--model-class", help="HF class, e.g. BertForMaskedLM; chosen from the heads present by default.")
@click.option("--config", "config", type=click.Path(), help="The TF config (bert_config.json) or, for hub->tf1, "
                                                             "an HF config.json. Default: next to the checkpoint.")
@click.option("--vocab", type=click.Path(), help="vocab.txt for the tokenizer (default: next to the checkpoint).")
@click.option("--spm", type=click.Path(), help="SentencePiece model (KoBERT, BigBird) for the tokenizer.")
@click.option("--do-lower-case/--no-do-lower-case", default=None, help="Tokenizer casing (default: from vocab).")
@click.option("--no-tokenizer", "no_tokenizer", is_flag=True,
              help="Write no tokenizer files (by default a tokenizer problem is a warning, never a failure).")
@click.option("--num-heads", type=int, help="Attention heads when there is no config file (default hidden/64).")
@click.option("--allow-unused", is_flag=True, help="Drop tensors that are not part of the family instead of "
                                                    "failing.")
@click.option("--global-step", type=int, help="Write this global_step counter into a tf1 output.")
@click.option("--approximate-gelu", "approximate_gelu", is_flag=True,
              help="--to tf1 of a model whose gelu form the TF code lacks (BERT/BigBird trained with the exact erf "
                   "'gelu'): write the TF code's gelu instead and report the measured max logit difference.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty destination.")
@click.option("--verify", "verify", is_flag=True, help="Run `ckptkit verify` on the result before publishing it.")
@click.option("--verify-engine", "verify_engine", type=click.Choice(["numpy", "transformers"]), default="numpy",
              show_default=True, help="With --verify: what computes the hub folder's outputs (as `verify --engine`).")
@click.option("--dry-run", is_flag=True, help="Run every check of the real run and print the plan (what is written "
                                               "from what, what is dropped, the other files); write nothing.")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO_ID", help="Upload the result to this Hub repo.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
@click.option("--language", multiple=True, help="Model card language(s), e.g. ko.")
@click.option("--license", "license_", help="Model card license, e.g. apache-2.0.")
@click.option("--tag", "tags", multiple=True, help="Model card tag (repeatable).")
@json_option
@quiet_option
@remote_options
def convert_command(source, destination, to, weights_format, dtype, max_shard_size, family, model_class, config,
                    vocab, spm, do_lower_case, no_tokenizer, num_heads, allow_unused, global_step,
                    approximate_gelu, overwrite, verify, verify_engine, dry_run, push_to_hub, private, language, license_, tags, as_json, quiet,
                    **family_options):
    """Convert SOURCE (TF checkpoint, hub folder, safetensors or .bin) into DESTINATION.

    A TF checkpoint becomes a hub folder (config.json, weights, tokenizer files, model card)
    that loads with plain AutoModel.from_pretrained; a hub folder becomes a TF checkpoint that
    Google's code restores. Optimizer slots and counters are dropped and reported.

    \b
    Examples:
      ckptkit convert examples/tiny-bert out/tiny-bert --verify
      ckptkit convert examples/tiny-bert --dry-run
      ckptkit convert out/tiny-bert out/tiny-bert-tf --to tf1 --global-step 20000
      ckptkit convert examples/tiny-bert/model.ckpt-20000 out/tiny-bf16 --dtype bfloat16 --max-shard-size 40KB
    """
    from ckptkit.converters.convert import ConversionOptions, convert_checkpoint, dry_run_conversion
    from ckptkit.errors import UsageError

    options = ConversionOptions(
        to=to, weights_format=weights_format, dtype=dtype, max_shard_size=max_shard_size, family=family,
        model_class=model_class, config=config, vocab=vocab, spm=spm, do_lower_case=do_lower_case,
        no_tokenizer=no_tokenizer,
        num_heads=num_heads, allow_unused=allow_unused, global_step=global_step,
        family_options=family_options, approximate_gelu=approximate_gelu,
        overwrite=overwrite, verify=verify, verify_engine=verify_engine,
        command=shlex.join(["ckptkit", *sys.argv[1:]]),
        card={"language": list(language) or None, "license": license_, "tags": list(tags) or None})
    if dry_run:  # every check of the real run, nothing written
        report = dry_run_conversion(source, destination, options=options)
        if as_json:
            emit_json(report.to_json())
        else:
            click.echo(report.format_text())
        return
    if destination is None:
        raise UsageError("DESTINATION is required unless --dry-run is given")
    result = convert_checkpoint(source, destination, options=options)
    upload = None
    if push_to_hub:
        from ckptkit.hub.upload import upload_folder

        upload = upload_folder(result.destination, repo_id=push_to_hub, private=private,
                               commit_message=f"Upload {result.plan.info.get('model_class')} converted by ckptkit")
    if as_json:
        emit_json({**result.to_json(), "upload": upload.to_json() if upload else None})
    else:
        info(_summary(result), quiet=quiet)
        if upload is not None:
            info(f"  uploaded to {upload.url}", quiet=quiet)
