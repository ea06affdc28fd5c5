"""Start the semantic depth node (plain or managed, one camera or several) and optionally rviz2 showing one camera.

    ros2 launch semantic_depth_ros depth.launch.py model_path:=/path/model.pt image:=/camera/image_raw \
        camera_info:=/camera/camera_info use_rviz:=true
    ros2 launch semantic_depth_ros depth.launch.py model_path:=/path/model.pt cameras:=front,left,right \
        image:=/{camera}/image_raw camera_info:=/{camera}/camera_info lifecycle:=true

With ``cameras`` (a comma list or ``[a, b]``), camera ``<name>`` is read from ``<namespace>/<name>/image`` and
served under ``<namespace>/<name>/``; ``image``/``camera_info`` containing ``{camera}`` remap each camera's input
(without it the per-camera inputs stay where they are). ``lifecycle:=true`` starts ``depth_lifecycle_node``
unconfigured: bring it up with ``ros2 lifecycle set /depth_node configure`` then ``activate``, or list it in
Nav2's lifecycle manager ``node_names``.

The processes started here get the package's Fast DDS profile (a shared-memory segment that holds a whole frame
of outputs and a 100 ms heartbeat; config/fastdds.xml for Fast DDS 2.x on Humble and Jazzy, config/fastdds3.xml for
Fast DDS 3.x on Kilted, in the variable that version reads: ``semantic_depth_ros.ros.distro``) unless
FASTRTPS_DEFAULT_PROFILES_FILE or FASTDDS_DEFAULT_PROFILES_FILE is already set or ``dds_profile:=''`` is given; with
Fast DDS defaults a subscriber to all outputs sees ~3 s stalls per frame.
"""

import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from semantic_depth_ros.ros.distro import USER_DDS_PROFILE_ENVS, dds_profile_variable, publication_mode
from semantic_depth_ros.ros.distro import default_dds_profile as package_dds_profile

# share/semantic_depth_ros/launch/ -> share/semantic_depth_ros/ (the same layout in the source tree)
SHARE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS_FILE = SHARE_DIR / "config" / "depth_node.yaml"
RVIZ_CONFIG = SHARE_DIR / "config" / "depth.rviz"
# the variable the installed Fast DDS reads its XML profile from (2.x: FASTRTPS_..., 3.x: FASTDDS_...)
DDS_PROFILE_ENV = dds_profile_variable()
PACKAGE = "semantic_depth_ros"
EXECUTABLE = "depth_node"
LIFECYCLE_EXECUTABLE = "depth_lifecycle_node"
NODE_NAME = "depth_node"
CAMERA_PLACEHOLDER = "{camera}"
# argument name -> (default, description); the node and rviz2 are built from their values at launch time
ARGUMENTS = {
    "model_path": ("", "model file (.pt or .onnx); when given, overrides model_path of the params file"),
    "image": ("/camera/image_raw", "camera image topic (its /compressed sub-topic with input_transport "
                                   "compressed); with cameras, a template such as /{camera}/image_raw"),
    "camera_info": ("/camera/camera_info", "camera_info topic of the image; with cameras, a template such as "
                                          "/{camera}/camera_info"),
    "namespace": ("", "namespace of the node and its outputs"),
    "params_file": (str(DEFAULT_PARAMS_FILE), "node parameters YAML"),
    "cameras": ("", "camera names sharing one network, e.g. front,left,right (empty: one camera; overrides the "
                    "params file's cameras)"),
    "lifecycle": ("false", "true: start the managed depth_lifecycle_node (unconfigured until a lifecycle manager "
                           "or `ros2 lifecycle set` configures and activates it)"),
    "use_rviz": ("false", "start rviz2 showing the image, depth colour, semantic colour and points"),
    "rviz_camera": ("", "with cameras: the camera rviz2 shows (default: the first)"),
    "rviz_fixed_frame": ("camera_optical_frame", "rviz2 fixed frame: the camera image's frame_id"),
}


def default_dds_profile() -> str:
    """The shipped Fast DDS profile, or "" (leave the environment alone) when the user already names one."""
    if any(name in os.environ for name in USER_DDS_PROFILE_ENVS):
        return ""
    return str(package_dds_profile(share_dir=SHARE_DIR))


def parse_cameras(text: str) -> list[str]:
    """``"front,left"`` or ``"[front, left]"`` -> ``["front", "left"]``; "" -> [] (the node validates the names)."""
    return [name.strip().strip("'\"") for name in text.strip().strip("[]").split(",") if name.strip()]


def is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _join(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


def _input_remappings(values: dict[str, str], cameras: list[str]) -> list[tuple[str, str]]:
    """Input remappings: the single camera's topics, or each camera's from the ``{camera}`` templates."""
    image, info = values["image"], values["camera_info"]
    if not cameras:
        return [("image", image), ("image/compressed", f"{image}/compressed"), ("camera_info", info)]
    remappings = []
    for camera in cameras:
        if CAMERA_PLACEHOLDER in image:
            remappings += [(f"{camera}/image", image.replace(CAMERA_PLACEHOLDER, camera)),
                           (f"{camera}/image/compressed", image.replace(CAMERA_PLACEHOLDER, camera) + "/compressed")]
        if CAMERA_PLACEHOLDER in info:
            remappings.append((f"{camera}/camera_info", info.replace(CAMERA_PLACEHOLDER, camera)))
    return remappings


def node_actions(values: dict[str, str]) -> list:
    """The depth node (plain or managed) and, with ``use_rviz``, rviz2, from the launch arguments' values."""
    cameras = parse_cameras(values["cameras"])
    overrides = {}  # an empty launch argument keeps the params file's value (a model_path set there, say)
    if values["model_path"]:
        overrides["model_path"] = ParameterValue(values["model_path"], value_type=str)
    if cameras:
        overrides["cameras"] = cameras
    lifecycle = is_true(values["lifecycle"])
    node_class = LifecycleNode if lifecycle else Node
    actions = [node_class(
        package=PACKAGE,
        executable=LIFECYCLE_EXECUTABLE if lifecycle else EXECUTABLE,
        name=NODE_NAME,
        namespace=values["namespace"],
        output="screen",
        # ParameterValue(str): a path must stay a string even when YAML would read it as a number or null
        parameters=[values["params_file"], overrides],
        remappings=_input_remappings(values, cameras),
    )]
    if is_true(values["use_rviz"]):
        shown = values["rviz_camera"] or (cameras[0] if cameras else "")
        rviz_namespace = _join(values["namespace"], shown) if shown else values["namespace"]
        image = values["image"].replace(CAMERA_PLACEHOLDER, shown) if shown else values["image"]
        remap_image = not cameras or CAMERA_PLACEHOLDER in values["image"]
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="depth_rviz",
            namespace=rviz_namespace,  # the config's relative topics resolve to the shown camera's outputs
            arguments=["-d", str(RVIZ_CONFIG), "-f", values["rviz_fixed_frame"]],
            remappings=[("image", image)] if remap_image else [],
        ))
    return actions


def _launch_nodes(context, *args, **kwargs) -> list:
    return node_actions({name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS})


def generate_launch_description() -> LaunchDescription:
    """Arguments in ``ARGUMENTS`` plus dds_profile; the nodes are built at launch time (``node_actions``)."""
    dds_profile = LaunchConfiguration("dds_profile")
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()),
        DeclareLaunchArgument("dds_profile", default_value=default_dds_profile(),
                              description=f"Fast DDS XML profile ({DDS_PROFILE_ENV}) of the processes started "
                                          "here; default: the package's profile for the installed Fast DDS unless "
                                          f"{DDS_PROFILE_ENV} is already set; empty: keep the environment"),
        SetEnvironmentVariable(DDS_PROFILE_ENV, dds_profile,
                               condition=IfCondition(NotEqualsSubstitution(dds_profile, ""))),
        # with the profile, Fast DDS's asynchronous publication (unless the environment chose a mode)
        *(SetEnvironmentVariable(name, value, condition=IfCondition(NotEqualsSubstitution(dds_profile, "")))
          for name, value in publication_mode(os.environ).items()),
        OpaqueFunction(function=_launch_nodes),
    ])
