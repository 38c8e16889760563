"""GPW models: store (download/cache/verify) and inference.

Models by Earthrise Media (Global Plastic Watch), CC BY-NC 4.0; never committed here.
Importing this package does not import TensorFlow (only :mod:`.infer` does, lazily).
"""

from plastics_core.models.checksums import DEFAULT_ENSEMBLE, DEFAULT_MODEL, DEFAULT_PATCH_MODEL, SHA256
from plastics_core.models.store import ModelRef, ModelStore, sha256_file

__all__ = [
    "DEFAULT_ENSEMBLE",
    "DEFAULT_MODEL",
    "DEFAULT_PATCH_MODEL",
    "SHA256",
    "ModelRef",
    "ModelStore",
    "sha256_file",
]
