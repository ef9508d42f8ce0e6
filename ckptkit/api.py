"""The Python API: what the ``ckptkit`` commands do, as functions (``ckptkit.convert``, ``ckptkit.verify``, ...).

Each function is a thin edge over the library, like the CLI: its options are keyword-only and are
parsed and checked before anything is written; failures raise a :class:`~ckptkit.errors.CkptkitError`
subclass (the CLI's one-line errors); results are the library's typed results. Heavy libraries
(torch, transformers) are imported only by the functions that need them, when they are called.

Example:
    >>> import tempfile, ckptkit
    >>> out = tempfile.mkdtemp()
    >>> result = ckptkit.convert("examples/tiny-bert", f"{out}/tiny-bert")
    >>> ckptkit.inspect(f"{out}/tiny-bert").family
    'bert'
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ckptkit.converters.convert import ConversionResult
    from ckptkit.converters.inspection import Inspection
    from ckptkit.converters.source import Source
    from ckptkit.converters.tensors import Checkpoint
    from ckptkit.converters.verify import VerifyReport
    from ckptkit.distill.init.report import StudentReport
    from ckptkit.distill.train_report import TrainResult

__all__ = ["convert", "verify", "inspect", "build_student", "distill", "open_checkpoint"]

PathLike = str | os.PathLike


def convert(source: "PathLike | Source", destination: PathLike, *, to: str | None = None, overwrite: bool = False,
            verify: bool = False, **options: Any) -> "ConversionResult":
    """Convert a checkpoint into a new folder, atomically (``ckptkit convert``).

    Args:
        source: a TF v1 checkpoint (directory, prefix or ``.index``), a ``.safetensors`` or PyTorch
            ``.bin`` file or index json, a hub folder, a folder of part folders (ELECTRA), or an open
            :class:`~ckptkit.converters.source.Source`.
        destination: the output folder; it must not exist or be empty unless ``overwrite``.
        to: ``hf`` (a hub folder; the default from TF), ``tf1``, ``safetensors`` or ``pytorch``.
        overwrite: replace a non-empty ``destination`` that ckptkit wrote before.
        verify: check the output against the source (tensors, forward pass, tokenizer) before it is
            moved into place (``verify_engine="transformers"`` to run the forward pass with transformers).
        **options: the other fields of :class:`~ckptkit.converters.convert.ConversionOptions`, the
            ``ckptkit convert`` options by their Python names (``weights_format``, ``dtype``,
            ``max_shard_size``, ``family``, ``config``, ``vocab``, ``spm``, ``no_tokenizer``, ...), and
            the options a family declares, by name (ELECTRA's ``generator_heads``, BigBird's ``tf_layout``).
            Unknown names raise ``TypeError``; bad values a :class:`~ckptkit.errors.UsageError`.

    Returns:
        A :class:`~ckptkit.converters.convert.ConversionResult`: the plan, the files written, the
        tokenizer and the verification.

    Example:
        >>> import tempfile, ckptkit
        >>> out = tempfile.mkdtemp()
        >>> result = ckptkit.convert("examples/tiny-bert", f"{out}/hub", max_shard_size="100KB")
        >>> result.plan.info["family"], [f for f in result.files if f.startswith("model-00001")]
        ('bert', ['model-00001-of-00002.safetensors'])
        >>> back = ckptkit.convert(f"{out}/hub", f"{out}/tf", to="tf1")
        >>> sorted(back.files)[:2]
        ['bert_config.json', 'checkpoint']
    """
    from ckptkit.converters.convert import convert_checkpoint

    return convert_checkpoint(source, os.fspath(destination), to=to, overwrite=overwrite, verify=verify, **options)


def verify(source: PathLike, output: PathLike, *, forward: bool = True, raise_on_mismatch: bool = False,
           engine: str = "numpy", **options: Any) -> "VerifyReport":
    """Check a conversion's output against its source (``ckptkit verify``).

    Args:
        source: the original checkpoint.
        output: what :func:`convert` wrote from it (a hub folder or a TF checkpoint).
        forward: also run both models on a fixed input and compare their outputs.
        raise_on_mismatch: raise :class:`~ckptkit.errors.VerificationError` instead of returning a
            failed report.
        engine: what computes the hub side's outputs: ``"numpy"`` (ckptkit's torch-free engine over the
            folder's weights and config.json) or ``"transformers"`` (the model class; ``ckptkit[verify]``).
        **options: the other options of :func:`~ckptkit.converters.verify.verify_conversion`
            (``family``, ``part``, ``tokenizer``, ``vocab``, ``spm``).

    Returns:
        A :class:`~ckptkit.converters.verify.VerifyReport` (``passed``, per-tensor differences,
        forward-pass differences, the tokenizer check).

    Example:
        >>> import tempfile, ckptkit
        >>> out = tempfile.mkdtemp()
        >>> _ = ckptkit.convert("examples/tiny-bert", f"{out}/hub")
        >>> report = ckptkit.verify("examples/tiny-bert", f"{out}/hub", forward=False)
        >>> report.passed, report.tokenizer["status"]
        (True, 'identical')
    """
    from ckptkit.converters.verify import verify_conversion

    return verify_conversion(os.fspath(source), os.fspath(output), forward=forward,
                             raise_on_mismatch=raise_on_mismatch, engine=engine, **options)


def inspect(location: PathLike, *, check: bool = False) -> "Inspection":
    """What a checkpoint holds, from its metadata (``ckptkit inspect``).

    Args:
        location: any checkpoint :func:`open_checkpoint` reads.
        check: also read every tensor, verifying its checksum where the format has one (TF: CRC32C).

    Returns:
        An :class:`~ckptkit.converters.inspection.Inspection` (format, files, global step, family,
        totals per role, every tensor's name, dtype, shape and role).

    Example:
        >>> import ckptkit
        >>> info = ckptkit.inspect("examples/tiny-bert", check=True)
        >>> info.family, info.global_step, info.totals["by_role"]["weight"]["tensors"], info.check["checksum"]
        ('bert', 20000, 46, 'CRC32C')
    """
    from ckptkit.converters.inspection import inspect_checkpoint

    return inspect_checkpoint(location, check=check)


def build_student(teacher: PathLike, destination: PathLike | None, *, layers: Sequence[int] | str | None = None,
                  num_layers: int | None = None, **options: Any) -> "StudentReport":
    """Make a smaller student hub folder from some of a teacher's layers (``ckptkit distill init``).

    Args:
        teacher: a hub folder, a safetensors/``.bin`` file, or a TF checkpoint (converted on the fly).
        destination: the student folder (new or empty unless ``overwrite=True``); None with ``dry_run=True``.
        layers: the 0-based teacher layer of each student layer (``[0, 4, 8]`` or ``"0,4,8"``).
        num_layers: instead of ``layers``: how many, chosen by ``strategy`` (``uniform``, ``first``, ...).
        **options: the other options of ``build_student`` (``strategy``, ``arch``, ``drop_token_types``,
            ``config``, ``overwrite``, ``dry_run``, ``part``, ``card``).

    Returns:
        A :class:`~ckptkit.distill.init.report.StudentReport` (also written as ``student.json``).

    Example:
        >>> import tempfile, ckptkit
        >>> out = tempfile.mkdtemp()
        >>> report = ckptkit.build_student("examples/tiny-bert", f"{out}/student", layers=[1])
        >>> report.layers, report.model_class, report.params_after < report.params_before
        ([1], 'BertForPreTraining', True)
    """
    from ckptkit.distill.init import build_student as build

    return build(os.fspath(teacher), None if destination is None else os.fspath(destination), layers=layers,
                 num_layers=num_layers, **options)


def distill(student: PathLike, output_dir: PathLike, *, train_files: Sequence[PathLike],
            teacher: PathLike | None = None, **options: Any) -> "TrainResult":
    """Train a student against its teacher on text (``ckptkit distill train``); needs torch and transformers.

    Args:
        student: the student folder :func:`build_student` wrote (it names its teacher in ``student.json``).
        output_dir: where checkpoints, logs and the distilled hub folder go.
        train_files: text files, one document or sentence a line.
        teacher: the teacher hub folder (default: the one ``student.json`` names).
        **options: the other fields of :class:`~ckptkit.distill.train_options.TrainOptions` (``objective``, ``weights``, ``temperature``,
            ``max_seq_length``, ``validation_files``, ``cache_teacher``, ``resume``, ``training_args``
            with ``transformers.TrainingArguments`` fields such as ``max_steps``, ...).

    Returns:
        A :class:`~ckptkit.distill.train_report.TrainResult` (steps, losses, evaluation, files);
        ``to_json()`` is also written as ``output_dir/distill_report.json``.

    Example:
        >>> import tempfile, pathlib, ckptkit
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> _ = ckptkit.convert("examples/tiny-bert", out / "teacher")
        >>> _ = ckptkit.build_student(out / "teacher", out / "student", layers=[1])
        >>> _ = (out / "train.txt").write_text("convert the model checkpoint\\nkorean bert\\n" * 8)
        >>> report = ckptkit.distill(out / "student", out / "distilled", train_files=[out / "train.txt"],
        ...                          max_seq_length=16, training_args={"max_steps": 2}, quiet=True)
        >>> report.steps, (out / "distilled" / "model.safetensors").is_file()
        (2, True)
    """
    from ckptkit.distill.train import train_student

    return train_student(student=student, output_dir=output_dir, train_files=list(train_files), teacher=teacher,
                         **options)


def open_checkpoint(location: PathLike, *, format: str | None = None) -> "Checkpoint":
    """Open a checkpoint as a lazy, read-only mapping of name -> tensor (bytes are read on ``.read()``).

    Args:
        location: a TF checkpoint directory, prefix or ``.index`` file; a ``.safetensors`` or PyTorch
            ``.bin`` file or index json; or a hub folder.
        format: skip detection: ``tf``, ``safetensors``, ``pytorch`` or ``hub``.

    Returns:
        A :class:`~ckptkit.converters.tensors.Checkpoint`; use it as a context manager.

    Example:
        >>> import ckptkit
        >>> with ckptkit.open_checkpoint("examples/tiny-bert") as ckpt:
        ...     tensor = ckpt["bert/pooler/dense/kernel"]
        ...     tensor.dtype.name, tensor.shape, tensor.role, tensor.read().shape
        ('float32', (32, 32), 'weight', (32, 32))
    """
    from ckptkit.converters.formats import open_checkpoint as open_any

    return open_any(location, format=format)
