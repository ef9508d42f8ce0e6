"""The one output writer: a :class:`Prepared` conversion (one folder, part subfolders, or part folders
joined into one TF checkpoint) streamed into a staged destination, finished, verified, recorded."""

from __future__ import annotations

import datetime
import os
import shutil
import time

import numpy as np

from ckptkit.converters.config_io import write_json
from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.convert.prepared import ConversionResult, Prepared
from ckptkit.converters.plan import execute
from ckptkit.converters.sinks import SINKS
from ckptkit.converters.source import Source
from ckptkit.output.staging import staged_folder
from ckptkit.errors import UsageError
from ckptkit.tokenizers.companions import tf_tokenizer_copies, write_planned_tokenizer

__all__ = ["write_conversion", "check_sinks", "planned_files"]

_SINK_FOR_TARGET = {"hf": None, "tf1": "tf1", "safetensors": "safetensors", "pytorch": "pytorch"}


def _sink_name(prepared: Prepared, options: ConversionOptions) -> str:
    name = _SINK_FOR_TARGET[prepared.target] or options.weights_format
    if name not in SINKS:
        raise UsageError(f"unknown weights format {name!r}", hint="safetensors or pytorch")
    return name


def check_sinks(prepared: Prepared, options: ConversionOptions) -> None:
    """The sink of every output folder, checked before anything is written (real and dry runs alike)."""
    for each in prepared.outputs:
        _sink_name(each, options)


# ------------------------------------------------------------------ finishers: the files besides the weights


def _finish_hf(prepared: Prepared, folder: str, options: ConversionOptions) -> dict | None:
    tokenizer = write_planned_tokenizer(prepared.tokenizer, folder,
                                        model_max_length=int(prepared.hf_config.get("max_position_embeddings", 512)))
    write_json(os.path.join(folder, "config.json"), prepared.hf_config)
    return tokenizer


def _tf_copies(prepared: Prepared, options: ConversionOptions) -> dict[str, str]:
    return {} if options.no_tokenizer else tf_tokenizer_copies(prepared.vocab, prepared.spm)


def _finish_tf1(prepared: Prepared, folder: str, options: ConversionOptions) -> None:
    write_json(os.path.join(folder, prepared.family.tf_config_name), prepared.tf_config)
    for name, path in _tf_copies(prepared, options).items():
        shutil.copyfile(path, os.path.join(folder, name))


def _copied(prepared: Prepared, options: ConversionOptions) -> list[str]:
    """The hub folder's other files that a safetensors/pytorch output keeps (tokenizer files unless
    ``--no-tokenizer``)."""
    from ckptkit.tokenizers.files import tokenizer_files

    if not options.no_tokenizer or not prepared.copy_files:
        return list(prepared.copy_files)
    skipped = set(tokenizer_files(os.path.dirname(prepared.copy_files[0])))
    return [p for p in prepared.copy_files if os.path.basename(p) not in skipped]


def _finish_weights(prepared: Prepared, folder: str, options: ConversionOptions) -> None:
    for path in _copied(prepared, options):
        shutil.copyfile(path, os.path.join(folder, os.path.basename(path)))
    if prepared.hf_config is not None:
        write_json(os.path.join(folder, "config.json"), prepared.hf_config)


_FINISHERS = {"hf": _finish_hf, "tf1": _finish_tf1, "safetensors": _finish_weights, "pytorch": _finish_weights}


def planned_files(prepared: Prepared, options: ConversionOptions) -> list[str]:
    """The files besides the weights that the finisher of ``prepared.target`` writes."""
    if prepared.target == "hf":
        return ["config.json", *prepared.tokenizer.files, "README.md", "ckptkit.json"]
    if prepared.target == "tf1":
        return [prepared.family.tf_config_name, "checkpoint", *_tf_copies(prepared, options)]
    return [os.path.basename(p) for p in _copied(prepared, options)] + (["config.json"] if prepared.hf_config else [])


# ------------------------------------------------------------------ record, card, verification


def _record(prepared: Prepared, source: Source, options: ConversionOptions, verification: dict | None) -> dict:
    from ckptkit import __version__

    checkpoint = source.checkpoint
    cls = prepared.plan.info.get("model_class")
    family = prepared.family
    pipeline = next((c.pipeline_tag for c in family.classes if c.name == cls), None) if family else None
    return {
        "ckptkit_version": __version__, "kind": "conversion", "command": options.command or "",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"family": family.name if family else None, "model_class": cls, "pipeline_tag": pipeline,
                  "num_parameters": int(sum(np.prod(t.shape, dtype=np.int64) for t in prepared.plan.outputs))},
        "source": {"path": _recorded_path(source), "format": checkpoint.format,
                   "family": family.name if family else None, "global_step": checkpoint.global_step,
                   "base_model": None},
        "verification": verification,
        "card": {k: v for k, v in options.card.items() if v},
        **({"no_tokenizer": True} if options.no_tokenizer else {}),  # verify then accepts a folder without one
    }


def _recorded_path(source: Source) -> str:
    """The URL of a remote source (not its cache mirror), else the checkpoint's absolute path."""
    return source.location if "://" in source.location and not source.location.startswith("file://") \
        else os.path.abspath(source.checkpoint.path)


def _write_cards(destination: str, prepared: Prepared, options: ConversionOptions) -> None:
    """Model cards are written once the folder has its final name (the card names the folder)."""
    from ckptkit.output.card import write_model_card

    for each in prepared.outputs:
        if each.target == "hf":
            write_model_card(os.path.join(destination, each.subfolder),
                             **{k: v for k, v in options.card.items() if v})


def _verify(prepared: Prepared, source: Source, folder: str, options: ConversionOptions) -> dict:
    from ckptkit.converters.verify import verify_conversion

    # TF -> hub folder: the tokenizer is checked against the vocab files this conversion found (also those
    # only its --config names); the other way, against what the hub folder's tokenizer gives
    vocab, spm = (prepared.vocab, prepared.spm) if prepared.target == "hf" else (source.vocab, source.spm)
    report = verify_conversion(source.path, folder, family=prepared.family.name if prepared.family else None,
                               part=prepared.part.name if prepared.part else None, raise_on_mismatch=True,
                               tokenizer=not options.no_tokenizer, vocab=vocab, spm=spm, engine=options.verify_engine,
                               tf_config=prepared.tf_config if prepared.target == "hf" else None)
    return {**report.summary(), "outputs": report.outputs}  # per-output max abs diff: the card's verify table


# ------------------------------------------------------------------ the writer


def _write_one(prepared: Prepared, source: Source, folder: str, options: ConversionOptions
               ) -> tuple[dict | None, dict | None, dict[str, float]]:
    """Stream one prepared plan into ``folder`` (the staged destination or a part's subfolder).

    Returns the tokenizer facts, the verification summary and the seconds spent writing the tensors
    (``"write"``) and verifying (``"verify"``, which includes importing torch and transformers)."""
    os.makedirs(folder, exist_ok=True)
    sink = SINKS[_sink_name(prepared, options)](folder, max_shard_size=options.max_shard_size)
    if prepared.extra_tensors:
        sink.extra_tensors = prepared.extra_tensors
    started = time.perf_counter()
    execute(prepared.plan, prepared.tensors if prepared.tensors is not None else source.checkpoint, sink)
    timings = {"write": time.perf_counter() - started}
    tokenizer = _FINISHERS[prepared.target](prepared, folder, options)
    verification = None
    if options.verify:
        started = time.perf_counter()
        verification = _verify(prepared, source, folder, options)
        timings["verify"] = time.perf_counter() - started
    if prepared.target == "hf":
        from ckptkit.output.record import write_record

        write_record(folder, _record(prepared, source, options, verification))
    return tokenizer, verification, timings


def write_conversion(prepared: Prepared, source: Source, destination: str, *, options: ConversionOptions,
                     started: float) -> ConversionResult:
    """Write ``prepared`` (every output folder of it) into ``destination`` atomically; cards come last."""
    outputs = prepared.outputs
    with staged_folder(destination, overwrite=options.overwrite, sources=source.inputs) as folder:
        results = [_write_one(each, source, os.path.join(folder, each.subfolder), options) for each in outputs]
        files = sorted(os.path.relpath(os.path.join(root, name), folder)
                       for root, _, names in os.walk(folder) for name in names)
    _write_cards(destination, prepared, options)
    files = sorted({*files, *(os.path.join(p.subfolder, "README.md") for p in outputs if p.target == "hf")})
    tokenizer, verification, _ = results[0]
    if prepared.parts:
        tokenizer = {p.subfolder: t for p, (t, _, _) in zip(prepared.parts, results)}
        verification = {p.subfolder: v for p, (_, v, _) in zip(prepared.parts, results)} if options.verify else None
    timings = {key: sum(r[2][key] for r in results) for key in ("write", "verify") if key in results[0][2]}
    return ConversionResult(os.path.abspath(destination), prepared.plan, files, time.perf_counter() - started,
                            hf_config=prepared.hf_config or (prepared.parts[0].hf_config if prepared.parts else None),
                            tokenizer=tokenizer, verification=verification, timings=timings)
