"""Config fuzz (issue 12 "Done when"): seeded random mutations of valid configs of every family, on both sides
(the TF config a TF checkpoint is converted with; the config.json of a hub folder converted --to tf1).

Each mutated config goes through the conversion's checks (``prepare_conversion``: everything up to the first
byte written). Only :class:`~ckptkit.errors.CkptkitError` may come out, no case may take over 5 s, and every
accepted TF config gives a folder that transformers loads (a sample of the distinct config.json files it
produces is written and loaded). ``CKPTKIT_FUZZ_CASES`` sets the number of cases (default 2,400, 400 per
target; ``make fuzz`` runs more).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from pathlib import Path

import pytest

from ckptkit.converters.convert import ConversionOptions, convert_checkpoint, prepare_conversion
from ckptkit.converters.families import get_family
from ckptkit.converters.formats import open_checkpoint
from ckptkit.errors import CkptkitError
from config_helpers import FAMILIES, write_config, write_tf_model

CASES = int(os.environ.get("CKPTKIT_FUZZ_CASES", "2400"))
TARGETS = [(side, family) for side in ("tf", "hf") for family in FAMILIES]
PER_TARGET = max(1, CASES // len(TARGETS))
LOAD_SAMPLES = max(8, PER_TARGET // 25)  # distinct accepted config.json files loaded in transformers per family

JUNK = ["abc", "32", "", "gelu", "gelu_new", "relu", "block_sparse", "original_full", "small", "postnorm",
        32.5, 0.5, 1.0, 0.0, -0.1, 1e-12, 1e308, math.nan, math.inf, -math.inf,
        -1, 0, 1, 2, 3, 4, 7, 8, 16, 17, 2**31 - 1, 2**31, 10**30, -10**30, True, False, None,
        [], [1], [16, 2], {}, {"a": [None, {"b": math.nan}]}, [[[]]], {"hidden_size": "x"}]
TOP_LEVEL_JUNK = [[], [1, 2], 3, "text", None, True, [{"hidden_size": 16}]]


def junk(rng: random.Random):
    """A fresh copy of a junk value (never shared between configs)."""
    return copy.deepcopy(rng.choice(JUNK))


def _paths(config: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a config (sections included) as tuples."""
    paths = []
    for key, value in config.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(_paths(value, (*prefix, key)))
    return paths


def _set(config: dict, path: tuple, value) -> None:
    target = config
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def _drop(config: dict, path: tuple) -> None:
    target = config
    for key in path[:-1]:
        target = target.get(key) if isinstance(target.get(key), dict) else {}
    target.pop(path[-1], None)


def _numeric_tweak(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return random.choice([value * 2, value // 2 if isinstance(value, int) else value / 2, value + 1, value - 1,
                          -value, 0, value * 1000])


def mutate(rng: random.Random, valid: dict, known_keys: list[str]):
    """A mutated copy of ``valid``: 1-3 of drop / set junk / tweak a number / nest junk; sometimes junk at the
    top level or corrupted JSON text."""
    roll = rng.random()
    if roll < 0.03:
        return copy.deepcopy(rng.choice(TOP_LEVEL_JUNK))
    config = json.loads(json.dumps(valid))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(config) or [("hidden_size",)]
        op = rng.random()
        if op < 0.25:
            _drop(config, rng.choice(paths))
        elif op < 0.65:
            path = rng.choice(paths + [(k,) for k in known_keys] + [("x_unknown",)])
            _set(config, path, junk(rng))
        elif op < 0.9:
            path = rng.choice(paths)
            random.seed(rng.random())
            _set(config, path, _numeric_tweak(_get(config, path)))
        else:
            _set(config, rng.choice(paths), {"nested": junk(rng), "list": [junk(rng)]})
    if roll > 0.95:
        text = json.dumps(config)
        cut = rng.randrange(len(text))
        return text[:cut] + rng.choice(["", "}", "\x00", "\ufffd", "]]"]) + text[cut + 1:]
    return config


def _get(config: dict, path: tuple):
    target = config
    for key in path:
        target = target.get(key) if isinstance(target, dict) else None
    return target


def as_flagfile(config) -> str | None:
    """A BigBird config as an absl flagfile (``--key=value`` lines), when it is a flat dict."""
    if not isinstance(config, dict) or any(isinstance(v, (dict, list)) for v in config.values()):
        return None
    lines = [f"--{k}" if v is True else f"--no{k}" if v is False else f"--{k}={v}" for k, v in config.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """family -> (TF prefix, valid TF config, hub folder converted from it, its config.json)."""
    root = tmp_path_factory.mktemp("fuzz-models")
    result = {}
    for family in FAMILIES:
        prefix, config = write_tf_model(root / family, family)
        config_path = write_config(root / FAMILIES[family][2], config)
        convert_checkpoint(prefix, str(root / f"{family}-hub"), config=config_path)
        hub = next(p.parent for p in sorted((root / f"{family}-hub").rglob("config.json")))
        result[family] = (prefix, config, hub, json.loads((hub / "config.json").read_text()))
    return result


def _check(source, config_path: str, to: str) -> tuple[str, object]:
    """('rejected', error) | ('accepted', prepared) | ('foreign', exception) for one config."""
    try:
        return "accepted", prepare_conversion(source, ConversionOptions(to=to, config=config_path))
    except CkptkitError as e:
        return "rejected", e
    except Exception as e:  # noqa: BLE001 - what the fuzz looks for
        return "foreign", e


def _hf_configs(prepared) -> list[dict]:
    return [p.hf_config for p in prepared.parts or [prepared]]


@pytest.mark.parametrize("side,family", TARGETS, ids=[f"{s}-{f}" for s, f in TARGETS])
def test_mutated_configs_give_only_ckptkit_errors(tmp_path, models, side, family):
    prefix, tf_valid, hub, hf_valid = models[family]
    valid, source_path = (tf_valid, prefix) if side == "tf" else (hf_valid, str(hub))
    known_keys = sorted({*tf_valid, *tf_valid.get("model_hparam_overrides", {}), *hf_valid})
    tf_schema = getattr(get_family(family), "tf_schema", None)
    rng = random.Random(f"{side}-{family}-12")
    foreign, slow, accepted, counts = [], [], {}, {"accepted": 0, "rejected": 0}
    with open_checkpoint(source_path) as source:
        for case in range(PER_TARGET):
            config = mutate(rng, valid, known_keys)
            flags = as_flagfile(config) if family == "bigbird" and side == "tf" and rng.random() < 0.2 else None
            path = write_config(tmp_path / f"config-{case}.json", flags or config)
            started = time.perf_counter()
            verdict, value = _check(source, path, "hf" if side == "tf" else "tf1")
            if time.perf_counter() - started > 5:
                slow.append(path)
            if verdict == "foreign":
                foreign.append(f"{path}: {type(value).__name__}: {value}")
                continue
            counts[verdict] += 1
            if verdict == "accepted" and side == "tf":
                key = json.dumps(_hf_configs(value), sort_keys=True)
                accepted.setdefault(key, path)
            elif verdict == "accepted" and tf_schema is not None:
                tf_schema.validate(value.tf_config, path="the TF config to be written")
            else:
                os.remove(path)
    assert not foreign, f"{len(foreign)} foreign exceptions, e.g. " + "; ".join(foreign[:3])
    assert not slow, f"{len(slow)} configs took over 5 s, e.g. {slow[0]}"
    assert counts["accepted"] and counts["rejected"], counts  # the mutations reach both outcomes
    print(f"{side}-{family}: {counts}, {len(accepted)} distinct config.json accepted")
    if side == "tf":
        _load_some(tmp_path, prefix, sorted(accepted.values()), rng)


def _load_some(tmp_path: Path, prefix: str, config_paths: list[str], rng: random.Random) -> None:
    """Convert with a sample of the accepted configs (one per distinct config.json) and load each folder."""
    import transformers

    transformers.logging.set_verbosity_error()
    for i, path in enumerate(rng.sample(config_paths, min(LOAD_SAMPLES, len(config_paths)))):
        out = tmp_path / f"out-{i}"
        convert_checkpoint(prefix, str(out), config=path)
        for config_file in out.rglob("config.json"):
            loaded = transformers.AutoConfig.from_pretrained(config_file.parent)
            getattr(transformers, loaded.architectures[0]).from_pretrained(config_file.parent)
