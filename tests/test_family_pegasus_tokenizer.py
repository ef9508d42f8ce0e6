"""BigBird-Pegasus beyond the official checkpoints: the Pegasus SentencePiece model as a PegasusTokenizerFast (ids
compared with SentencePiece's), and a model made and saved by transformers converted to the official names (its
outputs compared with the NumPy reference over the TF variables by ``verify``)."""

from __future__ import annotations

import io
import json

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.verify import verify_conversion
from support.pegasus import pegasus_config, pegasus_tf_variables, save_pegasus_checkpoint, write_flags


def _tiny_spm(path) -> None:
    """A SentencePiece model with Pegasus's layout: <pad> 0, </s> 1, reserved user-defined pieces, <unk>, <n>."""
    import sentencepiece as spm

    text = ["The model converts checkpoints between formats.", "A summary of the long document follows.",
            "Pegasus was trained with gap sentences.", "numbers 12 and 345 appear here, too!"] * 30
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=buf, vocab_size=90, pad_id=0,
                                   eos_id=1, bos_id=-1, unk_id=6, hard_vocab_limit=False, character_coverage=1.0,
                                   user_defined_symbols=["<s>", "<sep_0>", "[MASK]", "<unused_3>", "<n>"],
                                   minloglevel=2)
    path.write_bytes(buf.getvalue())


def test_pegasus_sentencepiece_model_becomes_a_pegasus_tokenizer(tmp_path):
    import sentencepiece as spm
    import transformers

    _tiny_spm(tmp_path / "tf" / "pegasus.model") if (tmp_path / "tf").mkdir() is None else None
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tf" / "pegasus.model"))
    config = pegasus_config(vocab_size=sp.get_piece_size(), num_hidden_layers=1)
    save_pegasus_checkpoint(str(tmp_path / "tf" / "model.ckpt-1"), pegasus_tf_variables(config), optimizer=None)
    write_flags(str(tmp_path / "tf" / "summarization.config"), config)
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"))
    assert not [w for w in result.plan.warnings if "tokenizer" in w]
    tok_config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "PegasusTokenizerFast" and tok_config["offset"] == 0
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert len(tok) == sp.get_piece_size() == config["vocab_size"]
    assert (tok.pad_token_id, tok.eos_token_id, tok.mask_token) == (0, 1, "[MASK]")
    for text in ("The model converts checkpoints.", "A summary<n>of 345 numbers!", "gap sentences and formats",
                 "Unseen wörds ﬁ 12"):
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text
        assert tok(text)["input_ids"] == sp.encode(text) + [1], text  # </s> ends a sequence (eos 1)
    report = verify_conversion(str(tmp_path / "tf"), str(tmp_path / "hf"), forward=False)
    assert report.tokenizer["ok"], report.tokenizer


def _transformers_model(folder, **overrides) -> None:
    """A BigBirdPegasusForConditionalGeneration made and saved by transformers itself (random weights, one
    position table as the official code has)."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BigBirdPegasusConfig(
        vocab_size=48, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=40, decoder_ffn_dim=40, max_position_embeddings=32,
        attention_type="original_full", block_size=4, num_random_blocks=1, activation_function="relu", **overrides)
    model = transformers.BigBirdPegasusForConditionalGeneration(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # LayerNorms and biases away from their initial values
        model.model.shared.weight.normal_(0.0, 0.5)  # a realistic residual stream (see the module docstring)
        model.model.encoder.embed_positions.weight.normal_(0.0, 1.0)
        model.model.decoder.embed_positions.weight.copy_(model.model.encoder.embed_positions.weight)
    model.save_pretrained(str(folder))


def test_a_transformers_model_converts_to_the_official_names_and_its_outputs_match(tmp_path):
    _transformers_model(tmp_path / "hf")
    result = convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "tf"), to="tf1")
    assert result.plan.info["family"] == "bigbird_pegasus"
    config = json.loads((tmp_path / "tf" / "summarization.config").read_text())
    expected = set(pegasus_tf_variables(pegasus_config(vocab_size=48, intermediate_size=40, max_position_embeddings=32,
                                                       use_bias=False)))
    import tensorflow as tf

    assert set(tf.train.load_checkpoint(str(tmp_path / "tf" / "model.ckpt")).get_variable_to_shape_map()) == expected
    assert config["hidden_act"] == "relu" and config["vocab_model_file"] == "pegasus"
    report = verify_conversion(str(tmp_path / "hf"), str(tmp_path / "tf"), tokenizer=False)
    assert report.passed, report.summary()  # transformers' outputs vs the NumPy reference over the TF variables
    assert {r["output"] for r in report.outputs} == {"encoder_last_hidden_state", "last_hidden_state", "logits"}
