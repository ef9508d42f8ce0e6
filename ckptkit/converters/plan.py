"""The Plan: every output tensor as a short pipeline of ops over named input tensors.

A plan is built from metadata alone (names, dtypes, shapes), so it can be printed, checked
and handed to a sink before any byte is read. :func:`execute` then streams: for each output
it reads its inputs, applies the steps, and writes the result straight into the sink's
buffer when the sink offers one. Peak memory is about one tensor. Building and checking a plan
needs no NumPy (family modules import this one to describe their steps); running it does.

Example:
    >>> import numpy as np
    >>> from ckptkit.converters.tensors import dtype_by_name
    >>> f32 = dtype_by_name("float32")
    >>> plan = Plan([PlannedTensor("w", ("kernel",), (Step("transpose", (1, 0)),), f32, (3, 2))])
    >>> source = {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}
    >>> materialize(plan.outputs[0], [source["kernel"]]).tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Protocol, Sequence

from ckptkit.converters.tensors import DType, LazyTensor
from ckptkit.errors import PlanError
from ckptkit.converters.memory import prefetch, release_pages

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

__all__ = ["Step", "PlannedTensor", "Dropped", "Plan", "Sink", "OPS", "output_shape", "materialize",
           "execute", "MemorySink", "planned_view"]


@dataclass(frozen=True)
class Step:
    """One op of a tensor's pipeline; ``args`` are the op's parameters (see :data:`OPS`)."""

    op: str
    args: tuple = ()

    def describe(self) -> str:
        return f"{self.op}{list(self.args)}" if self.args else self.op


@dataclass(frozen=True)
class PlannedTensor:
    """An output tensor: its name, inputs, steps, and final dtype and shape."""

    name: str
    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    dtype: DType
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        ops = " -> ".join(s.describe() for s in self.steps) or "copy"
        return f"{', '.join(self.inputs) or '(generated)'} | {ops}"


@dataclass(frozen=True)
class Dropped:
    """An input tensor deliberately not written, and why."""

    name: str
    reason: str


# ---- ops: name -> (shape function, apply function). Apply returns a view when it can; the ones that
# make new arrays import NumPy when first run. ----

def _numpy():
    import numpy

    return numpy


def _take(arrays, axis, index):
    return _numpy().take(arrays[0], index, axis=axis)


def _slice(arrays, axis, start, stop):
    index = [slice(None)] * arrays[0].ndim
    index[axis] = slice(start, stop)
    return arrays[0][tuple(index)]


def _slice_shape(shapes, axis, start, stop):
    shape = list(shapes[0])
    shape[axis] = len(range(*slice(start, stop).indices(shape[axis])))
    return tuple(shape)


def _concat_shape(shapes, axis):
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return tuple(shape)


def _reshape_shape(shapes, *shape):
    if math.prod(shapes[0]) != math.prod(shape):
        raise ValueError(f"cannot reshape {list(shapes[0])} to {list(shape)}")
    return tuple(shape)


def _signed_pair_shape(shapes, rows):
    if 2 * shapes[0][0] > rows:
        raise ValueError(f"{shapes[0][0]} rows and their negations do not fit in {rows} rows")
    return (rows, *shapes[0][1:])


def _signed_pair(arrays, rows):
    """``[x; -x; 0...]`` along axis 0: gelu(z) - gelu(-z) = z turns a dense+gelu+dense into a plain dense."""
    x = arrays[0]
    out = _numpy().zeros((rows, *x.shape[1:]), dtype=x.dtype)
    out[:len(x)], out[len(x):2 * len(x)] = x, -x
    return out


def _pair_difference_shape(shapes, width):
    n = shapes[0][-1]
    _signed_pair_shape([(n,)], width)
    return (n, width)


def _pair_difference(arrays, width):
    """``[I, -I, 0...]`` of shape [n, width] for an input of shape [*, n]: row i picks z_i - z_(n+i)."""
    n = arrays[0].shape[-1]
    out, rows = _numpy().zeros((n, width), dtype=arrays[0].dtype), range(n)
    out[rows, rows], out[rows, range(n, 2 * n)] = 1, -1
    return out


def _add_row_shape(shapes, row):
    if shapes[0][-1:] != shapes[1][-1:] or not 0 <= row < shapes[1][0]:
        raise ValueError(f"cannot add row {row} of {list(shapes[1])} to {list(shapes[0])}")
    return tuple(shapes[0])


@dataclass(frozen=True)
class Op:
    shape: Callable[..., tuple[int, ...]]
    apply: Callable[..., np.ndarray]
    arity: int = 1  # inputs consumed by this op when it is the first step; later steps take one value


OPS: dict[str, Op] = {
    "transpose": Op(lambda shapes, *perm: tuple(shapes[0][p] for p in perm),
                    lambda arrays, *perm: arrays[0].transpose(perm)),
    "reshape": Op(_reshape_shape, lambda arrays, *shape: arrays[0].reshape(shape)),
    "take": Op(lambda shapes, axis, index: shapes[0][:axis] + shapes[0][axis + 1:], _take),
    "slice": Op(_slice_shape, _slice),
    "concat": Op(_concat_shape, lambda arrays, axis: _numpy().concatenate(arrays, axis=axis), arity=-1),
    "signed_pair": Op(_signed_pair_shape, _signed_pair),
    "pair_difference": Op(_pair_difference_shape, _pair_difference),
    # zeros like the input; with a shape and no input, a generated tensor (a layer the TF code leaves out)
    "zeros": Op(lambda shapes, *shape: tuple(shape) if shape else tuple(shapes[0]),
                lambda arrays, *shape: _numpy().zeros(shape, "float32") if shape else _numpy().zeros_like(arrays[0])),
    # generated, no input: the [rows, cols] identity (e.g. a projection the TF code skips when sizes are equal)
    "eye": Op(lambda shapes, rows, cols: (rows, cols), lambda arrays, rows, cols: _numpy().eye(rows, cols, dtype="float32"),
              arity=0),
    "add_row": Op(_add_row_shape,
                  lambda arrays, row: arrays[0].astype("float64") + arrays[1][row].astype("float64"), arity=2),
}


def output_shape(input_shapes: Sequence[tuple[int, ...]], steps: Sequence[Step]) -> tuple[int, ...]:
    """The shape a pipeline produces from inputs of ``input_shapes`` (raises ValueError if invalid).

    Example:
        >>> output_shape([(4, 2, 3)], [Step("reshape", (4, 6)), Step("transpose", (1, 0))])
        (6, 4)
    """
    shapes = [tuple(s) for s in input_shapes]
    for step in steps:
        op = OPS.get(step.op)
        if op is None:
            raise ValueError(f"unknown op {step.op!r}")
        shapes = [op.shape(shapes, *step.args)]
    if len(shapes) != 1:
        raise ValueError(f"{len(shapes)} inputs but no op combines them")
    return shapes[0]


def _pipeline(planned: PlannedTensor, arrays: Sequence[np.ndarray]) -> np.ndarray:
    values = list(arrays)
    for step in planned.steps:
        values = [OPS[step.op].apply(values, *step.args)]
    return values[0]


_TILED_ELEMENTS = 1 << 12  # transposed matrices from this size are copied tile by tile
_THREADED_BYTES = 4 << 20  # below this a second thread costs more than it saves
_pool: ThreadPoolExecutor | None = None


def _threads() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _tiled_copy(out: np.ndarray, value: np.ndarray) -> None:
    """A transposing copy in row bands, one per core (NumPy releases the GIL while copying a tile)."""
    from ckptkit.converters.stream_write import TILE, copy_band

    global _pool
    threads = _threads() if value.nbytes >= _THREADED_BYTES else 1
    rows = value.shape[0]
    band = -(-rows // threads // TILE) * TILE
    bands = [slice(start, min(start + band, rows)) for start in range(0, rows, band)]
    if len(bands) > 1 and _pool is None:
        from concurrent.futures import ThreadPoolExecutor  # imports logging: not on the metadata-only paths

        _pool = ThreadPoolExecutor(_threads(), thread_name_prefix="ckptkit-copy")
    pending = [_pool.submit(copy_band, out[rows_], value[rows_]) for rows_ in bands[1:]]
    copy_band(out[bands[0]], value[bands[0]])
    for future in pending:
        future.result()


def copy_into(out: np.ndarray, value: np.ndarray) -> None:
    """Copy (and cast) ``value`` into ``out``, tiling transposed 2-D copies (on every core) for speed.

    Example:
        >>> import numpy as np
        >>> a = np.arange(6, dtype=np.float32).reshape(2, 3); out = np.empty((3, 2), np.float16)
        >>> copy_into(out, a.T); out.tolist()
        [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    if value.ndim == 2 and not value.flags.c_contiguous and value.size >= _TILED_ELEMENTS:
        _tiled_copy(out, value)
        return
    _numpy().copyto(out, value.reshape(out.shape) if value.shape != out.shape else value, casting="unsafe")


def planned_view(planned: PlannedTensor, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``planned``'s steps on its input arrays, uncopied where NumPy allows (a transpose stays a view,
    a cast is left to whoever copies it): for sinks that copy while they write (``accepts_views``)."""
    value = _pipeline(planned, arrays)
    return value if value.shape == planned.shape else value.reshape(planned.shape)


def materialize(planned: PlannedTensor, arrays: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Run ``planned``'s steps on its input arrays, into ``out`` when given.

    Returns a read-only view of an input when no step changes the bytes and no buffer is given.
    """
    value = _pipeline(planned, arrays)
    if out is None:
        if value.dtype == planned.dtype.numpy and value.flags.c_contiguous:
            return value.reshape(planned.shape)
        out = _numpy().empty(planned.shape, dtype=planned.dtype.numpy)
    copy_into(out, value)
    return out


@dataclass
class Plan:
    """The complete list of output tensors, what was dropped, and the facts reports need."""

    outputs: list[PlannedTensor]
    dropped: list[Dropped] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # family, model class, config, warnings, ...

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    @property
    def warnings(self) -> list[str]:
        return self.info.setdefault("warnings", [])

    def check(self, source: Mapping[str, LazyTensor]) -> None:
        """Every source tensor used or dropped, every input present, every shape derivable."""
        names = [t.name for t in self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PlanError(f"output {duplicates[0]!r} is planned twice")
        used = {name for t in self.outputs for name in t.inputs}
        missing = sorted(used - set(source))
        if missing:
            raise PlanError(f"plan reads {missing[0]!r}, which the source does not have")
        accounted = used | {d.name for d in self.dropped}
        unaccounted = sorted(set(source) - accounted)
        if unaccounted:
            raise PlanError(f"{len(unaccounted)} source tensors are neither used nor dropped, "
                            f"e.g. {unaccounted[0]!r}")
        for t in self.outputs:
            try:
                shape = output_shape([source[n].shape for n in t.inputs], t.steps)
            except ValueError as e:
                raise PlanError(f"output {t.name!r}: {e}") from e
            if shape != t.shape:
                raise PlanError(f"output {t.name!r}: steps give shape {list(shape)}, plan says {list(t.shape)}")

    def to_json(self) -> dict:
        return {
            **{k: v for k, v in self.info.items()},
            "total_bytes": self.total_bytes,
            "outputs": [{"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape), "inputs": list(t.inputs),
                         "ops": [s.describe() for s in t.steps]} for t in self.outputs],
            "dropped": [{"name": d.name, "reason": d.reason} for d in self.dropped],
        }

    def format_text(self) -> str:
        """A readable listing: outputs with their sources and ops, then the dropped tensors by reason."""
        width = max((len(t.name) for t in self.outputs), default=10)
        lines = [f"{len(self.outputs)} output tensors ({self.total_bytes / 2**20:.1f} MiB):"]
        lines += [f"  {t.name:<{width}}  {t.dtype.name:<8} {str(list(t.shape)):<16} <- {t.describe()}"
                  for t in self.outputs]
        by_reason: dict[str, list[str]] = {}
        for d in self.dropped:
            by_reason.setdefault(d.reason, []).append(d.name)
        if by_reason:
            lines.append(f"{len(self.dropped)} source tensors dropped:")
            for reason, names in by_reason.items():
                shown = ", ".join(names[:3]) + (f", ... (+{len(names) - 3})" if len(names) > 3 else "")
                lines.append(f"  {len(names):>5} {reason}: {shown}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)


class Sink(Protocol):
    """Where a plan's outputs go. ``begin`` sees all metadata before any bytes arrive."""

    def begin(self, outputs: Sequence[PlannedTensor]) -> None: ...
    def order(self, outputs: Sequence[PlannedTensor]) -> Sequence[PlannedTensor]: ...
    def buffer(self, planned: PlannedTensor) -> np.ndarray | None: ...  # where to put the bytes, if it has a place
    def write(self, planned: PlannedTensor, array: np.ndarray) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


class MemorySink:
    """Collects outputs as NumPy arrays in ``tensors`` (for verification and tests)."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def begin(self, outputs: Sequence[PlannedTensor]) -> None:
        self.tensors = {}

    def order(self, outputs: Sequence[PlannedTensor]) -> Sequence[PlannedTensor]:
        return outputs

    def buffer(self, planned: PlannedTensor) -> np.ndarray | None:
        return None

    def write(self, planned: PlannedTensor, array: np.ndarray) -> None:
        self.tensors[planned.name] = _numpy().array(array, copy=True)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        self.tensors = {}


def execute(plan: Plan, source: Mapping[str, LazyTensor], sink: Sink, *, desc: str = "converting") -> None:
    """Stream every planned output from ``source`` into ``sink``, one tensor at a time.

    On any error the sink is aborted (its temporary files removed) and the error re-raised.
    """
    sink.begin(plan.outputs)
    views = getattr(sink, "accepts_views", False)  # the sink casts and transposes as it writes: no copy here
    try:
        ordered = list(sink.order(plan.outputs))
        # remote: the kept bytes only, fetched in this order a bounded window ahead and handed to the reads
        with prefetch(source[name] for planned in ordered for name in planned.inputs) as fetching:
            for planned in fetching.progress(ordered, total=plan.total_bytes, size=lambda t: t.nbytes, desc=desc):
                arrays = [source[name].read() for name in planned.inputs]
                result = (planned_view(planned, arrays) if views else materialize(planned, arrays, sink.buffer(planned)))
                sink.write(planned, result)
                for array in (*arrays, result):
                    release_pages(array)
                del arrays, result
        sink.finish()
    except BaseException:
        sink.abort()
        raise

