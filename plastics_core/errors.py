"""The documented exception types of plastics_core.

Every user-facing failure raises a subclass of :class:`PlasticsError` whose message is
one line naming the problem and the fix. The CLI turns these into exit code 2 with no
traceback; Dagster shows the same message in the step failure.
"""


class PlasticsError(ValueError):
    """Base class: bad input or configuration a user can fix."""


class RoiError(PlasticsError):
    """An ROI file or ROI name is unusable (missing, not GeoJSON, empty, not polygonal...)."""


class ParameterError(PlasticsError):
    """A run parameter is out of range (threshold outside [0, 1], sigma <= 0, bad window...)."""


class ModelError(PlasticsError):
    """A model or ensemble is unknown, unreadable, or incompatible with the input bands."""


class ChecksumError(ModelError):
    """A model file's sha256 does not match the expected checksum."""


class ImageryError(PlasticsError):
    """Imagery is unusable: wrong band count, wrong dtype, unreadable file, bad source config."""


class CredentialsError(PlasticsError):
    """A service needs credentials that are missing from the environment."""
