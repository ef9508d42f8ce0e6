"""Tiny random hub folders made by transformers itself (``save_pretrained``), with every parameter and buffer
drawn away from its initial value (norm weights near 1, biases and ``final_logits_bias`` non-zero), and a getter
over their model.safetensors as verify's numpy engine receives it.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

import numpy as np

__all__ = ["random_hub_folder", "hub_getter", "engine_outputs"]


def random_hub_folder(class_name: str, config: dict, folder: str, *, seed: int = 0,
                      buffers: tuple[str, ...] = ("final_logits_bias",), scale: dict[str, float] | None = None) -> str:
    """``transformers.<class_name>`` built from ``config`` (the model_type's config class), its weights drawn
    with ``seed`` (matrices ~ N(0, 1/fan_in), embedding tables ~ N(0, 1), norm weights ~ 1 + N(0, 0.2), other
    vectors ~ N(0, 0.1)) and the named ``buffers`` too, every parameter whose name contains a key of ``scale``
    multiplied by its value, saved to ``folder``."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config_class = transformers.AutoConfig.for_model(config["model_type"]).__class__
    model = getattr(transformers, class_name)(config_class(**config)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if p.ndim == 2 and "embed" in name or name.endswith("shared.weight"):
                p.copy_(noise)
            elif p.ndim == 2:
                p.copy_(noise / p.shape[1] ** 0.5)
            elif "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)
            p.mul_(next((factor for part, factor in (scale or {}).items() if part in name), 1.0))
        for name, b in model.named_buffers():
            if name.split(".")[-1] in buffers:
                b.copy_(torch.randn(b.shape, generator=generator))
    model.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def hub_getter(folder: str) -> Iterator[tuple]:
    """(get, names, config) over ``folder``: ``get(name)`` in float64 (each name read so is listed in
    ``get.seen``), ``get.stored(name)`` as stored."""
    from safetensors import safe_open

    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with safe_open(os.path.join(folder, "model.safetensors"), "np") as tensors:
        def stored(name: str) -> np.ndarray:
            return tensors.get_tensor(name)

        def get(name: str) -> np.ndarray:
            get.seen.append(name)
            return np.asarray(stored(name), dtype=np.float64)

        get.stored, get.seen = stored, []
        yield get, set(tensors.keys()), config


def engine_outputs(folder: str, inputs: dict) -> dict[str, np.ndarray]:
    """The numpy engine's outputs for the hub folder (its config's model_type and ``architectures[0]``)."""
    from ckptkit.converters.hub_forward import hub_forward

    with hub_getter(folder) as (get, names, config):
        return hub_forward(get, names, config, config["architectures"][0], inputs)


def assert_engine_matches_transformers(class_name: str, config: dict, folder: str, inputs: dict) -> None:
    """A random ``class_name`` model saved by transformers into ``folder``: the engine's outputs have exactly the
    keys of verify's transformers path, and each agrees within verify's forward tolerance."""
    from ckptkit.converters.compare import forward_tolerance
    from ckptkit.converters.verify import _hf_outputs

    random_hub_folder(class_name, config, folder)
    expected = _hf_outputs(folder, class_name, inputs)
    actual = engine_outputs(folder, inputs)
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape, key
        diff = float(np.max(np.abs(actual[key] - value.astype(np.float64))))
        assert diff <= forward_tolerance(actual[key]), (key, diff)


def reference_whole_and_chunked(forward, variables: dict, config: dict, inputs: dict, monkeypatch
                                ) -> tuple[dict, dict, set[str]]:
    """A TF-side reference ``forward`` run over whole float64 variables, then with ``get.stored`` offered and
    7-row chunks: (whole outputs, chunked outputs, the names the chunked run read whole through ``get``)."""
    from ckptkit.converters import reference

    whole = forward(lambda n: variables[n].astype(np.float64), set(variables), config, inputs)
    monkeypatch.setattr(reference, "_ROWS_PER_CHUNK", 7)
    seen: set[str] = set()

    def get(name: str) -> np.ndarray:
        seen.add(name)
        return variables[name].astype(np.float64)

    get.stored = variables.__getitem__
    return whole, forward(get, set(variables), config, inputs), seen
