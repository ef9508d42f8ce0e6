"""``ckptkit distill init``: make a student from a teacher's layers (a thin layer over ``build_student``).

Only click is imported at top level; a hub-folder teacher never imports torch or transformers.
"""

from __future__ import annotations

import click

from ckptkit.cli.remote_options import remote_options
from ckptkit.cli.common import emit_json, info, json_option, quiet_option
from ckptkit.cli.family_options import FamilyOptionsCommand

STRATEGY_HELP = {
    "uniform": "floor(i*n/k): 0,4,8 of 12 (DistilKoBERT)",
    "first": "0..k-1",
    "last": "n-k..n-1",
    "distilbert": "round(i*(n-1)/(k-1)): 0,2,4,7,9,11 of 12 (DistilBERT)",
}


# the options families declare for it (ELECTRA's --part) follow --config
@click.command("init", cls=FamilyOptionsCommand, family_command="distill init", after="config")
@click.argument("teacher", type=click.Path())
@click.argument("out", type=click.Path(), required=False)
@click.option("--layers", metavar="I,J,...",
              help="0-BASED teacher layers, one per student layer, in order (DistilKoBERT: 0,4,8 = its layers "
                   "1, 5, 9 counted from one). The report echoes them 1-based too.")
@click.option("--num-layers", type=click.IntRange(min=1), help="Student layer count K; --strategy picks which.")
@click.option("--encoder-layers", metavar="I,J,...",
              help="Encoder-decoder teachers (BigBird-Pegasus): the 0-BASED encoder layers the student keeps, "
                   "increasing; without it the encoder keeps all its layers.")
@click.option("--decoder-layers", metavar="I,J,...",
              help="Encoder-decoder teachers: the 0-BASED decoder layers kept, increasing (shrink and fine-tune: "
                   "16+16 -> 16+4 with --decoder-layers 0,5,10,15); without it all are kept.")
@click.option("--strategy", type=click.Choice(list(STRATEGY_HELP)), default="uniform", show_default=True,
              help="With --num-layers, of n teacher layers: " + "; ".join(f"{k}: {v}" for k, v in
                                                                            STRATEGY_HELP.items()) + ".")
@click.option("--arch", type=click.Choice(["same", "distilbert"]), default="same", show_default=True,
              help="same: the teacher's own class with fewer layers (token types kept). distilbert: "
                   "DistilBertForMaskedLM (no pooler, no token types; teacher's activation kept).")
@click.option("--drop-token-types", is_flag=True,
              help="--arch distilbert: drop the token-type embeddings as DistilBERT did. Default: fold the "
                   "segment-0 row into the position embeddings, so single-segment inputs embed exactly as in "
                   "the teacher.")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False),
              help="The teacher's config when it is not next to the weights (config.json; bert_config.json for "
                   "a TF teacher).")
@click.option("--mlm-head", is_flag=True,
              help="Give the student an MLM head: the teacher's, or a fresh BERT-initialised one when the teacher "
                   "has none (sentence-transformers MiniLM), for `distill train --baseline mlm` and MLM losses.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT.")
@click.option("--dry-run", is_flag=True, help="Print the report (what would be written from what); write nothing.")
@click.option("--tensors/--no-tensors", "show_tensors", default=True,
              help="List every written tensor and its origin in the printed report [on].")
@click.option("--language", multiple=True, help="Model card language(s), e.g. ko.")
@click.option("--license", "license_", help="Model card license, e.g. apache-2.0.")
@click.option("--teacher-repo-id", metavar="NAMESPACE/NAME",
              help="The teacher's Hub id: the card's base_model (default: remembered from the teacher folder's "
                   "ckptkit.json, or TEACHER itself when it is a Hub id).")
@json_option
@quiet_option
@remote_options
def init_command(teacher, out, layers, num_layers, encoder_layers, decoder_layers, strategy, arch, drop_token_types,
                 config, mlm_head, overwrite, dry_run, show_tensors, language, license_, teacher_repo_id, as_json,
                 quiet,
                 **family_options):
    """Make a student OUT from layers of TEACHER: weights, config, tokenizer, student.json, card.

    TEACHER is a hub folder, a safetensors/.bin file with config.json beside it (or --config), or a
    TF checkpoint or SavedModel (converted on the fly). BERT, BigBird, ELECTRA and KoBERT-style teachers, and
    BigBird-Pegasus encoder-decoders (--encoder-layers/--decoder-layers, each stack on its own). The
    student keeps the teacher's vocabulary, special-token ids and activation; only the tensors it
    keeps are read. student.json records the 0-based teacher layer of each student layer.

    \b
    Examples:
      ckptkit distill init examples/tiny-bert out/student1 --layers 1
      ckptkit distill init out/kobert out/distilkobert --layers 0,4,8
      ckptkit distill init out/bert-base out/distilbert6 --num-layers 6 --strategy distilbert --arch distilbert
      ckptkit distill init out/kobert out/student3-mlm --layers 0,4,8 --mlm-head
      ckptkit distill init out/bigbird-pegasus out/bigbp-16-4 --decoder-layers 0,5,10,15
    """
    from ckptkit.distill.student import build_student
    from ckptkit.errors import UsageError
    from ckptkit.output.record import command_line

    if out is None and not dry_run:
        raise UsageError("missing OUT, the student folder", hint="or pass --dry-run")
    if layers is not None and num_layers is not None:
        raise UsageError("give --layers or --num-layers, not both")
    from ckptkit.output.card import check_card_options

    check_card_options(teacher_repo_id=teacher_repo_id)
    card = {"language": list(language) or None, "license": license_, "teacher_repo_id": teacher_repo_id}
    report = build_student(teacher, out, layers=layers, num_layers=num_layers, encoder_layers=encoder_layers,
                           decoder_layers=decoder_layers, strategy=strategy, arch=arch,
                           drop_token_types=drop_token_types, config=config, overwrite=overwrite, dry_run=dry_run,
                           command=command_line(), card=card, mlm_head=mlm_head,
                           **family_options)
    if as_json:
        emit_json(report.to_json())
    elif dry_run:
        click.echo(report.format_text(tensors=show_tensors))  # the plan is the output
    else:
        info(report.format_text(tensors=show_tensors), quiet=quiet)  # stdout stays clean for pipes
