"""Per camera, between the estimator and the message core, shared by the live node and bag replay: what to publish
(``plan``), the stages after the estimator (``stages``), and the frame path itself (``camera_outputs``)."""

from .camera_outputs import CameraOutputs, FrameMessages
from .plan import CloudLayout, OutputPlan
from .staging import HostStaging
from .stages import FrameContext, FrameStage

__all__ = ["CameraOutputs", "CloudLayout", "FrameContext", "FrameMessages", "FrameStage", "HostStaging",
           "OutputPlan"]
