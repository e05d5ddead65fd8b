"""Readers of the real probe datasets, each in its published on-disk format.

Items are dicts of tensors (only the keys a dataset has): "video" uint8 (C, T, H, W); "depth" float32
(T, H, W) metres, 0 = invalid; "intrinsics" float32 (T, 3, 3) pixels; "world_to_camera" float32 (T, 4, 4),
OpenCV axes (x right, y down, z forward); "tracks" float32 (P, T, 2) pixel (x, y); "occluded" bool (P, T);
"query_points" float32 (P, 3) (t, y, x); "boxes" float32 (O, T, 4) pixel (x0, y0, x1, y1); "box_visible"
bool (O, T); "label" int64; "index" int64, the entry's position in
``dataset.names``; and "skipped", the int number of unusable items passed over. Pixel coordinates put
(0, 0) at the image's top-left corner (see :mod:`fourd.data.readers.geometry`). Unusable entries never
crash a reader: they are listed in ``dataset.skipped`` (name -> reason) and reported in warnings.
"""

from fourd.data.readers.actions import ActionClipDataset, ActionList, kinetics_list, something_something_list
from fourd.data.readers.base import EntryError, SkippingDataset
from fourd.data.readers.geometry import resize_with_geometry
from fourd.data.readers.kubric import KubricDataset, kubric_record_from_arrays
from fourd.data.readers.perception_test import PerceptionTestDataset
from fourd.data.readers.realestate10k import RealEstate10KDataset, read_camera_file
from fourd.data.readers.scannet import ScanNetDataset
from fourd.data.readers.tapvid import QUERY_MODES, TapVidDataset
from fourd.data.readers.waymo import WaymoBoxDataset

__all__ = [
    "QUERY_MODES",
    "ActionClipDataset",
    "ActionList",
    "EntryError",
    "KubricDataset",
    "PerceptionTestDataset",
    "RealEstate10KDataset",
    "ScanNetDataset",
    "SkippingDataset",
    "TapVidDataset",
    "WaymoBoxDataset",
    "kinetics_list",
    "kubric_record_from_arrays",
    "read_camera_file",
    "resize_with_geometry",
    "something_something_list",
]
