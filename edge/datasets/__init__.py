"""Dataset formats (COCO, YOLO, Pascal VOC, folder-per-class, CSV) over one in-memory model."""

from edge.datasets.model import Box, Dataset, LabelInfo, Sample

__all__ = ["Box", "Dataset", "LabelInfo", "Sample"]
