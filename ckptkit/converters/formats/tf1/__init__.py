"""TensorFlow checkpoints (the V2 bundle format of TF1 and TF2) without TensorFlow.

Reading: :func:`open_tf_checkpoint`. Writing: :func:`write_tf_checkpoint`, the streaming
:class:`TFCheckpointWriter`, and :func:`rewrite_tf_checkpoint` (byte-identical copies), imported on first use.
"""

from ckptkit.converters.formats.tf1.reader import TFCheckpoint, TFTensor, open_tf_checkpoint

__all__ = ["open_tf_checkpoint", "TFCheckpoint", "TFTensor", "write_tf_checkpoint", "TFCheckpointWriter",
           "rewrite_tf_checkpoint"]

_WRITER_NAMES = ("write_tf_checkpoint", "TFCheckpointWriter", "rewrite_tf_checkpoint")


def __getattr__(name: str):
    """The writer's names, imported when first asked for: reading metadata needs no NumPy, writing does."""
    if name in _WRITER_NAMES:
        from ckptkit.converters.formats.tf1 import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
