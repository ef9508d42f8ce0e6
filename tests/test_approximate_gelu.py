"""Issue 12 item 15: a hub folder whose gelu form the TF code lacks (BERT/BigBird trained with the exact erf
'gelu', as monologg/kobert's config says; ELECTRA with the tanh form) is refused --to tf1 with one line naming
--approximate-gelu; with it, the TF config gets the TF code's gelu and the max logit difference between the two
models on a fixed input is measured and reported (text summary, --json, --dry-run)."""

from __future__ import annotations

import json

import pytest

from support.cli import run_cli

# (transformers class, config class, hidden_act the TF code lacks, extra config, TF config file)
CASES = {
    "bert": ("BertForMaskedLM", "BertConfig", "gelu", {}, "bert_config.json"),
    "bigbird": ("BigBirdForMaskedLM", "BigBirdConfig", "gelu", {"attention_type": "original_full"},
                "pretrain.config"),
    "electra": ("ElectraForPreTraining", "ElectraConfig", "gelu_new", {"embedding_size": 16}, "hparams.json"),
}


run = run_cli


@pytest.fixture(scope="module", params=sorted(CASES))
def hub(request, tmp_path_factory):
    """(family, a tiny hub folder saved by transformers with the hidden_act the TF code lacks)."""
    import torch
    import transformers

    cls, config_cls, act, extra, _ = CASES[request.param]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=2, intermediate_size=64,
                                               max_position_embeddings=32, hidden_act=act, **extra)
    folder = tmp_path_factory.mktemp(request.param) / "hub"
    getattr(transformers, cls)(config).save_pretrained(folder)
    return request.param, folder


def test_refused_by_default_with_one_line_naming_the_option(tmp_path, capsys, hub):
    family, folder = hub
    code, _, err = run(["convert", folder, tmp_path / "tf", "--to", "tf1"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "hidden_act" in err and "--approximate-gelu" in err and "no equivalent" in err, err
    assert not (tmp_path / "tf").exists()


def test_approximate_gelu_writes_the_tf_gelu_and_reports_the_difference(tmp_path, capsys, hub):
    family, folder = hub
    code, out, err = run(["convert", folder, tmp_path / "tf", "--to", "tf1", "--approximate-gelu", "--json"],
                         capsys)
    assert code == 0, err
    report = json.loads(out)["approximate_gelu"]
    assert 0 < report["max_abs_logit_diff"] < 0.05, report
    assert report["hidden_act"] == CASES[family][2] and report["tf_hidden_act"] == "gelu"
    assert json.loads((tmp_path / "tf" / CASES[family][4]).read_text())["hidden_act"] == "gelu"

    code, out, err = run(["convert", folder, tmp_path / "tf2", "--to", "tf1", "--approximate-gelu"], capsys)
    assert code == 0, err
    line = next(x for x in (out + err).splitlines() if "--approximate-gelu" in x)
    assert f"{report['max_abs_logit_diff']:.3e}" in line and "max |logit diff|" in line, line

    code, out, err = run(["convert", folder, "--to", "tf1", "--approximate-gelu", "--dry-run", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["approximate_gelu"]["max_abs_logit_diff"] == report["max_abs_logit_diff"]


def test_measured_difference_is_the_models_own(hub):
    """The reported number is transformers' erf model against its tanh model on the documented input."""
    import torch
    import transformers

    from ckptkit.converters.approximate_gelu import FIXED_INPUT
    from ckptkit.converters.convert import ConversionOptions, prepare_conversion
    from ckptkit.converters.formats import open_checkpoint

    family, folder = hub
    with open_checkpoint(str(folder)) as source:
        prepared = prepare_conversion(source, ConversionOptions(to="tf1", approximate_gelu=True))
    report = prepared.plan.info["approximate_gelu"]
    cls = getattr(transformers, CASES[family][0])
    batch, tokens = FIXED_INPUT
    ids = (torch.arange(batch * tokens).reshape(batch, tokens) * 7919 + 101) % 60
    with torch.no_grad():
        logits = [cls.from_pretrained(folder, hidden_act=act).eval()(input_ids=ids, attention_mask=ids * 0 + 1)[0]
                  for act in (report["hidden_act"], report["computed_as"])]
    assert report["max_abs_logit_diff"] == pytest.approx(float((logits[0] - logits[1]).abs().max()), rel=1e-4)


def test_electra_part_folders_with_tanh_gelu(tmp_path, capsys):
    """Discriminator and generator folders joined into one TF checkpoint: each part measured and reported."""
    from config_helpers import FAMILIES, write_config, write_tf_model

    prefix, config = write_tf_model(tmp_path / "tf", "electra")
    main_ok = run(["convert", prefix, tmp_path / "hub", "--config",
                   write_config(tmp_path / FAMILIES["electra"][2], config)], capsys)
    assert main_ok[0] == 0, main_ok[2]
    for part in ("discriminator", "generator"):
        path = tmp_path / "hub" / part / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "hidden_act": "gelu_new"}))
    code, _, err = run(["convert", tmp_path / "hub", tmp_path / "back", "--to", "tf1"], capsys)
    assert code == 2 and "--approximate-gelu" in err and not (tmp_path / "back").exists(), err
    code, out, err = run(["convert", tmp_path / "hub", tmp_path / "back", "--to", "tf1", "--approximate-gelu",
                          "--json"], capsys)
    assert code == 0, err
    reports = json.loads(out)["approximate_gelu"]
    assert set(reports) == {"discriminator", "generator"}
    assert all(0 < r["max_abs_logit_diff"] < 0.05 for r in reports.values()), reports
    hparams = json.loads((tmp_path / "back" / "hparams.json").read_text())
    assert hparams["model_hparam_overrides"]["hidden_act"] == "gelu"
