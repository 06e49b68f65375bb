"""The dataset store: SQLite rows and content-addressed image files under data_dir, plus the readiness verdict."""

from edge.errors import AnnotationError, ImageTooLargeError
from edge.store.readiness import readiness
from edge.store.records import Annotations, ImageRecord, LabelRecord
from edge.store.store import DatasetStore

__all__ = [
    "AnnotationError",
    "Annotations",
    "DatasetStore",
    "ImageRecord",
    "ImageTooLargeError",
    "LabelRecord",
    "readiness",
]
