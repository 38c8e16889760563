"""Read a Keras HDF5 model file (``.h5``) with h5py alone: layer configs and weights.

No TensorFlow or Keras: a GPU worker builds the compiled inference path (:mod:`.compiled`)
and the float64 reference (:mod:`.reference`) from what this module returns. The file's
``model_config`` attribute (JSON, a ``Sequential`` or functional model with a linear chain
of layers) gives the layers in order; ``model_weights/<layer>/`` holds each layer's arrays in
the order of its ``weight_names`` attribute (Conv2D / Dense: kernel, bias). Kernels keep the
Keras layouts: Conv2D ``(kh, kw, in, out)``, Dense ``(in, out)``; float32 as stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from plastics_core.errors import ModelError


@dataclass(frozen=True)
class Layer:
    """One layer: Keras class name (``Conv2D``, ``MaxPooling2D``, ``Dense``...), its config dict
    and its weight arrays (empty for weightless layers)."""

    kind: str
    config: dict[str, Any]
    weights: tuple[np.ndarray, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.kind))


@dataclass(frozen=True)
class H5Model:
    """The layers of a Keras model file in call order, and its input shape without the batch axis."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]

    def weighted(self) -> list[Layer]:
        """Layers that hold weights, in order."""
        return [la for la in self.layers if la.weights]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def _input_shape(cfg: dict[str, Any], layers: list[dict[str, Any]]) -> tuple[int, ...]:
    for la in layers:
        c = la.get("config", {})
        shape = c.get("batch_input_shape") or c.get("batch_shape")
        if shape:
            return tuple(int(s) for s in shape[1:])
    shape = cfg.get("build_input_shape")
    if shape:
        return tuple(int(s) for s in shape[1:])
    raise ModelError("model_config names no input shape: not a Keras model file this project can read")


@lru_cache(maxsize=16)
def read_h5(path: str) -> H5Model:
    """Layers (config + weights) and input shape of the Keras ``.h5`` file at ``path`` (cached)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ModelError(
                    f"{Path(path).name} has no model_config: save the model with its architecture"
                )
            cfg = json.loads(_text(raw))
            group = f["model_weights"] if "model_weights" in f else f
            arrays: dict[str, tuple[np.ndarray, ...]] = {}
            for lname in group.attrs.get("layer_names", []):
                g = group[_text(lname)]
                arrays[_text(lname)] = tuple(np.asarray(g[_text(w)]) for w in g.attrs.get("weight_names", []))
    except OSError as exc:
        raise ModelError(f"cannot read {Path(path).name} as HDF5 ({exc}): re-pull it from the store") from exc
    inner = cfg.get("config", {})
    entries = inner.get("layers", []) if isinstance(inner, dict) else inner
    if not entries:
        raise ModelError(f"{Path(path).name}: model_config lists no layers")
    layers = [
        Layer(e["class_name"], dict(e.get("config", {})), arrays.get(e.get("config", {}).get("name", ""), ()))
        for e in entries
    ]
    shape = _input_shape(inner if isinstance(inner, dict) else {}, entries)
    return H5Model(tuple(la for la in layers if la.kind != "InputLayer"), shape)
