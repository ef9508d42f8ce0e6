"""``ckptkit tokenizer``: write fast tokenizer folders that AutoTokenizer loads without custom code."""

from __future__ import annotations

import click

from ckptkit.cli.common import emit_json, info, json_option, quiet_option


@click.group("tokenizer", context_settings={"help_option_names": ["-h", "--help"]})
def tokenizer_group() -> None:
    """Export tokenizers as tokenizer.json folders.

    \b
    Example:
      ckptkit tokenizer kobert out/kobert --spm tokenizer_78b3253a26.model --vocab vocab.txt
    """


@tokenizer_group.command("kobert")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--spm", "spm_file", type=click.Path(dir_okay=False),
              help="KoBERT SentencePiece model (default: $CKPTKIT_KOBERT_DIR, then monologg/kobert via the HF cache).")
@click.option("--vocab", "vocab_file", type=click.Path(dir_okay=False),
              help="KoBERT vocab.txt, 8002 entries (found like --spm when omitted).")
@quiet_option
@json_option
def kobert_command(out: str, spm_file: str | None, vocab_file: str | None, quiet: bool, as_json: bool) -> None:
    """Write the fixed KoBERT tokenizer to OUT as a fast tokenizer folder.

    OUT gets tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt and the
    SentencePiece model; AutoTokenizer.from_pretrained(OUT) then returns a PreTrainedTokenizerFast
    (offsets, overflowing tokens) with no trust_remote_code.

    \b
    Example:
      ckptkit tokenizer kobert out/kobert --spm tokenizer_78b3253a26.model --vocab vocab.txt
      python -c "from transformers import AutoTokenizer; print(AutoTokenizer.from_pretrained('out/kobert'))"
    """
    from ckptkit.tokenizers.export import write_tokenizer_files

    result = write_tokenizer_files(out, kind="kobert", spm_file=spm_file, vocab_file=vocab_file)
    if as_json:
        emit_json({"out": out, **result.to_dict()})
        return
    info(f"wrote {', '.join(result.files)} to {out} ({result.tokenizer_class}, vocab {result.vocab_size})",
         quiet=quiet)
