"""NumPy forward passes over a *hub folder's* own weights (transformers names, ``[out, in]`` Linear
layout) and its ``config.json``, computing what transformers 5 computes for that architecture: the
torch-free engine of ``verify`` (``--engine numpy``).

It is independent of the TF-side reference (:mod:`ckptkit.converters.reference`): it reads the
output's names and config.json (``hidden_act`` and every option as transformers interprets them),
never the TF names or the plan, so a wrong name mapping or a wrong config value shows up as an
output difference. Its faithfulness to transformers is what the tests check, architecture by
architecture and head by head, against the real transformers models.

Every engine has the signature ``forward(get, names, config, class_name, inputs) -> outputs``:

- ``get(name)``: the stored tensor ``name`` of model.safetensors in float64, read when the forward
  reaches it; ``get.stored(name)`` gives it in its stored dtype (for chunked use of big matrices);
- ``names``: every tensor name in the folder (decides which heads run);
- ``config``: config.json; ``class_name``: ``architectures[0]`` (e.g. ``BertForPreTraining``);
- ``inputs``: ``input_ids``, ``attention_mask``, and ``token_type_ids`` or ``decoder_input_ids``;
- outputs: the keys verify compares, as for the transformers engine: ``last_hidden_state``,
  ``pooler_output``, ``mlm_logits``, ``nsp_logits``, ``sop_logits``, ``logits``, ``disc_logits``,
  ``start_logits``/``end_logits``, ``encoder_last_hidden_state`` (zero at padding).
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping

import numpy as np

__all__ = ["ENGINES", "hub_forward", "supports"]

HubGetter = Callable[[str], np.ndarray]

# config.json model_type -> "module:function" of its engine
ENGINES: dict[str, str] = {
    "mobilebert": "mobilebert:mobilebert_forward",
    "bigbird_pegasus": "pegasus:pegasus_forward",
}
ENGINES.update(dict.fromkeys(("bert", "electra", "big_bird", "albert"), "bert_like:bert_like_forward"))


def supports(config: Mapping) -> bool:
    """Whether a NumPy engine exists for this config's ``model_type``."""
    return str(config.get("model_type")) in ENGINES


def hub_forward(get: HubGetter, names: set[str], config: Mapping, class_name: str,
                inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of the hub model described by ``config`` (see the module docstring)."""
    module, _, function = ENGINES[str(config.get("model_type"))].partition(":")
    return getattr(importlib.import_module(f"ckptkit.converters.hub_forward.{module}"), function)(
        get, names, config, class_name, inputs)
