"""Readable names for TF2 object-based checkpoints, from ``_CHECKPOINTABLE_OBJECT_GRAPH``.

A TF2 key such as ``optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE`` names the
*first* path TensorFlow found to a variable, which is often not the model's own path. We walk
the TrackableObjectGraph (tensorflow/core/protobuf/trackable_object_graph.proto) and name each
tensor by its best path: the first path outside the optimizer, else the first path.

Example:
    >>> from ckptkit.converters.formats.tf1.proto import field_bytes, field_varint
    >>> ref = lambda node, name: field_bytes(1, field_varint(1, node) + field_bytes(2, name.encode()))
    >>> attr = lambda key: field_bytes(2, field_bytes(1, b"VARIABLE_VALUE") + field_bytes(3, key.encode()))
    >>> graph = b"".join(field_bytes(1, node) for node in (
    ...     ref(1, "optimizer") + ref(2, "model"),                     # 0: root
    ...     ref(3, "_trainable_variables"),                            # 1: optimizer
    ...     ref(4, "dense"),                                           # 2: model
    ...     ref(5, "0"),                                               # 3: optimizer's list
    ...     ref(5, "kernel"),                                          # 4: model/dense
    ...     attr("optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE")))  # 5: the variable
    >>> names = readable_names(graph)
    >>> names["optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"]
    TF2Name(name='model/dense/kernel', is_slot=False)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ckptkit.converters.formats.tf1.proto import ProtoError, first, parse_fields
from ckptkit.converters.tensors import ROLE_OPTIMIZER, classify_role

__all__ = ["OBJECT_GRAPH_KEY", "TF2Name", "readable_names", "escape_segment"]

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass(frozen=True)
class TF2Name:
    name: str
    is_slot: bool


@dataclass
class _Node:
    children: list[tuple[int, str]]
    attributes: list[tuple[str, str]]  # (attribute name, checkpoint key)
    slots: list[tuple[int, str, int]]  # (original variable node, slot name, slot variable node)


def escape_segment(name: str) -> str:
    """TF's escaping of one object-path segment: ``.`` -> ``..``, ``/`` -> ``.S``."""
    return name.replace(".", "..").replace("/", ".S")


def _text(value) -> str:
    if not isinstance(value, bytes):
        raise ProtoError("a string field has the wrong wire type")
    return value.decode("utf-8", "replace")


def _message(value) -> dict[int, list]:
    if not isinstance(value, bytes):
        raise ProtoError("a message field has the wrong wire type")
    return parse_fields(value)


def _parse_node(raw) -> _Node:
    f = _message(raw)
    children = [(first(c, 1, 0), _text(first(c, 2, b"", bytes))) for c in map(_message, f.get(1, []))]
    attributes = [(_text(first(a, 1, b"", bytes)), _text(first(a, 3, b"", bytes))) for a in map(_message, f.get(2, []))]
    slots = [(first(s, 1, 0), _text(first(s, 2, b"", bytes)), first(s, 3, 0)) for s in map(_message, f.get(3, []))]
    return _Node(children, attributes, slots)


def _paths_from(nodes: list[_Node], start: int, prefix: str, seen_limit: int) -> dict[int, str]:
    """Breadth-first: the first path to every node reachable from ``start``."""
    paths = {start: prefix}
    queue = deque([start])
    while queue and len(paths) <= seen_limit:
        node = queue.popleft()
        for child, name in nodes[node].children:
            if 0 <= child < len(nodes) and child not in paths:
                paths[child] = f"{paths[node]}/{escape_segment(name)}"
                queue.append(child)
    return paths


def _best_paths(nodes: list[_Node]) -> dict[int, str]:
    """Per node: the first path (root children in order) that is not optimizer state, else the first."""
    best: dict[int, str] = {}
    fallback: dict[int, str] = {}
    for child, name in nodes[0].children if nodes else []:
        if not 0 <= child < len(nodes):
            continue
        for node, path in _paths_from(nodes, child, escape_segment(name), len(nodes)).items():
            fallback.setdefault(node, path)
            if classify_role(path) != ROLE_OPTIMIZER:
                best.setdefault(node, path)
    return {**fallback, **best}


def readable_names(graph: bytes) -> dict[str, TF2Name]:
    """checkpoint key -> readable object path (``model/dense/kernel``) for every attribute.

    Slot variables of legacy optimizers keep their key's path without ``/.ATTRIBUTES/VARIABLE_VALUE``
    and are flagged ``is_slot``.

    Raises:
        ProtoError: if ``graph`` is not a TrackableObjectGraph.
    """
    nodes = [_parse_node(raw) for raw in parse_fields(graph).get(1, [])]
    paths = _best_paths(nodes)
    slot_nodes = {slot for node in nodes for _, _, slot in node.slots}
    names: dict[str, TF2Name] = {}
    for index, node in enumerate(nodes):
        for attribute, key in node.attributes:
            is_slot = index in slot_nodes
            base = key[:-len(_VALUE_SUFFIX)] if key.endswith(_VALUE_SUFFIX) else key
            path = paths.get(index) if not is_slot else None
            if path is None:
                names[key] = TF2Name(base, is_slot)
            else:
                names[key] = TF2Name(path if attribute == "VARIABLE_VALUE" else f"{path}/.ATTRIBUTES/{attribute}",
                                     is_slot)
    return names
