"""Install semantic_depth_ros with colcon (ament_python) or pip; both give the same commands and data files."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "semantic_depth_ros"
SHARE = f"share/{PACKAGE}"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Monocular metric depth, semantic labels and point clouds for ROS 2 from one camera",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (SHARE, ["package.xml"]),
        (f"{SHARE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"{SHARE}/config", sorted(glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml"))),
        (f"{SHARE}/models", sorted(glob("models/*.yaml"))),
        (f"{SHARE}/reference", ["reference/README.md", "reference/paper_table1.csv"]),
        (f"{SHARE}/reference/kitti_eigen_split", sorted(glob("reference/kitti_eigen_split/*_files.txt"))),
    ],
    install_requires=[
        "setuptools",
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "torch",
        "tqdm",
        "rosbags",
        "tensorboard",
        "onnx",  # ONNX export
    ],
    # The onnxruntime backend (.onnx models) needs ONE of onnxruntime (CPU) and onnxruntime-gpu (CUDA, TensorRT):
    # both provide the same module and must not be installed together, so the vehicle chooses; the CPU one is the
    # extra `onnxruntime` and comes with the tests.
    # `semantic-depth fleet` schedules its drives on Ray (the extra `fleet`; the tests run it, so `test` has it too).
    extras_require={"onnxruntime": ["onnxruntime"],
                    "fleet": ["ray>=2.40"],
                    "test": ["pytest", "colcon-common-extensions", "onnxruntime", "vermin", "ray>=2.40"]},
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "depth_node = semantic_depth_ros.ros.node:main_ros",
            "depth_lifecycle_node = semantic_depth_ros.ros.lifecycle_node:main_ros",
            "semantic-depth = semantic_depth_ros.cli:main",
            "train = semantic_depth_ros.cli:train_main",
            "extract_rosbag = semantic_depth_ros.cli:extract_main",
            "export = semantic_depth_ros.cli:export_main",
            "infer_bag = semantic_depth_ros.cli:infer_bag_main",
        ],
    },
)
