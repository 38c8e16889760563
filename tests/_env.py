"""The environment of a user's shell, for tests that run the CLI as a user does."""

from __future__ import annotations

import os

#: Variables that tune TensorFlow, Keras, absl, XLA or JAX (the test session sets some of them).
TUNING_PREFIXES = ("TF_", "KERAS_", "ABSL_", "XLA_", "JAX_", "GLOG_", "PLASTICS_INFER_")


def user_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without :data:`TUNING_PREFIXES` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(TUNING_PREFIXES)}
    return {**env, **extra}
