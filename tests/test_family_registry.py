"""The family registry (issue 13 item 2): one row per family, each family one self-contained module.

Every registered family carries its own name, model types, detection signature, transforms, layer
stacks and options; no family module imports another; importing a family changes no shared table.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys

import pytest

from ckptkit.converters import families
from ckptkit.converters.families import FAMILIES, all_families, declared_options, detect_family, \
    family_of_model_type, get_family
from ckptkit.converters.families.base import TRANSFORMS, LayerStack, NameTable, Rule
from ckptkit.converters.families.options import DISTILL_INIT, FamilyOption, check_option_values
from ckptkit.errors import UsageError


def test_every_family_has_its_own_row_fields():
    seen: dict[str, str] = {}
    for name, module in FAMILIES.items():
        family = importlib.import_module(module).FAMILY
        assert family is get_family(name) and family.name == name
        assert family.model_types and family.signature is not None and family.rules and family.classes
        assert family.stacks and all(isinstance(s, LayerStack) for s in family.stacks)
        for model_type in family.model_types:
            assert model_type not in seen, f"{model_type} claimed by {seen.get(model_type)} and {name}"
            seen[model_type] = name
            assert family_of_model_type(model_type) == name
        for rule in family.rules:
            family.transform(rule.transform)  # every transform a rule names is the family's or a common one


def test_no_parallel_tables_beside_the_registry():
    """Before: FAMILY_SIGNATURES and HF_MODEL_TYPES repeated what each family should say itself."""
    assert not hasattr(families, "FAMILY_SIGNATURES") and not hasattr(families, "HF_MODEL_TYPES")
    assert family_of_model_type("roberta") is None


@pytest.mark.parametrize("names, family", [
    (["bert/embeddings/word_embeddings", "bert/encoder/layer_0/output/dense/kernel"], "bert"),
    (["bert/embeddings/word_embeddings", "bert/encoder/LayerNorm/gamma", "transform/kernel"], "bigbird"),
    (["electra/embeddings/word_embeddings", "generator_predictions/output_bias"], "electra"),
    (["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.weight"], "bert"),
    (["electra.embeddings.word_embeddings.weight"], "electra"),
    (["something/else"], None),
])
def test_detection_derives_from_the_rows(names, family):
    assert detect_family(names) == family


def test_each_family_reads_its_rules_both_ways_one_to_one():
    for family in all_families():
        for cls in family.classes:
            table = family.name_table(prefix=cls.prefix)
            hf_names = set()
            for rule in family.rules:
                if family.transform(rule.transform).to_tf is None or rule.optional:
                    continue
                tf_name = rule.tf.replace("{task}", "t")
                for stack in family.stacks:  # every numbered placeholder (ALBERT: {group}, {inner})
                    tf_name = tf_name.replace(f"{{{stack.placeholder}}}", "1")
                hf_name, _, _ = table.tf_to_hf(tf_name)
                assert hf_name not in hf_names, (family.name, hf_name)
                hf_names.add(hf_name)
                assert table.hf_to_tf(hf_name)[0] == tf_name, (family.name, cls.name, tf_name)


def test_transforms_are_family_local():
    """Before: bigbird.py added its transforms to the global table at import time."""
    bigbird, bert = get_family("bigbird"), get_family("bert")
    assert bigbird.transform("bigbird_qkv").to_tf is not None
    with pytest.raises(KeyError):
        bert.transform("bigbird_qkv")
    assert "bigbird_qkv" not in TRANSFORMS
    with pytest.raises(TypeError):
        TRANSFORMS["mine"] = TRANSFORMS["copy"]  # read-only
    code = ("import ckptkit.converters.families.base as b; before = set(b.TRANSFORMS)\n"
            "from ckptkit.converters.families import all_families; all_families()\n"
            "print(sorted(set(b.TRANSFORMS) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _family_modules() -> dict[str, ast.Module]:
    return {module: ast.parse(inspect.getsource(importlib.import_module(module))) for module in FAMILIES.values()}


def test_no_family_module_imports_another():
    """Before: bigbird.py and electra.py imported BERT's rules and helpers from bert.py."""
    modules = set(FAMILIES.values())
    for module, tree in _family_modules().items():
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not (imported & modules) - {module}, (module, sorted(imported & modules))


_MUTATING = {"setdefault", "update", "append", "extend", "insert", "pop", "clear", "add", "__setitem__"}


def test_no_module_level_mutation_of_imported_tables():
    """A family module's top level only defines names: no call mutating, no item assigned on, what it imports."""
    for module, tree in _family_modules().items():
        imported = {(a.asname or a.name) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                    for a in node.names}
        for node in tree.body:
            for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                        and isinstance(sub.func.value, ast.Name) and sub.func.value.id in imported:
                    assert sub.func.attr not in _MUTATING, (module, sub.func.value.id, sub.func.attr)
                targets = sub.targets if isinstance(sub, ast.Assign) else \
                    [sub.target] if isinstance(sub, ast.AugAssign) else []
                for target in targets:
                    base = target.value if isinstance(target, (ast.Subscript, ast.Attribute)) else None
                    assert not (isinstance(base, ast.Name) and base.id in imported), (module, base.id)


def test_layer_stacks_expand_each_placeholder_from_its_config_key():
    """Before: expected() assumed one weight set per num_hidden_layers."""
    rules = (Rule("enc/layer_{enc}/w", "encoder.layers.{enc}.w"), Rule("dec/layer_{dec}/w", "decoder.layers.{dec}.w"),
             Rule("shared/group_{group}/w", "groups.{group}.w"), Rule("emb", "emb"))
    stacks = (LayerStack("enc", "encoder_layers"), LayerStack("dec", "decoder_layers"),
              LayerStack("group", "num_hidden_groups"))
    table = NameTable(rules, prefix="", stacks=stacks)
    assert table.tf_to_hf("dec/layer_3/w")[0] == "decoder.layers.3.w"
    assert table.hf_to_tf("groups.0.w")[0] == "shared/group_0/w"
    assert table.expected(frozenset({"base"}), {"enc": 2, "dec": 1, "group": 1}, side="hf") == {
        "encoder.layers.0.w", "encoder.layers.1.w", "decoder.layers.0.w", "groups.0.w", "emb"}
    bert = get_family("bert")
    assert bert.stack_counts({"num_hidden_layers": 3}) == {"layer": 3}


def test_family_options_are_declared_by_their_families():
    """Before: part, generator_heads and tf_layout were fields of the general ConversionOptions."""
    convert = declared_options("convert")
    assert set(convert) == {"part", "generator_heads", "tf_layout", "keep_accents", "scope"}
    assert convert["part"].choices == ("discriminator", "generator", "both")
    assert convert["tf_layout"].choices == ("3d", "2d") and convert["generator_heads"].type is int
    assert declared_options(DISTILL_INIT)["part"].choices == ("discriminator", "generator")
    owners = {o.name: f.name for f in all_families() for o in f.options}
    assert owners == {"part": "electra", "generator_heads": "electra", "tf_layout": "bigbird",
                      "keep_accents": "albert", "scope": "bigbird_pegasus"}
    assert check_option_values({"part": None, "tf_layout": "2d"}, convert.values()) == {"tf_layout": "2d"}
    for values, message in (({"tf_layout": "4d"}, "--tf-layout is '4d', expected one of 3d, 2d"),
                            ({"generator_heads": 0}, "--generator-heads is 0, expected a positive integer"),
                            ({"colour": "red"}, "unknown family option 'colour'")):
        with pytest.raises(UsageError, match=message):
            check_option_values(values, convert.values())
    assert FamilyOption("generator_heads", "h", type=int).flag == "--generator-heads"


def test_conversion_options_carry_family_options_as_one_checked_mapping():
    """Before: ConversionOptions had ELECTRA's part/generator_heads and BigBird's tf_layout as its own fields."""
    from ckptkit.converters.convert.options import ConversionOptions, with_overrides

    assert not {"part", "generator_heads", "tf_layout"} & set(ConversionOptions.__dataclass_fields__)
    options = ConversionOptions(family_options={"part": "generator", "tf_layout": None})
    assert dict(options.family_options) == {"part": "generator"}
    with pytest.raises(TypeError):
        options.family_options["part"] = "both"  # read-only, like the rest of the options
    assert dict(with_overrides(options, {"generator_heads": 2}).family_options) == {"part": "generator",
                                                                                    "generator_heads": 2}
    with pytest.raises(UsageError, match="--tf-layout is '4d'"):
        ConversionOptions(family_options={"tf_layout": "4d"})


def test_the_cli_offers_each_declared_option_generically(monkeypatch):
    """A family's option becomes a flag of the command it names, its value reaches the callback by name."""
    import click
    from click.testing import CliRunner

    from ckptkit.cli.family_options import FamilyOptionsCommand
    from ckptkit.converters import families as registry

    toy = FamilyOption("block_count", "Toy family: blocks.", type=int, minimum=1, commands=("toy",))
    monkeypatch.setattr(registry, "declared_options", lambda command: {"block_count": toy} if command == "toy" else {})

    @click.command("toy", cls=FamilyOptionsCommand, family_command="toy", after="first")
    @click.option("--first")
    @click.option("--last")
    def toy_command(first, last, **family_options):
        click.echo(repr(family_options))

    runner = CliRunner()
    assert runner.invoke(toy_command, ["--block-count", "3"]).output.strip() == "{'block_count': 3}"
    help_text = runner.invoke(toy_command, ["--help"]).output
    assert help_text.index("--first") < help_text.index("--block-count") < help_text.index("--last")
    assert "Toy family: blocks." in help_text


def test_convert_and_distill_init_flags_come_from_the_declarations():
    """The flags keep their names, choices and help; loading the commands still imports no family module."""
    code = ("import sys\nfrom ckptkit.cli import COMMANDS, load_command\n"
            "from ckptkit.cli.family_options import FamilyOptionsCommand\n"
            "convert = load_command(COMMANDS['convert']); load_command(COMMANDS['distill'])\n"
            "print(isinstance(convert, FamilyOptionsCommand), 'ckptkit.converters.families' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    from click.testing import CliRunner

    from ckptkit.cli import cli

    convert_help = " ".join(CliRunner().invoke(cli, ["convert", "--help"]).output.split())
    for option in declared_options("convert").values():
        assert option.flag in convert_help and " ".join(option.help.split()) in convert_help
    assert "--part [discriminator|generator|both]" in convert_help and "--tf-layout [3d|2d]" in convert_help
    init_help = " ".join(CliRunner().invoke(cli, ["distill", "init", "--help"]).output.split())
    assert "--part [discriminator|generator] A TF ELECTRA pretraining checkpoint holds both models" in init_help
