"""Tiny offline pipelines: deterministic, atomic, loaded like real models."""

import hashlib
import os
import threading

import pytest

from rdiffusers_py import tiny
from rdiffusers_py.errors import InputError


def weight_hashes(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith(".safetensors") or f.endswith(".json") or f.endswith(".txt"):
                p = os.path.join(root, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.mark.parametrize("name", ["tiny", "tiny-sd3"])
def test_same_build_twice_gives_identical_files(name, tmp_path):
    a = weight_hashes(tiny.build(name, str(tmp_path / "a")))
    b = weight_hashes(tiny.build(name, str(tmp_path / "b")))
    assert any(k.endswith(".safetensors") for k in a)
    assert a == b


def test_tiny_models_load_through_from_pretrained(api, cache_dir):
    import diffusers
    expected = {"tiny": "StableDiffusionPipeline", "tiny-sdxl": "StableDiffusionXLPipeline",
                "tiny-sd3": "StableDiffusion3Pipeline"}
    for name, cls in expected.items():
        d = api.tiny_model(name, cache_dir)
        assert d.startswith(cache_dir)
        pipe = diffusers.DiffusionPipeline.from_pretrained(d, local_files_only=True)
        assert type(pipe).__name__ == cls


def test_concurrent_builders_do_not_corrupt(tmp_path):
    cache = str(tmp_path / "c")
    results, errors = [], []

    def build():
        try:
            results.append(tiny.build("tiny", cache))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    # Only the finished model is left: no half-built temporary directories.
    assert os.listdir(os.path.join(cache, "tiny")) == [os.path.basename(results[0])]
    assert weight_hashes(results[0]) == weight_hashes(tiny.build("tiny", str(tmp_path / "d")))


def test_build_leaves_a_readable_model_and_sweeps_builds_of_killed_processes(tmp_path):
    import stat
    import time
    parent = tmp_path / "c" / "tiny"
    parent.mkdir(parents=True)
    stale = parent / ".build-tiny-killed"        # a builder killed an hour ago
    stale.mkdir()
    old = time.time() - 7200
    os.utime(str(stale), (old, old))
    live = parent / ".build-tiny-running"        # another process, still writing
    live.mkdir()
    path = tiny.build("tiny", str(tmp_path / "c"))
    assert not stale.exists() and live.exists()
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o777 & ~tiny._umask()        # not mkdtemp()'s owner-only 0700


def test_unknown_tiny_name_is_an_input_error(api, cache_dir):
    with pytest.raises(InputError, match="tiny-sdxl"):
        api.tiny_model("tiny-flux", cache_dir)
