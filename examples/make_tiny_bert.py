"""Regenerate examples/tiny-bert: a 2-layer BERT checkpoint as google-research/bert writes it
(MLM + NSP heads, Adam slots, global_step), written with ckptkit's own TF writer.

    python examples/make_tiny_bert.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # support: test factories
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots  # noqa: E402

from ckptkit.converters.formats.tf1 import write_tf_checkpoint  # noqa: E402

SHAPE = dict(vocab_size=128, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)


def main(out: str = os.path.join(os.path.dirname(__file__), "tiny-bert")) -> None:
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    variables = with_adam_slots(bert_tf_variables(**SHAPE, seed=2024), global_step=20000)
    write_tf_checkpoint(os.path.join(out, "model.ckpt-20000"), sorted(variables.items()))
    with open(os.path.join(out, "bert_config.json"), "w") as f:
        json.dump(bert_tf_config(**SHAPE), f, indent=2)
    with open(os.path.join(out, "vocab.txt"), "w") as f:
        f.write("\n".join(tiny_wordpiece_vocab(SHAPE["vocab_size"])) + "\n")
    print(f"wrote {out}: {sorted(os.listdir(out))}")


if __name__ == "__main__":
    main()
