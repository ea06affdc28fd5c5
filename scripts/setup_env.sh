#!/usr/bin/env bash
# Create ./.venv with everything semantic_depth_ros needs to run its demo and tests on a fresh machine
# (no ROS install, no GPU needed). Re-running is cheap: pip skips what is already there.
#   bash scripts/setup_env.sh            # then: source .venv/bin/activate
# Environment: VENV (default .venv), TORCH_SPEC (default torch==2.13.0; use e.g. "torch" with a CUDA index on a GPU box),
# ROS_WHEELS (jazzy, the default, or kilted: which ROS 2 distribution's PyPI wheels to install when no rclpy is found;
# CI makes a second venv with ROS_WHEELS=kilted VENV=.venv-kilted).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  # --system-site-packages lets a sourced ROS 2 install (apt) provide rclpy and the message packages.
  "$PY" -m venv --system-site-packages "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip
"$VENV/bin/python" -c "import torch" 2>/dev/null || pip install -q "$TORCH_SPEC"
# ROS 2: use the system's rclpy when a ROS install is sourced; otherwise one distribution's rclpy wheels from PyPI.
case "${ROS_WHEELS:-jazzy}" in
  jazzy) ROS_SPECS=("ros-rclpy[fastrtps]==7.1.6" "ros-sensor-msgs==5.3.6" "ros-diagnostic-msgs==5.3.6" "ros-nav-msgs==5.3.6") ;;
  kilted) ROS_SPECS=("ros-rclpy[fastrtps]==9.1.2" "ros-sensor-msgs==5.5.1" "ros-diagnostic-msgs==5.5.1" "ros-nav-msgs==5.5.1") ;;
  *) echo "error: ROS_WHEELS = '${ROS_WHEELS}' must be jazzy or kilted" >&2; exit 1 ;;
esac
if ! "$VENV/bin/python" -c "import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, nav_msgs.msg" 2>/dev/null; then
  echo "no rclpy found: installing ROS 2 ${ROS_WHEELS:-jazzy} rclpy wheels"
  pip install -q "${ROS_SPECS[@]}"
fi
# onnx comes with the package; the CPU onnxruntime and Ray (semantic-depth fleet) with the test extra (a GPU vehicle
# installs onnxruntime-gpu).
pip install -q -e ".[test]"
"$VENV/bin/python" -c "import semantic_depth_ros, torch, rclpy, cv2, rosbags, onnx, onnxruntime, ray; print('environment ready: torch', torch.__version__, 'onnxruntime', onnxruntime.__version__)"
