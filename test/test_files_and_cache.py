"""The package's one atomic-write helper and its one bounded cache."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from semantic_depth_ros import files
from semantic_depth_ros.cache import BoundedCache, device_key
from semantic_depth_ros.errors import ConfigError


def test_write_atomic_replaces_the_file_and_flushes_it_to_disk(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "new" / "folder" / "out.bin"
    files.write_atomic(path, b"first")
    files.write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert len(synced) == 4  # the file and its folder, each write
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.bin"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_path(path) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_atomic_path_serves_writers_that_want_a_file_name(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    with files.atomic_path(path) as temporary:
        assert temporary.parent == tmp_path and temporary != path
        torch.save({"w": torch.arange(3)}, temporary)
        assert not path.exists()  # readers never see a file in the making
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))


def test_ensure_writable_folder_names_the_problem(tmp_path: Path) -> None:
    files.ensure_writable_folder(tmp_path / "a" / "b", "--out x")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^--out y: cannot be created"):
        files.ensure_writable_folder(tmp_path / "file" / "sub", "--out y")


def test_bounded_cache_evicts_the_least_recently_used() -> None:
    cache: BoundedCache[str, object] = BoundedCache(2, "test cache")
    built: list[str] = []

    def build(key: str) -> object:
        built.append(key)
        return object()

    a = cache.get("a", lambda: build("a"))
    cache.get("b", lambda: build("b"))
    assert cache.get("a", lambda: build("a")) is a  # a is now the most recent
    cache.get("c", lambda: build("c"))  # evicts b
    assert len(cache) == 2 and built == ["a", "b", "c"]
    assert cache.get("a", lambda: build("a")) is a
    cache.get("b", lambda: build("b"))
    assert built == ["a", "b", "c", "b"]
    cache.clear()
    assert len(cache) == 0


def test_bounded_cache_keeps_none_and_builds_once_under_threads() -> None:
    cache: BoundedCache[int, object] = BoundedCache(4)
    calls: list[int] = []
    assert cache.get(1, lambda: calls.append(1)) is None
    assert cache.get(1, lambda: calls.append(1)) is None and calls == [1]  # a None value is a value
    values = []
    threads = [threading.Thread(target=lambda: values.append(cache.get(2, lambda: calls.append(2) or object())))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls.count(2) == 1 and len({id(v) for v in values}) == 1


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bounded_cache_size_must_be_a_positive_integer(size: object) -> None:
    with pytest.raises(ConfigError, match=r"ray grid cache max_entries = .* must be an integer >= 1"):
        BoundedCache(size, "ray grid cache")  # type: ignore[arg-type]


def test_device_keys() -> None:
    assert device_key("cpu") == torch.device("cpu") == device_key(torch.device("cpu"))
