"""The depth node in a child process, as on a vehicle: started with the package's DDS profile, ready, stopped.

Used by ``semantic-depth bench``, ``semantic-depth demo`` and the tests. The child runs ``semantic-depth node`` on
its own ROS domain under a namespace (its topics are ``<namespace>/image``, ``<namespace>/depth``, ...).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ..errors import ConfigError
from .distro import dds_profile_environment

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
READY_LOG = "ready: model"  # what the node logs once its warm-up frame ran
def random_domain_id() -> int:
    """A ROS domain for a private graph (1..100), so no real robot on the network sees it."""
    return random.SystemRandom().randint(1, 100)


class NodeProcess:
    """``semantic-depth node`` on ``checkpoint`` in a child process; a context manager (start + ready, stop).

    ``parameters``: extra ``-p name:=value`` node parameters; ``ros_args``: further ROS arguments (remaps, log
    levels). ``num_threads``: torch CPU threads of the child.
    The child gets the package's Fast DDS profile unless the environment already names one, ``ROS_DOMAIN_ID`` =
    ``domain_id`` and (unless set) discovery limited to this machine. Its stderr lines are kept in ``log``.
    """

    def __init__(self, checkpoint: str | Path, *, domain_id: int, namespace: str = "/", device: str = "auto",
                 precision: str = "auto", backend: str = "auto", num_threads: int | None = None,
                 parameters: Mapping[str, object] | None = None, ros_args: Sequence[str] = ()) -> None:
        self.checkpoint = Path(checkpoint)
        self.domain_id = domain_id
        self.namespace = namespace
        self.log: list[str] = []
        self._options = {"--device": device, "--precision": precision, "--backend": backend}
        self._num_threads = num_threads
        self._parameters = dict(parameters or {})
        self._ros_args = list(ros_args)
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()

    def command(self) -> list[str]:
        """The child's command line."""
        command = [sys.executable, "-m", "semantic_depth_ros.cli", "node", "--model-path", str(self.checkpoint)]
        for option, value in self._options.items():
            command += [option, value]
        command += ["--ros-args", "-r", f"__ns:={self.namespace}"]
        for name, value in self._parameters.items():
            command += ["-p", f"{name}:={value}"]
        return command + self._ros_args

    def environment(self) -> dict[str, str]:
        """The child's environment: this process's, plus domain, DDS profile and thread count."""
        env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id))
        env.update(dds_profile_environment(os.environ))
        if self._num_threads is not None:
            env["OMP_NUM_THREADS"] = str(self._num_threads)  # torch's CPU thread count in the node process
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        return env

    def start(self) -> None:
        """Start the child (its stderr is read on a daemon thread into ``log``)."""
        self._process = subprocess.Popen(self.command(), env=self.environment(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, args=(self._process,), daemon=True).start()

    def _read_log(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self.log.append(line.rstrip())
            if READY_LOG in line:
                self._ready.set()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until the node logs that it is ready; ConfigError with its last line if it exits or times out."""
        process = self._require()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                detail = self.log[-1] if self.log else "no output"
                raise ConfigError(f"the depth node process did not start ({detail})")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGINT (the node's clean shutdown), then kill after ``timeout`` seconds; return its exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    @property
    def pid(self) -> int:
        return self._require().pid

    def _require(self) -> subprocess.Popen:
        if self._process is None:
            raise RuntimeError("the node process was not started")
        return self._process

    def __enter__(self) -> "NodeProcess":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
