"""Committed sha256 table of the Global Plastic Watch model files the project knows.

The models are by Earthrise Media (Global Plastic Watch), licensed CC BY-NC 4.0; they are
data, never committed here. Keys are paths relative to a model store root (ensemble members
live under their ensemble folder). A file whose sha256 differs from this table is refused.
"""

from __future__ import annotations

#: Default pixel spectrogram classifier (the seed's ``model``).
DEFAULT_MODEL = "spectrogram_v0.0.11_2021-07-13.h5"
#: Default ensemble folder (the seed's ``ensemble_model``), combined by median.
DEFAULT_ENSEMBLE = "v0.0.11_ensemble-8-25-21"
#: The only patch classifier available (45 x 45 px, 12 channels = one composite).
DEFAULT_PATCH_MODEL = "v1.1.0_4-23-21_patch_classifier_45px_patch.h5"

_ENS = DEFAULT_ENSEMBLE + "/spectrogram_v0.0.11_unit_norm_{}_2021-08-25.h5"

#: relative path -> sha256 (hex, lower case).
SHA256: dict[str, str] = {
    DEFAULT_MODEL: "9ad795ffbff74fc2edea2ba9eb2c9fe8423df1f8981d088026d4f2b2e64a2d4b",
    DEFAULT_PATCH_MODEL: "51fb184dcf2deff559179557912e8b0208be02cd214b26f5182ea61301a3dfe5",
    _ENS.format("a"): "931a17701c32c97734fd2d65c5114fd3a6dbcb6160d4dd7d9968cb6a9e83432a",
    _ENS.format("b"): "4471097099bb4db3cfedcb8d59c7162e105ed0e224b0a495a590358e3d6f283b",
    _ENS.format("c"): "7705d65bf4ff470727ec656d4b6569a0feadf9960708a2fa1c7c6f78a67d8f50",
    _ENS.format("d"): "b7f8ab76aca68807c8fca2612e7a3cb04e9dc4e2dd2aa66a7c40e3e7b8c0c542",
    _ENS.format("e"): "5fcbea4bee1561d48268d317e37931c8d601bb7f4a7e9d06dfa82615513f7781",
    _ENS.format("f"): "57e243e1f1d11a8b03440e049c44fe4425eaee3716f6b5869b42ba5c53d4a2f3",
}
