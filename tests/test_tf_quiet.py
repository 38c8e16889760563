"""TensorFlow's start-up lines never reach a user's stderr (plastics_core.models.tf_quiet).

TensorFlow writes its oneDNN notice before absl's logging is initialised, so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence it. TensorFlow turns oneDNN on by itself on CPUs with
AVX-512/AMX; ``TF_ENABLE_ONEDNN_OPTS=1`` turns it on on any x86-64 CPU, so these tests reproduce
the notice on every CI machine. Each runs a fresh interpreter with the environment a user has
(``user_env``: no TensorFlow, Keras, absl or XLA variable of the test session).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plastics_core.models.tf_quiet import is_notice
from tests._env import user_env

REPO = Path(__file__).resolve().parents[1]
NOISE = ("oneDNN", "absl::", "cpu_feature_guard", "port.cc", "rebuild TensorFlow")


def _python(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = user_env(PYTHONPATH=str(REPO), **extra)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )


def test_notice_pattern_keeps_errors() -> None:
    assert is_notice("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert is_notice("I0000 00:00:1796581751.565545   13075 port.cc:153] oneDNN custom operations are on.")
    assert is_notice("W1206 18:00:01.000000   13075 cpu_feature_guard.cc:227] This TensorFlow binary ...")
    assert not is_notice("E1206 18:00:01.000000   13075 some.cc:1] a real error")
    assert not is_notice("Traceback (most recent call last):")
    assert not is_notice("MemoryError")


@pytest.mark.slow
def test_plain_import_prints_the_notice_here() -> None:
    """The control: without the project's import, this machine prints the lines (so the test
    below can fail)."""
    proc = _python("import tensorflow", TF_ENABLE_ONEDNN_OPTS="1")
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN custom operations are on" in proc.stderr


@pytest.mark.slow
def test_inference_imports_tensorflow_silently_and_keeps_other_stderr() -> None:
    code = (
        "import os, sys\n"
        "from plastics_core.models.infer import configure_devices, load_keras\n"
        "from plastics_core.models.tf_quiet import stderr_notices_dropped\n"
        "print('device', configure_devices())\n"
        "import keras, tensorflow as tf\n"
        "print(float(tf.reduce_sum(tf.ones((3,)))))\n"
        "with stderr_notices_dropped():\n"
        "    os.write(2, b'E1206 18:00:01.000000 1 x.cc:1] kept error\\n')\n"
        "    os.write(2, b'I0000 00:00:17.1 1 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "print('python stderr stays', file=sys.stderr)\n"
    )
    proc = _python(code, TF_ENABLE_ONEDNN_OPTS="1")
    assert proc.returncode == 0, proc.stderr
    assert "device CPU" in proc.stdout and "3.0" in proc.stdout
    assert "kept error" in proc.stderr and "python stderr stays" in proc.stderr
    for noise in NOISE:
        assert noise not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_patch_grid_on_the_default_path_prints_nothing(shared_dir: Path) -> None:
    """The CPU default path's patch grid runs its conv stack through TensorFlow: no line either."""
    code = (
        "import numpy as np\n"
        "from plastics_core.models import DEFAULT_PATCH_MODEL\n"
        "from plastics_core.models.store import ModelStore\n"
        "from plastics_core.models.patch_classifier import PatchClassifier\n"
        f"ref = ModelStore({str(shared_dir / 'models')!r}).resolve(DEFAULT_PATCH_MODEL)\n"
        "clf = PatchClassifier.from_ref(ref)\n"
        "img = np.random.default_rng(0).uniform(0, 3000, (61, 61, clf.channels)).astype('float32')\n"
        "print(clf.predict_grid(img).shape)\n"
    )
    proc = _python(code, TF_ENABLE_ONEDNN_OPTS="1")
    assert proc.returncode == 0, proc.stderr
    assert "(3, 3)" in proc.stdout
    assert "tensorflow" not in proc.stderr.lower() and "oneDNN" not in proc.stderr, proc.stderr
