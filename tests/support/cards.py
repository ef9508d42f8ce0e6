"""Tiny official-layout TF checkpoints of every family with a tokenizer, for the model-card tests.

Each builder writes a checkpoint, its config and tokenizer files into an empty folder ``tf``; the
card tests convert them with the CLI (tests/test_card_snippets.py, tests/test_upload_parts.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.albert import albert_tf_config, albert_tf_variables
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab
from support.families import bigbird_tf_config, bigbird_tf_variables, electra_hparams, electra_tf_variables
from support.mobilebert import mobilebert_config, mobilebert_tf_variables
from support.pegasus import pegasus_config, pegasus_tf_variables, write_flags


def _vocab(folder: Path, size: int) -> None:
    (folder / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(size)) + "\n")


def tiny_bert(tf: Path) -> None:
    dims = dict(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=32)
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(bert_tf_variables(**dims, seed=1).items()))
    (tf / "bert_config.json").write_text(json.dumps(bert_tf_config(**dims)))
    _vocab(tf, 40)


def tiny_bigbird(tf: Path) -> None:
    dims = dict(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=64)
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(bigbird_tf_variables(**dims, layout="3d").items()))
    (tf / "pretrain.config").write_text(json.dumps(bigbird_tf_config(**dims, block_size=4, num_rand_blocks=1)))
    _vocab(tf, 40)


def tiny_electra(tf: Path) -> None:
    """Discriminator and generator in one checkpoint: converts into ``discriminator/`` and ``generator/``."""
    dims = dict(vocab_size=40, embedding=8, hidden=16, layers=2, heads=2, intermediate=32, max_positions=32)
    write_tf_checkpoint(str(tf / "model.ckpt-1"),
                        sorted(electra_tf_variables(**dims, generator_hidden=8, generator_heads=1).items()))
    (tf / "hparams.json").write_text(json.dumps({**electra_hparams(**dims, generator_hidden=8),
                                                 "generator": {"num_attention_heads": 1}}))
    _vocab(tf, 40)


def tiny_mobilebert(tf: Path) -> None:
    config = mobilebert_config()
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(mobilebert_tf_variables(config).items()))
    (tf / "bert_config.json").write_text(json.dumps(config))
    _vocab(tf, config["vocab_size"])


def tiny_albert(tf: Path) -> None:
    import sentencepiece as spm

    corpus = [f"the model {w} converts checkpoint {i} quickly, paris capital france" for i, w in
              enumerate("abcdefghij" * 10)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(tf / "30k-clean"),
                                   vocab_size=60, pad_id=0, unk_id=1, eos_id=-1, bos_id=-1, hard_vocab_limit=False,
                                   control_symbols=["[CLS]", "[SEP]", "[MASK]"], model_type="unigram", minloglevel=2)
    size = spm.SentencePieceProcessor(model_file=str(tf / "30k-clean.model")).get_piece_size()
    dims = dict(vocab_size=size, embedding=8, hidden=16, heads=2, intermediate=24, max_positions=32)
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(albert_tf_variables(**dims, groups=1, inner=1).items()))
    (tf / "albert_config.json").write_text(json.dumps(albert_tf_config(**dims, groups=1, inner=1, layers=2)))


def tiny_pegasus(tf: Path) -> None:
    """BigBird-Pegasus (encoder-decoder) with a Pegasus-layout SentencePiece model: <pad> 0, </s> 1, <unk>, <n>."""
    import sentencepiece as spm

    text = ["The model converts checkpoints between formats.", "A summary of the long document follows.",
            "Paris is the capital of France."] * 30
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=str(tf / "pegasus"), vocab_size=80,
                                   pad_id=0, eos_id=1, bos_id=-1, unk_id=6, hard_vocab_limit=False,
                                   character_coverage=1.0, minloglevel=2,
                                   user_defined_symbols=["<s>", "<sep_0>", "[MASK]", "<unused_3>", "<n>"])
    size = spm.SentencePieceProcessor(model_file=str(tf / "pegasus.model")).get_piece_size()
    config = pegasus_config(vocab_size=size, num_hidden_layers=1)
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(pegasus_tf_variables(config).items()))
    write_flags(str(tf / "summarization.config"), config)


FAMILIES = {"bert": tiny_bert, "bigbird": tiny_bigbird, "electra": tiny_electra, "mobilebert": tiny_mobilebert,
            "albert": tiny_albert, "pegasus": tiny_pegasus}


def ckptkit(*argv: str) -> None:
    """Run the CLI in-process with ``sys.argv`` set, so the recorded command is the one given."""
    from ckptkit.cli import main

    saved = sys.argv
    sys.argv = ["ckptkit", *argv]
    try:
        main(list(argv))
    finally:
        sys.argv = saved
