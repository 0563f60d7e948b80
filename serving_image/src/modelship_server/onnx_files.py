"""Which files beside it an ONNX model reads: tensors may keep their data in external files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def external_data_files(path: Path) -> list[str]:
    """The files (relative to the model's directory) that its tensors say hold their data; empty for a
    self-contained model. Reads the graph only, not the data."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    files = {
        entry.value
        for tensor in _tensors(model.graph)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return sorted(files)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph: initializers, and constants in node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)
