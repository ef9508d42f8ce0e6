"""Readable names for TF2 object-based checkpoints, from ``_CHECKPOINTABLE_OBJECT_GRAPH``.

A TF2 key such as ``optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE`` names the
*first* path TensorFlow found to a variable, which is often not the model's own path. We walk
the TrackableObjectGraph (tensorflow/core/protobuf/trackable_object_graph.proto) and name each
tensor by its best path: the shortest path that avoids optimizer objects, else the shortest.

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
    TF2Name(name='model/dense/kernel', is_optimizer=False)
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from ckptkit.converters.formats.tf1.messages import OBJECT_GRAPH_KEY
from ckptkit.converters.formats.tf1.proto import ProtoError, first, parse_fields
from ckptkit.converters.tensors import ROLE_OPTIMIZER, classify_role

__all__ = ["OBJECT_GRAPH_KEY", "TF2Name", "readable_names", "escape_segment"]

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass(frozen=True)
class TF2Name:
    name: str
    is_optimizer: bool  # a slot variable, or reachable only through an optimizer object


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


_OPTIMIZER_SEGMENT = re.compile(r"optimizer|^opt$|^keras_opt$", re.IGNORECASE)  # also .OPTIMIZER_SLOT


def _breadth_first(nodes: list[_Node], paths: dict[int, str], *, avoid_optimizer: bool) -> None:
    """Extend ``paths`` (node -> first path) breadth-first from the root, in child order."""
    queue = deque([0])
    seen = {0}
    while queue:
        node = queue.popleft()
        for child, name in nodes[node].children:
            if not 0 <= child < len(nodes) or child in seen:
                continue
            if avoid_optimizer and _OPTIMIZER_SEGMENT.search(name):
                continue
            seen.add(child)
            prefix = paths[node] + "/" if node else ""
            paths.setdefault(child, prefix + escape_segment(name))
            queue.append(child)


def _best_paths(nodes: list[_Node]) -> tuple[dict[int, str], set[int]]:
    """Per node: its shortest path that avoids optimizer objects, else its shortest path; and the
    set of nodes reachable only through an optimizer."""
    paths: dict[int, str] = {0: ""} if nodes else {}
    if nodes:
        _breadth_first(nodes, paths, avoid_optimizer=True)
    model_nodes = set(paths)
    if nodes:
        _breadth_first(nodes, paths, avoid_optimizer=False)
    return paths, set(paths) - model_nodes


def readable_names(graph: bytes) -> dict[str, TF2Name]:
    """checkpoint key -> readable object path (``model/dense/kernel``) for every attribute.

    Slot variables of legacy optimizers keep their key's path without ``/.ATTRIBUTES/VARIABLE_VALUE``;
    they and tensors reachable only through an optimizer object are flagged ``is_optimizer``.

    Raises:
        ProtoError: if ``graph`` is not a TrackableObjectGraph.
    """
    nodes = [_parse_node(raw) for raw in parse_fields(graph).get(1, [])]
    paths, optimizer_only = _best_paths(nodes)
    slot_nodes = {slot for node in nodes for _, _, slot in node.slots}
    names: dict[str, TF2Name] = {}
    for index, node in enumerate(nodes):
        for attribute, key in node.attributes:
            is_slot = index in slot_nodes
            base = key[:-len(_VALUE_SUFFIX)] if key.endswith(_VALUE_SUFFIX) else key
            path = None if is_slot else paths.get(index)
            if not path:
                names[key] = TF2Name(base, True if is_slot else classify_role(base) == ROLE_OPTIMIZER)
            else:
                suffix = "" if attribute == "VARIABLE_VALUE" else f"/.ATTRIBUTES/{attribute}"
                names[key] = TF2Name(path + suffix, index in optimizer_only)
    return names
