"""The Cityscapes label table: the 19 train ids' names and colours, and the special ids (the one home for them).

The network's semantic head predicts these train ids; datasets map their labels to them; evaluation names its
per-class IoU with them; the node and the pictures colour them with the palette.
"""

from __future__ import annotations

import numpy as np

CITYSCAPES_TRAIN_ID_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
NUM_CLASSES = len(CITYSCAPES_TRAIN_ID_NAMES)

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
SKY_TRAIN_ID = SKY
IGNORE_LABEL = 255  # label images: pixels without a class (void); losses and mIoU skip them

# Official colours of the 19 train ids (cityscapesScripts, helpers/labels.py), RGB.
CITYSCAPES_PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip
CITYSCAPES_PALETTE.setflags(write=False)
