"""Which inference path runs the models: the numpy CPU path, the compiled JAX path, or Keras.

``$PLASTICS_INFER_DEVICE`` (read at call time; the older ``$PLASTICS_PIXEL_DEVICE`` is read when
it is unset), or a classifier's ``device`` field, one of:

- ``auto`` (default): the compiled JAX path (:mod:`.compiled`) when JAX's default backend is a
  GPU; else Keras when the Keras backend sees a GPU (a worker with TensorFlow/torch but no
  CUDA JAX); else the numpy CPU path (on 2 CPU cores it is faster than JAX's CPU backend:
  docs/PERFORMANCE.md);
- ``cpu``: the numpy path (pixel models: :mod:`.pixel_fast`; patch grid: shared conv stack);
- ``jax``: the compiled JAX path on whatever backend JAX has (CPU included);
- ``keras``: direct Keras calls in large batches (pixel models only; the patch grid then
  takes the ``cpu`` path).

``$PLASTICS_INFER_PRECISION`` (or a classifier's ``precision`` field): ``exact`` (default) or
``fast``; it affects the JAX path only (the numpy and Keras paths are always exact fp32).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from plastics_core.errors import ModelError

DEVICES = ("auto", "cpu", "jax", "keras")


def prepare_jax() -> None:
    """Before JAX starts: ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless set, so JAX takes GPU memory
    as it needs it instead of 75 % up front and several worker processes can share one GPU."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


@lru_cache(maxsize=1)
def jax_gpu() -> bool:
    """Whether JAX is installed and its default backend is an accelerator (checked once).

    :func:`prepare_jax` first."""
    prepare_jax()
    try:
        import jax
    except ImportError:
        return False
    try:
        return jax.default_backend() != "cpu"
    except RuntimeError:
        return False


def requested(device: str | None = None) -> str:
    """The requested device: ``device``, else the environment (see module docstring), else ``auto``."""
    mode = (
        device or os.environ.get("PLASTICS_INFER_DEVICE") or os.environ.get("PLASTICS_PIXEL_DEVICE") or "auto"
    )
    if mode not in DEVICES:
        raise ModelError(
            f"inference device {mode!r} (PLASTICS_INFER_DEVICE): use one of {', '.join(DEVICES)}"
        )
    return mode


def choose(device: str | None, keras_gpu: Callable[[], bool]) -> str:
    """The path to run: ``"numpy"``, ``"jax"`` or ``"keras"``. ``keras_gpu()`` says whether the
    Keras backend sees a GPU (called only when ``auto`` finds no JAX GPU)."""
    mode = requested(device)
    if mode == "cpu":
        return "numpy"
    if mode in ("jax", "keras"):
        return mode
    if jax_gpu():
        return "jax"
    try:
        return "keras" if keras_gpu() else "numpy"
    except ImportError:  # no TensorFlow / Keras backend installed: the numpy path
        return "numpy"


PRECISIONS = ("exact", "fast")


def precision(value: str | None = None) -> str:
    """``value``, else ``$PLASTICS_INFER_PRECISION`` (read now), else ``exact``; validated."""
    v = value or os.environ.get("PLASTICS_INFER_PRECISION") or "exact"
    if v not in PRECISIONS:
        raise ModelError(f"precision {v!r} (PLASTICS_INFER_PRECISION): use one of {', '.join(PRECISIONS)}")
    return v
