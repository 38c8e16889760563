"""Model names of a run: the pixel, patch and ensemble keys of the committed checksum table.

Model roles follow :data:`plastics_core.models.checksums.SHA256`: pixel (spectrogram) models
take ``(12 bands, 2 dates, 1)`` pixel stacks and their file names do not contain ``patch``;
patch classifiers take ``(h, w, 12 * k)`` windows and their file names contain ``patch``; an
ensemble is a folder whose members are pixel models.
"""

from __future__ import annotations

from plastics_core.errors import ModelError
from plastics_core.models.checksums import SHA256


def _kind(key: str) -> str:
    return "patch" if "patch" in key.rsplit("/", 1)[-1] else "pixel"


def available_models(kind: str | None = None) -> list[str]:
    """Known single-model names (top-level files of the table), optionally of one ``kind``."""
    return sorted(k for k in SHA256 if "/" not in k and (kind is None or _kind(k) == kind))


def available_ensembles() -> list[str]:
    """Known ensemble folders."""
    return sorted({k.split("/", 1)[0] for k in SHA256 if "/" in k})


def model_key(name: str, kind: str) -> str:
    """The table key of model ``name`` (full key or bare file name) used as a ``kind`` model;
    ModelError naming the available ``kind`` models when it is unknown or of the other kind."""
    role = "pixel (spectrogram) model" if kind == "pixel" else "patch classifier"
    choices = ", ".join(available_models(kind))
    text = str(name).strip().strip("/") if isinstance(name, str) else ""
    matches = [k for k in SHA256 if k == text or k.rsplit("/", 1)[-1] == text] if text else []
    if len(matches) != 1:
        raise ModelError(f"unknown {role} {name!r}: available are {choices}")
    key = matches[0]
    if _kind(key) != kind:
        shape = "12 bands x 2 dates per pixel" if kind == "pixel" else "h x w x 12k windows"
        raise ModelError(
            f"{key} is a {_kind(key)} model, incompatible with the {role} input shape ({shape}): "
            f"use one of {choices}"
        )
    return key


def ensemble_keys(folder: str) -> list[str]:
    """Member keys of ensemble ``folder``; ModelError listing the ensembles when unknown."""
    prefix = (str(folder).strip().strip("/") if isinstance(folder, str) else "") + "/"
    keys = sorted(k for k in SHA256 if k.startswith(prefix)) if prefix != "/" else []
    if not keys:
        raise ModelError(
            f"unknown ensemble {folder!r}: available ensembles are {', '.join(available_ensembles())}"
        )
    bad = [k for k in keys if _kind(k) != "pixel"]
    if bad:  # pragma: no cover - the committed table has none
        raise ModelError(
            f"ensemble {folder} holds non-pixel models ({', '.join(bad)}): use a spectrogram ensemble"
        )
    return keys


def check_model_names(model: str, patch_model: str, ensemble_model: str) -> None:
    """Validate the three model parameters of a run (see module docstring); raises ModelError."""
    model_key(model, "pixel")
    model_key(patch_model, "patch")
    ensemble_keys(ensemble_model)
