"""``verify``: compare every converted tensor with its source through the plan, then compute the hub
folder's outputs (by default ckptkit's torch-free NumPy engine over the folder's own names and config.json,
:mod:`ckptkit.converters.verify_engine`; or the transformers model) and compare them with an independent
NumPy forward pass over the TF variables (:mod:`ckptkit.converters.reference`, under the source's own
config: :mod:`ckptkit.converters.reference_config`), and check that the output's tokenizer gives the
source's ids (:mod:`ckptkit.converters.tokenizer_check`).

Tensor comparison is bitwise when dtypes agree (the plan's ops are exact), in bands straight against a
safetensors file (:func:`~ckptkit.converters.compare.tensor_holds`); after a cast it is by the dtype's
tolerance. The forward comparison uses the TF weights as stored on the TF side (after any cast), so a correct
conversion agrees to float32 rounding: 1e-5, relative to an output's largest magnitude when that passes 1
(:func:`forward_tolerance`). Weights are read as each forward reaches them, and the two forwards run side by
side.
"""

from __future__ import annotations

import contextlib
import importlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ContextManager, Mapping

import numpy as np

from ckptkit.converters.families import detect_family, get_family
from ckptkit.converters.families.base import Family, Part, plan_hf_to_tf, plan_tf_to_hf
from ckptkit.converters.source import Source, open_source
from ckptkit.converters.compare import (
    FORWARD_TOLERANCE, TOLERANCES, compare_arrays as _compare, forward_tolerance, one_blas_thread as _one_blas_thread,
    tensor_holds,
)
from ckptkit.converters.model_pages import layer_by_layer
from ckptkit.converters.plan import Plan, PlannedTensor, materialize, planned_view
from ckptkit.converters.reference import fixed_inputs, float64_getter
from ckptkit.converters.reference_config import reference_config, source_tf_config
from ckptkit.converters.reference_pegasus import encoder_decoder_inputs, encoder_decoder_outputs
from ckptkit.converters.tensors import Checkpoint, dtype_by_name
from ckptkit.converters.tokenizer_check import check_tokenizers, merge_checks
from ckptkit.converters.verify_engine import DEFAULT_ENGINE, MissingWeight, check_engine, engine_outputs
from ckptkit.errors import CkptkitError, UsageError, VerificationError

__all__ = ["VerifyReport", "verify_conversion", "TOLERANCES", "FORWARD_TOLERANCE", "forward_tolerance"]

@dataclass
class VerifyReport:
    """Per-tensor and per-output comparisons; ``passed`` when every row passed."""

    tensors: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    compared: str = ""
    tokenizer: dict | None = None  # the tokenizer row (ckptkit.converters.tokenizer_check.compare_sides)
    engine: str = ""  # what computed the hub side's outputs: "numpy" or "transformers" ("" without a forward)

    @property
    def passed(self) -> bool:
        return not self.problems and all(r["ok"] for r in self.tensors + self.outputs + [self.tokenizer or {"ok": 1}])

    @property
    def max_abs_diff(self) -> float:
        return max((r["max_abs_diff"] for r in self.outputs), default=0.0)

    def summary(self) -> dict:
        return {"passed": self.passed, "tensors_checked": len(self.tensors),
                "tensors_bitwise": sum(1 for r in self.tensors if r["max_abs_diff"] == 0.0),
                "max_abs_diff": self.max_abs_diff, "compared": self.compared, "problems": self.problems[:20],
                "tokenizer": self.tokenizer, **({"engine": self.engine} if self.engine else {})}

    def to_json(self) -> dict:
        return {**self.summary(), "tensors": self.tensors, "outputs": self.outputs}


def _fits(plan: Plan, dst: Checkpoint) -> bool:
    return all(t.name in dst and tuple(dst[t.name].shape) == tuple(t.shape) for t in plan.outputs)


def _part_plan(family: Family, src: Checkpoint, config: Mapping, cls: str | None, dst: Checkpoint,
               part: str | None) -> tuple[Plan, Part | None]:
    """The tf->hf plan; for multi-part checkpoints, of the named part or the part whose shapes ``dst`` has."""
    if not family.split:
        return plan_tf_to_hf(family, src, hf_config=config, model_class=cls, allow_unused=True), None
    parts = family.split({n: t.shape for n, t in src.items() if t.role == "weight"})
    candidates = [p for p in parts if part is None or p.name == part]
    if not candidates:
        raise UsageError(f"the checkpoint holds no {part}", path=src.path,
                         hint="one of " + ", ".join(p.name for p in parts))
    plans = []
    for candidate in candidates:
        try:
            plan = plan_tf_to_hf(family, src, hf_config=config, model_class=cls, allow_unused=True,
                                 tf_rename=candidate.rename, exclude=candidate.exclude)
        except CkptkitError:
            continue
        if _fits(plan, dst):
            return plan, candidate
        plans.append((plan, candidate))
    if not plans:
        raise UsageError(f"no part of the checkpoint fits {class_or(cls)}", path=dst.path,
                         hint="pass the part (discriminator / generator)")
    return plans[0]


def class_or(cls: str | None) -> str:
    return cls or "the output"


def _plan_for(src: Checkpoint, dst: Checkpoint, family: Family | None, part: str | None = None
              ) -> tuple[Plan, Family | None, str, Part | None]:
    if src.format == "tf" and dst.format == "hub":
        config = dst.extras["config"]
        family = family or get_family(detect_family(dst, model_type=config.get("model_type")) or "bert")
        cls = (config.get("architectures") or [None])[0]
        plan, chosen = _part_plan(family, src, config, cls, dst, part)
        return plan, family, "tf->hf", chosen
    if src.format == "hub" and dst.format == "tf":
        config = src.extras["config"]
        family = family or get_family(detect_family(src, model_type=config.get("model_type")) or "bert")
        chosen = next((p for p in family.hf_parts if p.name == part), None)
        # the output's own scope when it is a single part (BigBird-Pegasus written with --scope) is tried too
        scoped = family.split({n: t.shape for n, t in dst.items() if t.role == "weight"}) if family.split else ()
        renames = [chosen.unrename if chosen else None] + [p.unrename for p in scoped[:1] if len(scoped) == 1]
        plans = [plan_hf_to_tf(family, src, hf_config=config, allow_unused=True, tf_rename=rename,
                               transform_overrides=layout)
                 for rename in dict.fromkeys(renames) for layout in (list(family.tf_layouts.values()) or [None])]
        return next((p for p in plans if _fits(p, dst)), plans[0]), family, "hf->tf", chosen
    if src.format == "tf" or dst.format == "tf":
        raise UsageError(f"cannot verify {src.format} -> {dst.format}",
                         hint="verify a TF checkpoint against a hub folder, or two PyTorch-world checkpoints")
    outputs = [PlannedTensor(n, (n,), (), t.dtype, t.shape) for n, t in src.items() if n in dst]
    return Plan(outputs, [], {}), family, "weights", None


def _compare_tensors(plan: Plan, src: Checkpoint, dst: Checkpoint, report: VerifyReport, *,
                     check_extra: bool = True) -> None:
    planned_names = {t.name for t in plan.outputs}
    for planned in plan.outputs:
        if planned.name not in dst:
            report.problems.append(f"{planned.name}: missing from the output")
            continue
        inputs, target = [src[n].read() for n in planned.inputs], dst[planned.name]
        if tensor_holds(target, planned_view(planned, inputs)):  # same bytes, compared in bands: no copies
            diff, ok = 0.0, True
        else:
            diff, ok = _compare(materialize(planned, inputs), target.read(), target.dtype.name)
        report.tensors.append({"name": planned.name, "dtype": target.dtype.name, "shape": list(target.shape),
                               "max_abs_diff": diff, "ok": ok})
    if not check_extra:  # a part of a joined TF checkpoint: the other parts' variables are expected
        return
    extra = sorted(n for n, t in dst.items() if n not in planned_names and t.role == "weight")
    report.problems.extend(f"{n}: in the output but not produced from the source" for n in extra)


def _hf_outputs(folder: str, class_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch
    import transformers

    model_cls = getattr(transformers, class_name)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = model_cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    feed = {k: torch.from_numpy(v) for k, v in inputs.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2x16 batch: more threads only wait on each other (see _one_blas_thread)
    try:
        with torch.no_grad(), layer_by_layer(model, folder):  # about one layer's weights resident at a time
            out = model(**feed, output_hidden_states=True)
    finally:
        torch.set_num_threads(threads)
    return _normalise_outputs(out, class_name) | encoder_decoder_outputs(out, inputs)


# HF output attribute -> reference key; "logits" depends on the class (suffix table below).
_ATTRS = {"prediction_logits": "mlm_logits", "seq_relationship_logits": "nsp_logits", "sop_logits": "sop_logits",
          "start_logits": "start_logits", "end_logits": "end_logits", "pooler_output": "pooler_output",
          "last_hidden_state": "last_hidden_state"}
_LOGITS_BY_SUFFIX = {"ForMaskedLM": "mlm_logits", "ForNextSentencePrediction": "nsp_logits",
                     "ForSequenceClassification": "logits", "ForPreTraining": "disc_logits"}


def _normalise_outputs(out, class_name: str) -> dict[str, np.ndarray]:
    result = {key: getattr(out, attr).numpy() for attr, key in _ATTRS.items()
              if getattr(out, attr, None) is not None}
    if getattr(out, "hidden_states", None) is not None:
        result["last_hidden_state"] = out.hidden_states[-1].numpy()
    logits = getattr(out, "logits", None)
    if logits is not None:
        key = next((k for suffix, k in _LOGITS_BY_SUFFIX.items() if class_name.endswith(suffix)), "logits")
        result[key] = logits.numpy()
    return result


def _part_view(tf_side: Checkpoint, part: Part | None) -> dict[str, str]:
    """Canonical TF name -> stored TF name for the part the reference runs (identity without parts)."""
    if part is None:
        return {n: n for n in tf_side}
    return {(part.rename or (lambda n: n))(n): n for n in tf_side if not (part.exclude and part.exclude(n))}


def _reference_outputs(family: Family, tf_side: Checkpoint, tf_config: Mapping, inputs, *,
                       weights_dtype: str | None = None, view: Mapping[str, str] | None = None
                       ) -> dict[str, np.ndarray]:
    """The family's NumPy forward over the TF variables, rounded first to ``weights_dtype`` if given
    (the dtype the converted model stores), so both sides use identical weights."""
    module, _, function = family.reference.partition(":")
    forward = getattr(importlib.import_module(module), function)
    rounding = dtype_by_name(weights_dtype).numpy if weights_dtype else None
    view = view if view is not None else {n: n for n in tf_side}

    def stored(name: str) -> np.ndarray:
        """A variable as stored (after the rounding), read when the forward reaches it."""
        value = tf_side[view[name]].read()
        return value.astype(rounding) if rounding is not None and value.dtype.kind == "f" else value

    get = float64_getter(stored)
    with _one_blas_thread():
        return forward(get, set(view), tf_config, inputs)


def _compare_forward(family: Family, tf_side: Checkpoint, hf_side: Checkpoint, hf_folder: str, hf_config: Mapping,
                     report: VerifyReport, view: Mapping[str, str] | None = None, engine: str = DEFAULT_ENGINE,
                     tf_config: dict | None = None) -> None:
    tf_config = tf_config if tf_config is not None else family.config_to_tf(hf_config)
    tf_config.setdefault("num_hidden_layers", hf_config.get("num_hidden_layers"))
    inputs = fixed_inputs(vocab_size=int(hf_config["vocab_size"]),
                          max_positions=int(hf_config.get("max_position_embeddings", 16)),
                          type_vocab_size=int(hf_config.get("type_vocab_size", 1)))
    inputs = encoder_decoder_inputs(inputs, hf_config)
    class_name = (hf_config.get("architectures") or ["BertModel"])[0]
    # the two forward passes run side by side, each on one core (their matrices are too thin for BLAS threads)
    with _one_blas_thread(), ThreadPoolExecutor(1, thread_name_prefix="ckptkit-reference") as pool:
        reference = pool.submit(_reference_outputs, family, tf_side, tf_config, inputs,
                                weights_dtype=hf_config.get("dtype"), view=view)
        try:
            actual, how = engine_outputs(engine, hf_side, hf_folder, hf_config, class_name, inputs,
                                         transformers_outputs=_hf_outputs)
        except MissingWeight as missing:
            reference.cancel()
            report.problems.append(f"{missing.args[0]}: missing from the output ({class_name} needs it)")
            return
        expected = reference.result()
    report.engine = "transformers" if how.startswith("transformers") else "numpy"
    rows = _ROWS[family.reference_rows](inputs["attention_mask"])
    for key in sorted(set(expected) & set(actual)):
        diff = float(np.max(np.abs(expected[key][rows] - actual[key][rows].astype(np.float64)), initial=0.0))
        tolerance = forward_tolerance(expected[key][rows])
        report.outputs.append({"output": key, "shape": list(actual[key].shape), "max_abs_diff": diff,
                               "tolerance": tolerance, "ok": diff <= tolerance})
    if not report.outputs:
        report.problems.append("the model produced no output the reference could compare")
    report.compared = (f"{', '.join(r['output'] for r in report.outputs)} of {class_name} ({how}) "
                       f"vs a NumPy float64 forward pass over the TF variables, on a fixed padded batch "
                       f"of shape {list(inputs['input_ids'].shape)}{_ROW_NOTES[family.reference_rows]}")


# Family.reference_rows -> the batch rows compared (from the attention mask), and what the report says about it
_ROWS = {"all": lambda mask: slice(None), "unpadded": lambda mask: mask.min(axis=1) == 1,
         "encoder_unpadded": lambda mask: slice(None)}
_ROW_NOTES = {"all": "", "unpadded": " (rows without padding: the TF code masks padded keys differently)",
              "encoder_unpadded": " (encoder states at real tokens only: the official full attention also masks "
                                  "padded query rows)"}


@dataclass(frozen=True)
class _ConversionFacts:
    """What the conversion said: whether the output should have a tokenizer, the vocab files it was told to
    use, and the TF config it read (None: the reference reads the source's config file itself)."""

    expected: bool = True
    vocab: str | None = None
    spm: str | None = None
    tf_config: Mapping | None = None


def verify_conversion(source: str | Source, output: str | Source, *, family: str | None = None, forward: bool = True,
                      raise_on_mismatch: bool = False, part: str | None = None, tokenizer: bool = True,
                      vocab: str | None = None, spm: str | None = None, engine: str = DEFAULT_ENGINE,
                      tf_config: Mapping | None = None) -> VerifyReport:
    """Check ``output`` against ``source``: every tensor through the plan, a forward pass, and the tokenizer.

    Args:
        source: the original checkpoint (a path or an opened :class:`~ckptkit.converters.source.Source`).
        output: what ``convert`` wrote from it (a hub folder or TF checkpoint; a path or a Source).
        family: override family detection.
        forward: also run the model and compare its outputs with the TF-side reference.
        raise_on_mismatch: raise :class:`VerificationError` instead of returning a failed report.
        part: for checkpoints holding several models (ELECTRA), which one ``output`` is
            (``discriminator`` / ``generator``); found from the shapes when None.
        tokenizer: False when ``output`` was made with ``--no-tokenizer`` (it may lack the source's
            tokenizer; one it has is still compared). A hub output whose ``ckptkit.json`` records
            ``--no-tokenizer`` counts as such.
        vocab, spm: the vocab files the conversion was told to use (``--vocab`` / ``--spm``); the
            source's tokenizer is built from them instead of the files it carries.
        engine: what computes the hub folder's outputs: ``"numpy"`` (ckptkit's torch-free engine over the
            folder's weights and config.json; falls back to transformers for an architecture it lacks) or
            ``"transformers"`` (the model class itself; needs ``ckptkit[verify]``).
        tf_config: the TF config the conversion read (``convert --verify`` passes its own); by default the
            source's config file. The reference runs under its activation and head count
            (:mod:`ckptkit.converters.reference_config`).

    Example:
        >>> report = verify_conversion("examples/tiny-bert", "out/tiny-bert")  # doctest: +SKIP
        >>> report.passed, report.tokenizer["status"]  # doctest: +SKIP
        (True, 'identical')
    """
    check_engine(engine)
    with _opened(source) as source, _opened(output) as output:
        in_source = None if part else source.part_folders
        parts = in_source and source or (None if part else output.part_folders and output)
        checks = _ConversionFacts(tokenizer, vocab, spm, tf_config)
        if parts:
            joined = output if in_source else source
            report = _verify_parts(parts, joined, joined_is_output=bool(in_source), family=family,
                                   forward=forward, checks=checks, engine=engine)
        else:
            report = _verify_one(source, output, family=family, forward=forward, part=part, checks=checks,
                                 engine=engine)
    if raise_on_mismatch and not report.passed:
        _raise_mismatch(report, output.path)
    return report


def _opened(location: str | Source) -> ContextManager[Source]:
    """A Source the caller gave stays open (theirs to close); a path is opened here."""
    return contextlib.nullcontext(location) if isinstance(location, Source) else open_source(location)


def _raise_mismatch(report: VerifyReport, output: str) -> None:
    bad = [r["name"] for r in report.tensors if not r["ok"]] + [r["output"] for r in report.outputs if not r["ok"]]
    if report.tokenizer and not report.tokenizer["ok"]:
        bad.append(f"tokenizer: {report.tokenizer['message']}")
    first = (report.problems + bad)[0]
    raise VerificationError(f"verification failed: {len(report.problems) + len(bad)} mismatches, first: {first}",
                            path=output, hint="run `ckptkit verify` for the full table")


def _verify_parts(parts: Source, joined: Source, *, joined_is_output: bool,
                  family: str | None, forward: bool, checks: _ConversionFacts, engine: str = DEFAULT_ENGINE
                  ) -> VerifyReport:
    """A folder of part folders (ELECTRA's discriminator/ and generator/) against the one TF checkpoint
    they came from or were joined into: each part through its own plan and forward pass, then every
    TF weight accounted for by some part. Rows are prefixed with the part's name."""
    report = VerifyReport()
    covered: set[str] = set()
    tokenizers: dict[str, dict] = {}
    for name in parts.part_folders:
        pair = (parts.part(name), joined) if joined_is_output else (joined, parts.part(name))
        one = _verify_one(*pair, family=family, forward=forward, part=name, checks=checks, engine=engine)
        report.engine = report.engine or one.engine
        tokenizers[name] = one.tokenizer
        covered.update(r["name"] for r in one.tensors)
        report.tensors += [{**r, "name": f"{name}: {r['name']}"} for r in one.tensors]
        report.outputs += [{**r, "output": f"{name}: {r['output']}"} for r in one.outputs]
        report.problems += [f"{name}: {p}" for p in one.problems]
        if one.compared:
            report.compared += ("; " if report.compared else "") + f"{name}: {one.compared}"
    if joined_is_output:  # the joined TF checkpoint must hold nothing the parts did not produce
        extra = sorted(n for n, t in joined.checkpoint.items() if t.role == "weight" and n not in covered)
        report.problems.extend(f"{n}: in the output but not produced from any part" for n in extra)
    report.tokenizer = merge_checks(tokenizers)
    return report


def _verify_one(source: Source, output: Source, *, family: str | None, forward: bool, part: str | None,
                checks: _ConversionFacts = _ConversionFacts(), engine: str = DEFAULT_ENGINE) -> VerifyReport:
    report = VerifyReport()
    src, dst = source.checkpoint, output.checkpoint
    plan, fam, direction, chosen = _plan_for(src, dst, get_family(family) if family else None, part)
    _compare_tensors(plan, src, dst, report, check_extra=not (direction == "hf->tf" and part))
    report.tokenizer = check_tokenizers(source.path, src, output.path, dst, spm_names=fam.spm_names if fam else (),
                                        expected=checks.expected, vocab=checks.vocab, spm=checks.spm,
                                        kind=fam.tokenizer_kind if fam else None, auto=engine == "transformers")
    report.compared = "tensors only"
    if forward and fam is not None and fam.reference and direction != "weights":
        hf_side, tf_side = (dst, src) if direction == "tf->hf" else (src, dst)
        hf_folder = hf_side.extras.get("folder") or output.path
        source_config = (checks.tf_config or source_tf_config(source, fam)) if direction == "tf->hf" else None
        tf_config = reference_config(fam, hf_side.extras["config"], source_config)
        _compare_forward(fam, tf_side, hf_side, hf_folder, hf_side.extras["config"], report,
                         view=_part_view(tf_side, chosen), engine=engine, tf_config=tf_config)
    return report
