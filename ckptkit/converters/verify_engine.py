"""Which engine computes a hub folder's outputs for ``verify``: ckptkit's torch-free NumPy engine
(:mod:`ckptkit.converters.hub_forward`, the default) or transformers itself.

The NumPy engine reads the folder's own tensors by their transformers names, as the forward reaches
them (vectors kept, matrices read again when used again, the word-embedding table and a tied decoder
in row chunks of the stored array), and the folder's config.json; it imports neither torch nor
transformers. A model_type or option it does not compute falls back to transformers when that is
installed (the report says so), else stops with a one-line error naming ``--engine transformers``.

Example:
    >>> ENGINES, DEFAULT_ENGINE
    (('numpy', 'transformers'), 'numpy')
"""

from __future__ import annotations

import importlib.util
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.compare import one_blas_thread
from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import UsageError

__all__ = ["ENGINES", "DEFAULT_ENGINE", "EngineOutputs", "MissingWeight", "hub_getter", "numpy_outputs",
           "engine_outputs", "transformers_available", "check_engine"]

ENGINES = ("numpy", "transformers")
DEFAULT_ENGINE = "numpy"
_INSTALL = "pip install 'ckptkit[verify]'"


class MissingWeight(KeyError):
    """A tensor the architecture needs is not in the folder (transformers would initialise it randomly)."""


EngineOutputs = tuple[dict[str, np.ndarray], str]  # the outputs, and how they were computed (for `compared`)


def hub_getter(checkpoint: Checkpoint) -> Callable[[str], np.ndarray]:
    """The engines' ``get``: a tensor of ``checkpoint`` in float64, read when asked; ``get.stored`` gives it
    as stored (for chunked use of the big matrices)."""
    from ckptkit.converters.reference import float64_getter

    def stored(name: str) -> np.ndarray:
        if name not in checkpoint:
            raise MissingWeight(name)
        return checkpoint[name].read()

    return float64_getter(stored)


def _weights_file(checkpoint: Checkpoint) -> str:
    return "pytorch_model.bin" if checkpoint.extras.get("weights_format") == "pytorch" else "model.safetensors"


def numpy_outputs(checkpoint: Checkpoint, config: Mapping, class_name: str, inputs: Mapping[str, np.ndarray]
                  ) -> EngineOutputs:
    """The NumPy engine's outputs for the hub folder ``checkpoint`` (raises
    :class:`~ckptkit.converters.hub_forward.ops.Unsupported` for what it does not compute)."""
    from ckptkit.converters.hub_forward import hub_forward, supports
    from ckptkit.converters.hub_forward.ops import Unsupported

    if not supports(config):
        raise Unsupported(f"model_type {config.get('model_type')!r}")
    names = {n for n in checkpoint}
    with one_blas_thread():
        outputs = hub_forward(hub_getter(checkpoint), names, config, class_name, inputs)
    return outputs, (f"ckptkit's NumPy engine over {_weights_file(checkpoint)} and config.json, float64")


def transformers_available() -> bool:
    """Whether torch and transformers can be imported (without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def check_engine(engine: str) -> None:
    """A UsageError for an engine name that is not one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise UsageError(f"unknown verify engine {engine!r}", hint="one of " + ", ".join(ENGINES))


def engine_outputs(engine: str, checkpoint: Checkpoint, folder: str, config: Mapping, class_name: str,
                   inputs: Mapping[str, np.ndarray], *,
                   transformers_outputs: Callable[[str, str, Mapping[str, np.ndarray]], dict[str, np.ndarray]]
                   ) -> EngineOutputs:
    """The hub side's outputs by ``engine`` (``numpy``: falling back to transformers for what it lacks)."""
    check_engine(engine)
    if engine == "numpy":
        from ckptkit.converters.hub_forward.ops import Unsupported

        try:
            return numpy_outputs(checkpoint, config, class_name, inputs)
        except Unsupported as gap:
            if not transformers_available():
                raise UsageError(f"ckptkit's NumPy engine does not compute {gap} ({class_name})", path=folder,
                                 hint=f"verify with --engine transformers after `{_INSTALL}`, "
                                      "or compare tensors only with --no-forward") from None
            note = f"; ckptkit's NumPy engine does not compute {gap}"
    else:
        note = ""
        if not transformers_available():
            raise UsageError("--engine transformers needs torch and transformers", path=folder,
                             hint=f"`{_INSTALL}`, or use the default --engine numpy")
    return transformers_outputs(folder, class_name, inputs), f"transformers, float32{note}"
