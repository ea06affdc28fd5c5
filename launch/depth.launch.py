"""Start the semantic depth node (and optionally rviz2 showing the camera, depth, semantics and points).

    ros2 launch semantic_depth_ros depth.launch.py model_path:=/path/model.pt image:=/camera/image_raw \
        camera_info:=/camera/camera_info use_rviz:=true

The processes started here get the package's Fast DDS profile (config/fastdds.xml: a shared-memory segment that
holds a whole frame of outputs and a 100 ms heartbeat) unless FASTRTPS_DEFAULT_PROFILES_FILE is already set or
``dds_profile:=''`` is given; with Fast DDS defaults a subscriber to all outputs sees ~3 s stalls per frame.
"""

import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# share/semantic_depth_ros/launch/ -> share/semantic_depth_ros/ (the same layout in the source tree)
SHARE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS_FILE = SHARE_DIR / "config" / "depth_node.yaml"
RVIZ_CONFIG = SHARE_DIR / "config" / "depth.rviz"
DDS_PROFILE = SHARE_DIR / "config" / "fastdds.xml"
# Fast DDS 2.x (ROS 2 Jazzy's rmw_fastrtps) reads the first; a user who set either keeps their own configuration
DDS_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
USER_DDS_PROFILE_ENVS = (DDS_PROFILE_ENV, "FASTDDS_DEFAULT_PROFILES_FILE")
PACKAGE = "semantic_depth_ros"
EXECUTABLE = "depth_node"


def default_dds_profile() -> str:
    """The shipped Fast DDS profile, or "" (leave the environment alone) when the user already names one."""
    return "" if any(name in os.environ for name in USER_DDS_PROFILE_ENVS) else str(DDS_PROFILE)


def generate_launch_description() -> LaunchDescription:
    """Arguments model_path, image, camera_info, namespace, params_file, use_rviz, rviz_fixed_frame, dds_profile."""
    model_path = LaunchConfiguration("model_path")
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    use_rviz = LaunchConfiguration("use_rviz")
    fixed_frame = LaunchConfiguration("rviz_fixed_frame")
    dds_profile = LaunchConfiguration("dds_profile")
    return LaunchDescription([
        DeclareLaunchArgument("model_path", default_value="",
                              description="model file (.pt or .onnx); overrides model_path of the params file"),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="camera image topic (its /compressed sub-topic with input_transport "
                                          "compressed)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="camera_info topic of the image"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("params_file", default_value=str(DEFAULT_PARAMS_FILE),
                              description="node parameters YAML"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="start rviz2 showing the image, depth colour, semantic colour and points"),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="camera_optical_frame",
                              description="rviz2 fixed frame: the camera image's frame_id"),
        DeclareLaunchArgument("dds_profile", default_value=default_dds_profile(),
                              description=f"Fast DDS XML profile ({DDS_PROFILE_ENV}) of the processes started "
                                          "here; default: the package's config/fastdds.xml unless "
                                          f"{DDS_PROFILE_ENV} is already set; empty: keep the environment"),
        SetEnvironmentVariable(DDS_PROFILE_ENV, dds_profile,
                               condition=IfCondition(NotEqualsSubstitution(dds_profile, ""))),
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="depth_node",
            namespace=namespace,
            output="screen",
            # ParameterValue(str): a path must stay a string even when YAML would read it as a number or null
            parameters=[params_file, {"model_path": ParameterValue(model_path, value_type=str)}],
            remappings=[
                ("image", image),
                ("image/compressed", [image, "/compressed"]),
                ("camera_info", camera_info),
            ],
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="depth_rviz",
            namespace=namespace,
            arguments=["-d", str(RVIZ_CONFIG), "-f", fixed_frame],
            remappings=[("image", image)],
            condition=IfCondition(use_rviz),
        ),
    ])
