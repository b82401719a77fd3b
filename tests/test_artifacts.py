"""The artifact store builds once per key, survives interruption, and distrusts tampered files."""

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from pytest_awml.artifacts import MANIFEST, ArtifactStore, content_key


def _writer(content: bytes, calls: list):
    def build(path: Path) -> None:
        calls.append(path)
        path.write_bytes(content)

    return build


def _get(store, build, key="k1"):
    return store.get_or_build(spec="s", component="c", format="onnx", filename="c.onnx", key_parts={"k": key}, build=build)


def test_build_once_then_reuse(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    first = _get(store, _writer(b"model", calls))
    second = _get(store, _writer(b"other", calls))
    assert len(calls) == 1
    assert not first.reused and second.reused
    assert first.path == second.path and first.path.read_bytes() == b"model"
    assert first.sha256 == second.sha256 == json.loads((first.path.parent / MANIFEST).read_text())["sha256"]


def test_key_parts_address_the_content(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    a = _get(store, _writer(b"a", calls), key="one")
    b = _get(store, _writer(b"b", calls), key="two")
    assert a.path != b.path and len(calls) == 2
    assert content_key({"x": 1, "y": 2}) == content_key({"y": 2, "x": 1})


def test_tampered_file_is_rebuilt_and_said_so(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    first = _get(store, _writer(b"model", calls))
    first.path.write_bytes(b"corrupt")
    again = _get(store, _writer(b"model", calls))
    assert not again.reused and "does not match the manifest" in again.rebuilt_reason
    assert again.path.read_bytes() == b"model" and len(calls) == 2


def test_file_without_manifest_is_not_trusted(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    first = _get(store, _writer(b"model", calls))
    (first.path.parent / MANIFEST).unlink()
    again = _get(store, _writer(b"model", calls))
    assert not again.reused and "without a manifest" in again.rebuilt_reason


def test_failed_build_leaves_nothing_trusted(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        _get(store, broken)
    folder = next(p for p in (tmp_path / "s" / "c").iterdir() if p.is_dir())
    assert not (folder / "c.onnx").exists() and not (folder / MANIFEST).exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".build-")]
    calls = []
    assert not _get(store, _writer(b"model", calls)).reused and len(calls) == 1


def _race(root: str, marker: str) -> str:
    store = ArtifactStore(Path(root))

    def build(path: Path) -> None:
        with open(marker, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        path.write_bytes(b"model")

    return str(_get(store, build).reused)


def test_concurrent_processes_build_once(tmp_path):
    marker = tmp_path / "builds.txt"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        reused = pool.starmap(_race, [(str(tmp_path / "store"), str(marker))] * 4)
    assert len(marker.read_text().splitlines()) == 1
    assert sorted(reused) == ["False", "True", "True", "True"]
