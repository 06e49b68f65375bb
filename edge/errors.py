"""One domain exception per area, all rooted here so the CLI can report them cleanly."""


class ShelfwatchError(Exception):
    """Base of every error the appliance reports to a user (CLI exit 1, HTTP 4xx)."""


class ConfigError(ShelfwatchError):
    """A configuration file or value is invalid."""


class ImageError(ShelfwatchError):
    """An image could not be decoded, is too large, or is otherwise unusable."""


class ImageTooLargeError(ImageError):
    """An image is over the configured file size or pixel limit (the web answers 413)."""


class AnnotationError(ShelfwatchError):
    """Annotations, a label or a split request are invalid: bad coordinates, unknown label (the web answers 400)."""


class StoreError(ShelfwatchError):
    """The dataset store on disk cannot be used (written by a newer version, unreadable)."""


class DatasetError(ShelfwatchError):
    """A dataset archive, folder or annotation file is malformed."""


class NotFoundError(ShelfwatchError):
    """A referenced object (image, label, camera, model) does not exist."""


class ConflictError(ShelfwatchError):
    """The request conflicts with the current state (label in use, duplicate name)."""


class BundleError(ShelfwatchError):
    """A model bundle is malformed, tampered with, or signed by an untrusted key."""


class CameraError(ShelfwatchError):
    """A camera source is missing, cannot be opened, or stopped delivering frames."""


class EngineError(ShelfwatchError):
    """An inference engine cannot load a model or run it."""


class TrainerError(ShelfwatchError):
    """The trainer service refused a request, failed a job, or could not be reached."""
