"""A SavedModel directory as a checkpoint: its ``variables/variables`` bundle, named through its object graph.

``saved_model.pb`` is parsed (its SavedObjectGraph: which object path holds which ``tf.Variable``, and that
variable's own name), never executed; nothing imports TensorFlow. Each tensor is named, in this order:

1. **the variable names** (``tf.Variable(..., name="bert/embeddings/word_embeddings")``, Keras' scoped
   ``layer/kernel``), when every variable has one and no two share it;
2. else **the object paths** of the TF2 checkpoint (``bert/encoder/layer_0/.../kernel`` for nested
   ``tf.Module``s named like the TF1 scopes);
3. a TF1 SavedModel (``tf.compat.v1.saved_model`` builder, TF-Hub v1 modules) keeps its TF1 names.

Then :mod:`saved_model_names` renames known Keras layouts to the family names (the TF Model Garden
``BertEncoder`` of TF-Hub BERT SavedModels). A SavedModel without variables (asset-only, or weights
folded into graph constants) is a one-line error naming the directory.

Example:
    >>> open_saved_model("no/such/dir")
    Traceback (most recent call last):
    ...
    ckptkit.errors.CheckpointNotFoundError: no/such/dir: no saved_model.pb here (give a SavedModel directory: saved_model.pb with variables/)
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass

from ckptkit.converters.formats.saved_model_names import rename_known_layouts
from ckptkit.converters.formats.tf1.object_graph import OBJECT_GRAPH_KEY, TF2Name, escape_segment
from ckptkit.converters.formats.tf1.proto import ProtoError, first, parse_fields
from ckptkit.converters.formats.tf1.reader import TFCheckpoint
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError

__all__ = ["SAVED_MODEL_PB", "SavedVariable", "SavedModelCheckpoint", "open_saved_model", "saved_model_dir",
           "saved_variables", "unsupported_layout"]

SAVED_MODEL_PB = "saved_model.pb"
_VARIABLES = os.path.join("variables", "variables")
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OUTPUT_INDEX = re.compile(r":\d+$")
_NO_WEIGHTS = ("an asset-only SavedModel, or one whose weights were folded into graph constants, has no weights "
               "ckptkit can read")
_EXPORT_HINT = ("export the model with its variables (tf.saved_model.save(model, dir)), or convert a checkpoint "
                "of it (tf.train.Checkpoint(model=model).save(prefix))")
# SavedModel -> meta_graphs (2) -> MetaGraphDef.object_graph_def (7) -> SavedObjectGraph.nodes (1) ->
# SavedObject: children (1, ObjectReference: node_id 1, local_name 2), variable (7, SavedVariable: name 6).
_META_GRAPHS, _OBJECT_GRAPH, _NODES, _CHILDREN, _VARIABLE, _VARIABLE_NAME = 2, 7, 1, 1, 7, 6


@dataclass(frozen=True)
class SavedVariable:
    """One variable of the SavedObjectGraph: its checkpoint key and its ``tf.Variable`` name (may be empty)."""

    key: str
    name: str


def saved_model_dir(path: str | os.PathLike) -> str:
    """The SavedModel directory meant by ``path`` (the directory, its ``saved_model.pb``, or its ``variables/``).

    Example:
        >>> saved_model_dir("no/such/dir")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: no/such/dir: no saved_model.pb here (give a SavedModel directory: saved_model.pb with variables/)
    """
    p = os.path.abspath(os.fspath(path))
    candidates = (p, os.path.dirname(p), os.path.dirname(os.path.dirname(p)))
    for directory in candidates[:1] if os.path.isdir(p) and os.path.basename(p) != "variables" else candidates:
        if os.path.isfile(os.path.join(directory, SAVED_MODEL_PB)):
            return directory
    if os.path.isfile(os.path.join(p, "saved_model.pbtxt")):
        raise UnsupportedFormatError("a text SavedModel (saved_model.pbtxt)", path=path,
                                     hint="re-save it in binary form (tf.saved_model.save)")
    raise CheckpointNotFoundError(f"no {SAVED_MODEL_PB} here", path=os.fspath(path),
                                  hint="give a SavedModel directory: saved_model.pb with variables/")


def _children(node: dict) -> list[tuple[int, str]]:
    refs = [parse_fields(raw) for raw in node.get(_CHILDREN, [])]
    return [(first(r, 1, 0), first(r, 2, b"", bytes).decode("utf-8", "replace")) for r in refs]


def _variable_name(node: dict) -> str | None:
    raw = first(node, _VARIABLE, None, bytes)
    if raw is None:
        return None
    return _OUTPUT_INDEX.sub("", first(parse_fields(raw), _VARIABLE_NAME, b"", bytes).decode("utf-8", "replace"))


def _object_graph(pb: bytes) -> list[dict] | None:
    """The SavedObjectGraph's nodes (parsed fields), None for a TF1 SavedModel (no object graph)."""
    for meta_graph in parse_fields(pb).get(_META_GRAPHS, []):
        graph = first(parse_fields(meta_graph), _OBJECT_GRAPH, None, bytes)
        if graph is not None:
            return [parse_fields(raw) for raw in parse_fields(graph).get(_NODES, [])]
    return None


def saved_variables(pb: bytes) -> list[SavedVariable] | None:
    """Every variable of a ``saved_model.pb`` with the checkpoint key TensorFlow gives it (its first object
    path, breadth-first from the root in child order); None for a TF1 SavedModel.

    Raises:
        ProtoError: ``pb`` is not a SavedModel.
    """
    nodes = _object_graph(pb)
    if nodes is None:
        return None
    paths: dict[int, str] = {0: ""}
    queue = deque([0])
    while queue:
        index = queue.popleft()
        for child, name in _children(nodes[index]):
            if 0 <= child < len(nodes) and child not in paths:
                paths[child] = (paths[index] + "/" if index else "") + escape_segment(name)
                queue.append(child)
    found = ((paths[i], _variable_name(node)) for i, node in enumerate(nodes) if i in paths)
    return [SavedVariable(path + _VALUE_SUFFIX, name) for path, name in found if name is not None and path]


class SavedModelCheckpoint(TFCheckpoint):
    """A SavedModel's variables as a :class:`TFCheckpoint` (``format`` stays ``tf``; ``extras['kind']`` is
    ``saved_model``, ``extras['names']`` says where the names come from)."""

    def __init__(self, directory: str):
        self.directory = directory
        pb_path = os.path.join(directory, SAVED_MODEL_PB)
        with open(pb_path, "rb") as f:
            pb = f.read()
        try:
            self._saved = saved_variables(pb)
        except (ProtoError, IndexError, UnicodeError) as e:
            raise CorruptCheckpointError(f"not a SavedModel: {e}", path=pb_path,
                                         hint="the file is damaged; copy it again") from e
        self._naming = "TF1 names"
        prefix = os.path.join(directory, _VARIABLES)
        if not os.path.isfile(prefix + ".index"):
            raise UnsupportedFormatError(f"this SavedModel holds no variables (no variables/variables.index): "
                                         f"{_NO_WEIGHTS}", path=directory, hint=_EXPORT_HINT)
        super().__init__(prefix)
        self.path = directory
        self.files = [pb_path, *self.files]
        self._extras.update(kind="saved_model", names=self._naming, saved_model=directory)
        layout = rename_known_layouts(self._tensors)
        if layout is not None:
            self._tensors, facts = layout
            self._extras.update(facts)

    def _tf2_names(self, tensors) -> dict[str, TF2Name]:
        paths = super()._tf2_names(tensors)
        if OBJECT_GRAPH_KEY in tensors:
            self._naming = "object paths"
        variables = [v for v in self._saved or () if v.key in paths and not paths[v.key].is_optimizer]
        names = [v.name for v in variables]
        if variables and all(names) and len(set(names)) == len(names) and not set(names) & set(tensors):
            self._naming = "variable names"
            return {**paths, **{v.key: TF2Name(v.name, False) for v in variables}}
        return paths


def open_saved_model(path: str | os.PathLike) -> SavedModelCheckpoint:
    """Open a SavedModel directory's variables lazily, named as the module docstring says.

    Args:
        path: the SavedModel directory (``saved_model.pb`` + ``variables/``), its ``saved_model.pb`` or its
            ``variables/`` folder.

    Returns:
        A :class:`SavedModelCheckpoint` (a read-only mapping name -> tensor; a context manager).

    Raises:
        CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError (no variables, text SavedModel).

    Example:
        >>> with open_saved_model("exported/bert") as ckpt:  # doctest: +SKIP
        ...     ckpt.extras["names"], ckpt["bert/pooler/dense/kernel"].shape
        ('variable names', (768, 768))
    """
    return SavedModelCheckpoint(saved_model_dir(path))


def unsupported_layout(checkpoint: TFCheckpoint) -> UnsupportedFormatError:
    """The one-line error for a SavedModel whose variables no family recognises (what was found, what is read).

    Example:
        >>> from ckptkit.converters.tensors import Checkpoint, LazyTensor, dtype_by_name
        >>> t = LazyTensor("vars/0", dtype_by_name("float32"), (2,), loader=None)
        >>> print(unsupported_layout(Checkpoint("sm", {"vars/0": t}, extras={"names": "object paths"})))
        sm: the SavedModel's variables are no BERT-family layout ckptkit knows (1 weights named by object paths, e.g. 'vars/0') (ckptkit reads SavedModels whose variables carry the official TF1 names (tf.Variable(value, name='bert/embeddings/word_embeddings'), or nested tf.Modules along those scopes) or the TF Model Garden BertEncoder names; re-export with those names, or convert a TF1 checkpoint of the model)
    """
    weights = [name for name, t in checkpoint.items() if t.role == "weight"]
    if not weights:
        return UnsupportedFormatError(f"this SavedModel holds no variables: {_NO_WEIGHTS}", path=checkpoint.path,
                                      hint=_EXPORT_HINT)
    examples = ", ".join(repr(n) for n in weights[:3])
    return UnsupportedFormatError(
        f"the SavedModel's variables are no BERT-family layout ckptkit knows ({len(weights)} weights named by "
        f"{checkpoint.extras.get('names', 'object paths')}, e.g. {examples})", path=checkpoint.path,
        hint="ckptkit reads SavedModels whose variables carry the official TF1 names (tf.Variable(value, "
             "name='bert/embeddings/word_embeddings'), or nested tf.Modules along those scopes) or the TF Model "
             "Garden BertEncoder names; re-export with those names, or convert a TF1 checkpoint of the model")
