"""Import TensorFlow (and Keras on it) without its start-up lines on stderr.

TensorFlow writes some lines to file descriptor 2 while its C++ library loads, before absl's
logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. On CPUs with AVX-512 or
AMX these are::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. You may see slightly ...

:func:`import_tensorflow` imports TensorFlow with descriptor 2 pointed at a temporary file, then
writes back every captured line that is not such a start-up notice (an ``I``/``W`` log line, the
absl pre-initialisation warning, the CUDA factory registrations of a CPU-only build): errors stay
visible, notices do not. Nothing about TensorFlow's kernels changes (oneDNN stays as TensorFlow
chose it), so numerical results are those of a plain ``import tensorflow``.

Every import of TensorFlow or Keras in this package goes through here; the default CPU path
(:mod:`.pixel_fast`, :mod:`.patch_fast`) never imports either.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

#: A start-up notice: glog/absl-style INFO or WARNING lines (``I0000 00:00:...``, ``W1206 ...``),
#: absl's pre-initialisation warning, TensorFlow's CPU-feature and CUDA-registration notices.
NOTICE = re.compile(
    r"^\s*("
    r"[IW]\d{4} \d\d:\d\d:\d\d"  # absl / glog INFO and WARNING lines
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "  # TensorFlow's own logging format
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|E\d{4} .*Unable to register cu(DNN|FFT|BLAS) factory"  # CPU-only build, CUDA plugins absent
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r")"
)

_LOCK = threading.Lock()


def is_notice(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up notices (see :data:`NOTICE`)."""
    return bool(NOTICE.match(line))


@contextmanager
def stderr_notices_dropped() -> Iterator[None]:
    """Within the block, descriptor 2 goes to a temporary file; afterwards every captured line that
    is not a start-up notice is written to stderr. Python's ``sys.stderr`` is flushed on both
    sides, so Python-level output keeps its order."""
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines() if not is_notice(ln)]
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")
                    sys.stderr.flush()


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` without its start-up notices (``TF_CPP_MIN_LOG_LEVEL`` defaults to
    ``2`` for the rest of the process: TensorFlow's own INFO/WARNING lines stay off)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_notices_dropped():
        import tensorflow

    module: ModuleType = tensorflow
    return module


def import_keras() -> ModuleType:
    """``import keras`` on its configured backend; with the TensorFlow backend (the default)
    TensorFlow is imported first through :func:`import_tensorflow`."""
    if "keras" not in sys.modules and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow()
    import keras

    module: ModuleType = keras
    return module
