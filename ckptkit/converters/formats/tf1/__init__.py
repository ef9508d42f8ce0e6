"""TensorFlow checkpoints (the V2 bundle format of TF1 and TF2) without TensorFlow.

Reading: :func:`open_tf_checkpoint`. Writing: :func:`write_tf_checkpoint`, the streaming
:class:`TFCheckpointWriter`, and :func:`rewrite_tf_checkpoint` (byte-identical copies).
"""

from ckptkit.converters.formats.tf1.reader import TFCheckpoint, TFTensor, open_tf_checkpoint
from ckptkit.converters.formats.tf1.writer import TFCheckpointWriter, rewrite_tf_checkpoint, write_tf_checkpoint

__all__ = ["open_tf_checkpoint", "TFCheckpoint", "TFTensor", "write_tf_checkpoint", "TFCheckpointWriter",
           "rewrite_tf_checkpoint"]
