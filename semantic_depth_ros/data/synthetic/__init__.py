"""Generated street scenes in two domains: RGB, metric depth, Cityscapes train ids and a simulated LiDAR scan.

The stand-ins for the paper's heterogeneous data: ``kitti_like`` (its datasets carry depth) and
``cityscapes_like`` (its datasets carry semantics); :mod:`.domains` describes both. They share one scene grammar
(:mod:`.layout`): a road (with lane markings) between curbs, sidewalks, grass, building blocks with per-segment
setbacks, cars, poles with signs, trees and hedges, and sky, ray-cast exactly (:mod:`.raycast`), shaded
(:mod:`.shading`) and scanned by a simulated LiDAR (:mod:`.lidar`); :mod:`.render` is the API and :mod:`.dataset`
the torch Dataset.

Frames: world x forward along the street, y left, z up (road at z = 0); ``base_link`` has the same axes and
moves with the vehicle. ``A_to_B`` 4x4 matrices map coordinates in frame A to frame B: ``p_B = A_to_B @ [p_A, 1]``
(so the pose of B in A, as ``/tf_static`` stores it with parent A and child B, is ``inv(A_to_B)``).
Depth is the optical-frame z of the nearest hit at each pixel centre (metres, 0 = sky or beyond 200 m).
Every output is a deterministic function of (domain, index, seed, size).
"""

from semantic_depth_ros.data.synthetic.dataset import SyntheticDataset
from semantic_depth_ros.data.synthetic.domains import DOMAINS, LABELS, MAX_DEPTH_M, TASKS, domain_intrinsics
from semantic_depth_ros.data.synthetic.render import SyntheticFrame, render_frame

__all__ = [
    "DOMAINS", "LABELS", "MAX_DEPTH_M", "TASKS", "SyntheticDataset", "SyntheticFrame", "domain_intrinsics",
    "render_frame",
]
