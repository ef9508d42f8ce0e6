"""``verify`` streams (#18 item 3): the reference forward reads each TF variable when it reaches it, so it
holds about one layer's weights in float64, never the whole model; float32 rounding is judged relative to
the outputs' magnitude."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np

from ckptkit.converters import verify
from ckptkit.converters.families import get_family
from ckptkit.converters.formats.tf1 import open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.reference import bert_reference_forward, fixed_inputs
from support.bert import bert_tf_config, bert_tf_variables

SHAPE = dict(vocab_size=512, hidden=256, layers=8, heads=4, intermediate=1024, max_positions=32)


def test_reference_forward_holds_one_layer_of_weights_at_a_time(tmp_path):
    """8 layers of 256/1024 weights are ~50 MB in float64; the forward's peak allocation stays near one
    layer's (before #18 every variable was cached in float64 at once). Same outputs as a forward over
    every variable held in memory."""
    variables = bert_tf_variables(**SHAPE)
    prefix = write_tf_checkpoint(tmp_path / "model.ckpt", variables)
    config = bert_tf_config(**SHAPE)
    inputs = fixed_inputs(vocab_size=SHAPE["vocab_size"], max_positions=SHAPE["max_positions"], type_vocab_size=2)
    whole_model = sum(v.size * 8 for v in variables.values())
    one_layer = sum(v.size * 8 for k, v in variables.items() if "/layer_0/" in k)
    with open_tf_checkpoint(prefix) as ckpt:
        tracemalloc.start()
        try:
            streamed = verify._reference_outputs(get_family("bert"), ckpt, config, inputs)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 3 * one_layer < whole_model / 2, (peak, one_layer, whole_model)
    held = {k: v.astype(np.float64) for k, v in variables.items()}
    expected = bert_reference_forward(held.__getitem__, set(held), config, inputs)
    assert set(streamed) == set(expected)
    for key in expected:
        np.testing.assert_allclose(streamed[key], expected[key], rtol=0, atol=1e-12, err_msg=key)


def test_forward_tolerance_grows_with_the_outputs_magnitude():
    """BERT-base-sized random weights give MLM logits near 60, where float32 rounding alone differs by
    ~5e-5: 1e-5 absolute would fail a correct conversion; a mapping mistake still differs by O(1)."""
    assert verify.forward_tolerance(np.array([0.9, -0.3])) == 1e-5
    assert verify.forward_tolerance(np.array([[-62.9, 10.0]])) == 1e-5 * 62.9
    assert 5.5e-5 < verify.forward_tolerance(np.array([62.9])) < 0.1


def _mapped_rss_kb(folder) -> int:
    """Resident KiB of this process's mappings of files in FOLDER (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) > 5 and head[5].startswith(str(folder))
        elif inside and head[0] == "Rss:":
            total += int(head[1])
    return total


def test_transformers_forward_keeps_about_one_layer_resident(tmp_path):
    """verify's HF side: the weights are views of the mapped safetensors file; with layer_by_layer each
    module's pages leave the resident set once it ran (the tied output embeddings are read back), and the
    outputs are bit for bit those of a plain forward. A mapping with a written page is left alone."""
    import torch
    import transformers

    from ckptkit.converters.model_pages import clean_file_mappings, layer_by_layer

    from ckptkit.converters.convert import convert_checkpoint

    shape = {**SHAPE, "vocab_size": 2000}
    prefix = write_tf_checkpoint(tmp_path / "tf" / "model.ckpt", bert_tf_variables(**shape))
    (tmp_path / "tf" / "bert_config.json").write_text(json.dumps(bert_tf_config(**shape)))
    folder = str((tmp_path / "hf").resolve())
    convert_checkpoint(prefix, folder, no_tokenizer=True)  # what verify reads: a file ckptkit wrote
    model = transformers.BertForPreTraining.from_pretrained(folder, attn_implementation="eager").eval()
    ids = torch.arange(32).reshape(2, 16)
    with torch.no_grad(), layer_by_layer(model, folder):
        streamed = model(input_ids=ids)
    released = _mapped_rss_kb(folder)
    with torch.no_grad():
        plain = model(input_ids=ids)
    resident = _mapped_rss_kb(folder)
    file_kb = (tmp_path / "hf" / "model.safetensors").stat().st_size // 1024
    assert resident > 0.9 * file_kb and released < 0.2 * file_kb, (released, resident, file_kb)
    assert torch.equal(streamed.prediction_logits, plain.prediction_logits)
    assert torch.equal(streamed.seq_relationship_logits, plain.seq_relationship_logits)
    assert clean_file_mappings(folder)
    weight = model.bert.encoder.layer[0].output.dense.weight
    with torch.no_grad():
        weight.add_(0)  # a written (copied-on-write) page: that mapping is no longer released
    assert clean_file_mappings(folder) == []
