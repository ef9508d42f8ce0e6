"""Tiny TF checkpoints of each family with a valid config, for the config validation and fuzz tests.

Each family's checkpoint is written without a config file beside it (the tests pass one with --config),
so a bad config is never picked up by accident.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.albert import albert_tf_config, albert_tf_variables
from support.bert import bert_tf_config, bert_tf_variables
from support.families import bigbird_tf_config, bigbird_tf_variables, electra_hparams, electra_tf_variables
from support.mobilebert import mobilebert_config, mobilebert_tf_variables

BERT_DIMS = dict(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=24)
BIGBIRD_DIMS = dict(vocab_size=70, hidden=16, layers=1, heads=2, intermediate=32, max_positions=64)
ELECTRA_DIMS = dict(vocab_size=50, embedding=8, hidden=16, layers=1, heads=2, intermediate=32, max_positions=32)
ELECTRA_GEN = dict(generator_hidden=8, generator_heads=1)
ALBERT_DIMS = dict(vocab_size=40, embedding=8, hidden=16, groups=2, inner=1, heads=2, intermediate=24, max_positions=24)

# family -> (TF variables, a valid TF config as the official code writes it, the config file name)
FAMILIES = {
    "bert": (lambda: bert_tf_variables(**BERT_DIMS), lambda: bert_tf_config(**BERT_DIMS), "bert_config.json"),
    "bigbird": (lambda: bigbird_tf_variables(**BIGBIRD_DIMS),
                lambda: bigbird_tf_config(**BIGBIRD_DIMS, block_size=4, num_rand_blocks=1), "pretrain.config"),
    "electra": (lambda: electra_tf_variables(**ELECTRA_DIMS, **ELECTRA_GEN),
                lambda: electra_hparams(**ELECTRA_DIMS, generator_hidden=ELECTRA_GEN["generator_hidden"]),
                "hparams.json"),
    "albert": (lambda: albert_tf_variables(**ALBERT_DIMS), lambda: albert_tf_config(**ALBERT_DIMS, layers=4),
               "albert_config.json"),
    "mobilebert": (lambda: mobilebert_tf_variables(mobilebert_config(num_hidden_layers=1, num_feedforward_networks=2)),
                   lambda: mobilebert_config(num_hidden_layers=1, num_feedforward_networks=2), "bert_config.json"),
}


def write_tf_model(folder: Path, family: str) -> tuple[str, dict]:
    """A tiny TF checkpoint of ``family`` in ``folder`` (no config beside it): (prefix, valid config)."""
    variables, config, _ = FAMILIES[family]
    folder.mkdir(parents=True, exist_ok=True)
    prefix = write_tf_checkpoint(str(folder / "model.ckpt-5"), variables())
    return prefix, config()


def write_config(path: Path, config) -> str:
    """``config`` as JSON (NaN and Infinity written as Python's json does), or as-is when it is text."""
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


def leftovers(parent: Path, name: str) -> list[str]:
    """What a failed run left in ``parent`` under ``name`` (the folder or a temporary sibling)."""
    return [n for n in os.listdir(parent) if n == name or n.startswith(f".{name}")]
