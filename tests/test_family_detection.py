"""Family detection from TF names and HF model types, and the ``family`` override."""

from __future__ import annotations

import json

import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families import FAMILIES, detect_family, get_family
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from ckptkit.errors import PlanError
from support.bert import bert_tf_variables, with_adam_slots
from support.families import bigbird_tf_variables, electra_tf_variables

BERT = bert_tf_variables(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=32)
BIGBIRD = bigbird_tf_variables(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=32)
ELECTRA = electra_tf_variables(vocab_size=40, embedding=8, hidden=16, layers=2, heads=2, intermediate=32,
                               max_positions=32, generator_hidden=8)


@pytest.mark.parametrize("variables, family", [
    (BERT, "bert"), (with_adam_slots(BERT), "bert"),
    (BIGBIRD, "bigbird"), (with_adam_slots(BIGBIRD,
                                       slot_names=("AdamWeightDecayOptimizer", "AdamWeightDecayOptimizer_1")),
                           "bigbird"),
    ({k: v for k, v in BIGBIRD.items() if not k.startswith(("transform/", "cls/"))}, "bigbird"),  # encoder only
    (ELECTRA, "electra"),
    ({k: v for k, v in ELECTRA.items() if k.startswith("electra/")}, "electra"),
])
def test_detects_from_tf_names(variables, family):
    assert detect_family(variables) == family


@pytest.mark.parametrize("model_type, family", [("bert", "bert"), ("big_bird", "bigbird"), ("electra", "electra")])
def test_model_type_decides_for_hub_folders(model_type, family):
    assert detect_family(["bert.embeddings.word_embeddings.weight"], model_type=model_type) == family


def test_every_family_is_registered_and_its_rules_reverse():
    for name in FAMILIES:
        family = get_family(name)
        assert family.name == name
        required = [r.hf for r in family.rules if not r.optional]
        assert len(required) == len(set(required)), name


def test_family_option_overrides_detection(tmp_path):
    (tmp_path / "tf").mkdir()
    write_tf_checkpoint(str(tmp_path / "tf" / "model.ckpt-1"), BIGBIRD)
    with pytest.raises(PlanError, match="not bert TF variables"):
        convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "out"), family="bert")
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "out"), family="bigbird", overwrite=True)
    assert result.plan.info["family"] == "bigbird"
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "big_bird"
