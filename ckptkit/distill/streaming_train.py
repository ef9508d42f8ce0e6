"""What ``distill train`` needs to train on a :class:`~ckptkit.distill.streaming.StreamingCorpus` and a teacher cache.

- :func:`uses_streaming` / :func:`streaming_train_set`: the training data is streamed with
  ``--streaming``, and whenever a teacher cache is used (its examples are the stream's pieces).
- :func:`streaming_trainer`: a Trainer subclass whose training dataloader is this rank's shard of
  the stream (split again over dataloader workers, not re-dispatched by accelerate), which records
  the stream position of every consumed batch and saves it in each ``checkpoint-N`` folder
  (``stream_position-rank<R>.json``); ``--resume`` restarts the stream there.
- :func:`prepare_teacher_cache`: the cache of ``--teacher-cache DIR`` (or ``--cache-teacher``:
  ``OUTPUT_DIR/teacher-cache``), built or finished first when needed, refused when built for
  other settings.

Example:
    >>> trainer_cls = streaming_trainer(DistillationTrainer)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ckptkit.distill.streaming import StreamingCorpus, StreamPosition
from ckptkit.errors import UsageError
from ckptkit.output.atomic import write_json

__all__ = ["uses_streaming", "streaming_train_set", "streaming_trainer", "prepare_teacher_cache",
           "POSITION_FILE", "cache_dir_of"]

POSITION_FILE = "stream_position-rank{rank}.json"


def cache_dir_of(opts, out: Path) -> Path | None:
    """The run's teacher cache folder: ``--teacher-cache``, else ``OUTPUT_DIR/teacher-cache`` (``--cache-teacher``)."""
    if getattr(opts, "teacher_cache", None):
        return Path(opts.teacher_cache)
    return out / "teacher-cache" if opts.cache_teacher else None


def uses_streaming(opts) -> bool:
    """Whether the training data is streamed: asked for, or needed by a teacher cache."""
    return bool(getattr(opts, "streaming", False) or opts.cache_teacher or getattr(opts, "teacher_cache", None))


def streaming_train_set(opts, tokenizer, args) -> StreamingCorpus:
    """This rank's view of the training files as a stream; the Trainer resumes by position, not by replaying."""
    if not args.max_steps or args.max_steps <= 0:
        raise UsageError("streamed training data (--streaming, --teacher-cache, --cache-teacher) has no length",
                         hint="pass --max-steps; the stream starts a new epoch whenever it ends")
    args.ignore_data_skip = True
    return StreamingCorpus(opts.train_files, tokenizer, max_seq_length=opts.max_seq_length, pack=True,
                           text_field=opts.text_column, seed=args.seed, rank=args.process_index,
                           world_size=args.world_size, piece_bytes=_cache_piece_bytes(opts, Path(args.output_dir)))


def _cache_piece_bytes(opts, out: Path) -> int | None:
    """An existing teacher cache decides how the corpus is cut into pieces (``distill cache --piece-mb``)."""
    from ckptkit.distill.teacher_cache import read_meta

    directory = cache_dir_of(opts, out)
    meta = read_meta(directory) if directory is not None else None
    return (meta or {}).get("key", {}).get("piece_bytes")   # None: the corpus's own size decides


def _epoch_loader(corpus: StreamingCorpus, position: StreamPosition, **kwargs):
    from torch.utils.data import DataLoader

    class EpochLoader(DataLoader):
        """This rank's shard of ``corpus``; each full pass moves the stream (and the masking) to the next epoch."""

        def __iter__(self):
            collator = self.collate_fn
            if hasattr(collator, "epoch"):
                collator.epoch = corpus.epoch
            if position.epoch != corpus.epoch:
                position.epoch, position.last = corpus.epoch, {}
            yield from super().__iter__()
            corpus.set_epoch(corpus.epoch + 1)

    return EpochLoader(corpus, **kwargs)


def streaming_trainer(base: type) -> type:
    """``base`` (a Trainer class) reading its training data from a :class:`StreamingCorpus`, resumable."""

    class StreamingTrainer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.stream_position = StreamPosition()

        def get_train_dataloader(self):
            corpus = self.train_dataset
            if not isinstance(corpus, StreamingCorpus):
                return super().get_train_dataloader()
            args = self.args
            shards = args.world_size * max(1, args.dataloader_num_workers)
            if len(corpus.pieces) < shards:
                raise UsageError(f"the training data has {len(corpus.pieces)} pieces, fewer than processes x "
                                 f"dataloader workers ({shards}): some would get no data",
                                 hint="pass fewer --dataloader-num-workers or more data")
            return _epoch_loader(corpus, self.stream_position, batch_size=args.per_device_train_batch_size,
                                 collate_fn=self.data_collator, num_workers=args.dataloader_num_workers,
                                 pin_memory=args.dataloader_pin_memory)

        def training_step(self, model, inputs, *args, **kwargs):
            loss = super().training_step(model, inputs, *args, **kwargs)
            if "example_id" in inputs:
                self.stream_position.consume(inputs["example_id"].tolist())
            return loss

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            if folder.is_dir():
                write_json(folder / POSITION_FILE.format(rank=self.args.process_index),
                           self.stream_position.state_dict())

        def train(self, resume_from_checkpoint=None, *args, **kwargs):
            self.stream_position = StreamPosition()
            if resume_from_checkpoint and isinstance(self.train_dataset, StreamingCorpus):
                path = Path(resume_from_checkpoint) / POSITION_FILE.format(rank=self.args.process_index)
                if not path.is_file():
                    raise UsageError("checkpoint has no stream position for this process", path=path.parent,
                                     hint="resume with the same number of processes and --streaming settings")
                self.stream_position = StreamPosition.from_state(json.loads(path.read_text()))
                self.train_dataset.resume(self.stream_position)
            return super().train(resume_from_checkpoint, *args, **kwargs)

    StreamingTrainer.__name__ = StreamingTrainer.__qualname__ = f"Streaming{base.__name__}"
    return StreamingTrainer


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _adopt_stored(meta: dict[str, Any] | None, key: dict[str, Any]) -> dict[str, Any]:
    """An existing cache decides what training cannot see from its options: top-k and storage precision."""
    if meta is None:
        return key
    stored = meta.get("key", {})
    adopted = {name: stored[name] for name in ("top_k", "value_dtype") if name in stored}
    if key["top_k"] == 0 or adopted.get("top_k") == 0:
        adopted.pop("top_k", None)
    return {**key, **adopted}


def prepare_teacher_cache(opts, setup, models, data) -> tuple[Any, dict[str, Any]]:
    """The run's teacher cache, built (all ranks, pieces ``rank::world``) or finished first when needed.

    Returns the open :class:`~ckptkit.distill.teacher_cache.TeacherCache` and this run's build figures.
    """
    import torch

    from ckptkit.distill.teacher_cache import TeacherCache, read_meta
    from ckptkit.distill.teacher_cache_build import build_pieces, cache_key, finish_cache

    args, directory = setup.args, cache_dir_of(opts, setup.out)
    hidden = models.distill.teacher_hidden_indices
    top_k = min(opts.cache_top_k, len(models.tokenizer)) if opts.objective == "mlm" and opts.weights.ce > 0 else 0
    key = cache_key(teacher_dir=setup.teacher, corpus=data.train_set, collator=data.collator, top_k=top_k,
                    temperature=opts.temperature)
    meta = read_meta(directory)
    key = _adopt_stored(meta, key)
    stats: dict[str, Any] = {}
    if not (meta and meta.get("complete")):
        dtype = {True: torch.bfloat16}.get(bool(args.bf16), torch.float16 if args.fp16 else torch.float32)
        built = build_pieces(directory, corpus=data.train_set, teacher=models.teacher, collator=data.collator,
                             key=key, top_k=key["top_k"], temperature=opts.temperature, hidden_indices=hidden,
                             batch_size=args.per_device_train_batch_size * 2, device=args.device, dtype=dtype,
                             value_dtype=key["value_dtype"], rank=args.process_index, world_size=args.world_size)
        _barrier()
        if args.process_index == 0:
            finish_cache(directory, stats=built)
        _barrier()
        stats = {"build_seconds": built.build_s, "teacher_seconds": built.teacher_s,
                 "pieces_built": built.pieces_built}
    cache = TeacherCache.open(directory, key=key, need_hidden=hidden, need_top_k=top_k > 0)
    return cache, stats
