"""``--approximate-gelu``: write a model whose activation the TF code lacks with the other gelu form, and
measure what that changes.

Google's BERT and BigBird only know the tanh gelu (transformers' ``gelu_new``); a model trained with the
exact erf gelu (transformers' ``gelu``, e.g. monologg/kobert) has no exact TF equivalent, so hf -> tf1
refuses it unless asked. When asked, the TF config gets the tanh form and the conversion reports the max
absolute difference of the model's first output (its logits, or the last hidden state of a base model)
between the erf model and the tanh model, both run by transformers on one fixed input. ELECTRA is the
mirror case (its TF gelu is the erf form). Each family lists what it may approximate in
:attr:`~ckptkit.converters.families.base.Family.approximate_acts`.
"""

from __future__ import annotations

import contextlib
from typing import Mapping

import numpy as np

from ckptkit.converters.families.base import Family
from ckptkit.converters.tensors import ROLE_WEIGHT, Checkpoint
from ckptkit.errors import PlanError

__all__ = ["approximate_activation", "max_output_difference", "FIXED_INPUT"]

FIXED_INPUT = (2, 16)  # batch, tokens (fewer when the model has fewer positions)


def approximate_activation(family: Family, hf_config: Mapping, source: Checkpoint, *, model_class: str,
                           enabled: bool) -> tuple[dict, dict | None]:
    """The HF config to translate to TF, and a report when the activation was approximated.

    Returns ``(hf_config, None)`` unchanged unless ``enabled`` and the family lists the config's
    ``hidden_act`` (its effective value, transformers' default when absent) in ``approximate_acts``.
    The report holds ``hidden_act`` (the model's), ``computed_as`` (transformers' name of what the
    TF config computes), ``tf_hidden_act`` (written) and ``max_abs_logit_diff``.
    """
    if not enabled:
        return dict(hf_config), None
    act = _effective_act(hf_config, model_class)
    replacement = family.approximate_acts.get(act)
    if replacement is None:
        return dict(hf_config), None
    changed = {**hf_config, "hidden_act": replacement}
    diff = max_output_difference(source, hf_config, changed, model_class=model_class, tied=family.tied)
    batch, tokens = _input_shape(hf_config)
    report = {"hidden_act": act, "computed_as": replacement,
              "tf_hidden_act": family.config_to_tf(changed).get("hidden_act"), "max_abs_logit_diff": diff,
              "input": f"{batch}x{tokens} fixed token ids, float32"}
    return changed, report


def describe(report: Mapping) -> str:
    """One line for the summary: what was written and what it changes."""
    return (f"--approximate-gelu: hidden_act {report['hidden_act']!r} written as TF {report['tf_hidden_act']!r} "
            f"(transformers' {report['computed_as']!r}); max |logit diff| {report['max_abs_logit_diff']:.3e} "
            f"on {report['input']}")


def _model_class(model_class: str):
    import transformers

    return getattr(transformers, model_class)


def _effective_act(hf_config: Mapping, model_class: str) -> str:
    if "hidden_act" in hf_config:
        return hf_config["hidden_act"]
    return _model_class(model_class).config_class().hidden_act


def _input_shape(hf_config: Mapping) -> tuple[int, int]:
    batch, tokens = FIXED_INPUT
    return batch, min(tokens, int(hf_config.get("max_position_embeddings", tokens)))


def _state_dict(source: Checkpoint) -> dict:
    import torch

    return {name: torch.from_numpy(np.array(t.read(), dtype=np.float32 if t.dtype.is_float else None))
            for name, t in source.items() if t.role == ROLE_WEIGHT}


def _run(cls, config: Mapping, state: dict, tied: Mapping[str, str], inputs: dict):
    import torch

    model = cls(cls.config_class.from_dict(dict(config)))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in tied and not k.endswith(("position_ids", "token_type_ids"))]
    if missing:
        raise PlanError(f"cannot measure --approximate-gelu: the weights lack {missing[0]!r}"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""),
                        hint="is this a complete hub folder?")
    model.eval()
    with torch.no_grad():
        return model(**inputs)[0].float()


def max_output_difference(source: Checkpoint, config: Mapping, changed: Mapping, *, model_class: str,
                          tied: Mapping[str, str] | None = None) -> float:
    """Max |difference| of ``model_class``'s first output under ``config`` and ``changed`` on a fixed input."""
    import torch
    import transformers

    cls = _model_class(model_class)
    batch, tokens = _input_shape(config)
    ids = (torch.arange(batch * tokens).reshape(batch, tokens) * 7919 + 101) % int(config["vocab_size"])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    state = _state_dict(source)
    with _quiet(transformers):
        first, second = (_run(cls, c, state, tied or {}, inputs) for c in (config, changed))
    return float((first - second).abs().max())


@contextlib.contextmanager
def _quiet(transformers):
    """transformers' warnings (BigBird switching to full attention on short inputs) stay out of the output."""
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
