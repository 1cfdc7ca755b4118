"""Shared set-up for the helper's pytest suite (runs without R).

Tiny models are built once per session into a temporary cache, torch runs on
one thread so pixels are bit-identical between calls.  Missing dependencies
are imported plainly (no importorskip here): in CI a broken Python stack must
fail the run, not skip it.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "inst", "python"))
os.environ["RDIFFUSERS_TORCH_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("rdiffusers-cache"))


@pytest.fixture(scope="session")
def api():
    from rdiffusers_py import api
    return api


@pytest.fixture
def gen(api, cache_dir, tmp_path):
    """generate() with test defaults; returns the list of result dicts."""
    counter = [0]

    def run(model="tiny", prompt="a red cat", seeds=("1",), negative_prompt=None, **kw):
        seeds = list(seeds)
        paths = []
        for _ in seeds:
            counter[0] += 1
            paths.append(str(tmp_path / ("img%d.png" % counter[0])))
        args = dict(width=64, height=64, steps=2, guidance_scale=7.5, cache_dir=cache_dir)
        args.update(kw)
        return api.generate(model, [prompt] * len(seeds), [negative_prompt] * len(seeds),
                            seeds, paths, **args)
    return run
