"""Single-file (original LDM layout) checkpoints, loaded offline.

tiny.tiny_single_file() writes tiny model "tiny" as one .safetensors file in
the layout of checkpoints from model sites; loading it with the tiny diffusers
directory as config must give back exactly the same weights and images.
"""

import os

import pytest
import torch

from rdiffusers_py import pipeline, tiny
from rdiffusers_py.errors import ModelError


@pytest.fixture(scope="module")
def ckpt(cache_dir):
    return tiny.tiny_single_file(cache_dir)


@pytest.fixture(scope="module")
def tiny_dir(cache_dir):
    return tiny.build("tiny", cache_dir)


def test_file_is_written_once_in_ldm_layout(api, cache_dir, ckpt):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type
    from safetensors.torch import load_file
    assert ckpt == os.path.join(cache_dir, "tiny", "tiny-v1.safetensors")
    mtime = os.stat(ckpt).st_mtime_ns
    assert api.tiny_single_file(cache_dir) == ckpt
    assert os.stat(ckpt).st_mtime_ns == mtime
    # No temporary files left next to it.
    assert not [f for f in os.listdir(os.path.dirname(ckpt)) if f.startswith(".")]
    sd = load_file(ckpt)
    prefixes = {k.split(".")[0] for k in sd}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.",
                             "cond_stage_model.transformer.text_model.")) for k in sd)
    for key in ["model.diffusion_model.time_embed.0.weight",
                "model.diffusion_model.input_blocks.2.0.op.weight",        # downsampler
                "model.diffusion_model.input_blocks.3.1.proj_in.weight",   # attention
                "model.diffusion_model.middle_block.2.emb_layers.1.weight",
                "model.diffusion_model.output_blocks.1.2.conv.weight",     # upsampler
                "model.diffusion_model.output_blocks.3.0.skip_connection.weight",
                "model.diffusion_model.out.2.weight",
                "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
                "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
                "first_stage_model.decoder.up.1.upsample.conv.weight",
                "first_stage_model.decoder.norm_out.weight",
                "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"]:
        assert key in sd, key
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (8, 8, 1, 1)
    assert infer_diffusers_model_type(sd) == "v1"


def test_checkpoint_loads_offline_with_the_same_weights(ckpt, tiny_dir, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = pipeline.get_entry(ckpt, config=tiny_dir, cache_dir=cache_dir)
    info = entry.info
    assert info["source"] == "file" and info["family"] == "sd15"
    assert info["pipeline_class"] == "StableDiffusionPipeline"
    assert info["revision"] == "sha256:" + pipeline.file_sha256(ckpt)
    ref = pipeline.get_entry("tiny", cache_dir=cache_dir).pipe
    for name in ("unet", "vae", "text_encoder"):
        got = getattr(entry.pipe, name).state_dict()
        want = getattr(ref, name).state_dict()
        assert set(got) == set(want), name
        for k, v in want.items():
            assert got[k].dtype == v.dtype and torch.equal(got[k], v), "%s.%s" % (name, k)


def test_the_config_folders_files_are_part_of_what_is_loaded(ckpt, tiny_dir, cache_dir,
                                                            tmp_path, monkeypatch):
    # The architecture comes from the config folder: an edit to it is
    # another model (a new cache entry, and sd_reproduce() can tell).
    import json
    import shutil
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    conf = tmp_path / "conf"
    shutil.copytree(tiny_dir, conf)
    first = pipeline.get_entry(ckpt, config=str(conf), cache_dir=cache_dir).info
    assert first["config_revision"] == pipeline.config_revision(tiny_dir)
    # Weights in the folder are not read from it, nor hashed.
    (conf / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"other")
    assert pipeline.config_revision(str(conf)) == first["config_revision"]
    cfg = conf / "vae" / "config.json"
    data = json.loads(cfg.read_text())
    data["scaling_factor"] = 0.5
    cfg.write_text(json.dumps(data))
    second = pipeline.get_entry(ckpt, config=str(conf), cache_dir=cache_dir).info
    assert second["config_revision"] != first["config_revision"]
    assert second["key"] != first["key"] and second["loaded"] is True
    # The copy made with the old config is freed: it cannot be asked for again.
    assert first["key"] not in [i["key"] for i in pipeline.cached()]
    pipeline.free(second["key"])


def test_a_checkpoint_linked_as_in_the_hub_cache_is_one_model(ckpt, tiny_dir, cache_dir,
                                                              tmp_path, monkeypatch):
    # hf_hub_download() returns snapshots/<sha>/model.safetensors, a link to
    # blobs/<hash>, which has no extension; two links to it are one model.
    import shutil
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blob = tmp_path / "blobs" / "9f86d081884c7d65"
    blob.parent.mkdir()
    shutil.copyfile(ckpt, blob)
    links = []
    for snap in ("abc", "def"):
        link = tmp_path / "snapshots" / snap / "model.safetensors"
        link.parent.mkdir(parents=True)
        os.symlink(blob, link)
        links.append(str(link))
    first = pipeline.get_entry(links[0], config=tiny_dir, cache_dir=cache_dir)
    assert first.info["model_id"] == links[0]
    assert pipeline.get_entry(links[1], config=tiny_dir, cache_dir=cache_dir) is first
    pipeline.free(first.info["key"])


def test_same_pixels_from_file_and_directory(gen, ckpt, tiny_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_dir = gen(model="tiny", seeds=("3",))[0]
    from_file = gen(model=ckpt, config=tiny_dir, seeds=("3",))[0]
    assert from_file["meta"]["model_source"] == "file"
    assert from_dir["meta"]["model_source"] == "tiny"
    assert from_file["meta"]["pixel_sha256"] == from_dir["meta"]["pixel_sha256"]


def test_without_config_offline_is_a_model_error(ckpt, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # diffusers would fetch the SD1.5 configs from the hub; offline that is
    # a prompt ModelError, not a hang or a traceback from huggingface_hub.
    with pytest.raises(ModelError, match="Could not load"):
        pipeline.get_entry(ckpt, cache_dir=cache_dir)


def test_family_comes_from_the_header_without_reading_weights(ckpt, monkeypatch):
    from safetensors.torch import load_file
    shapes = pipeline._checkpoint_shapes(ckpt)
    full = load_file(ckpt)
    assert set(shapes) == set(full)
    assert all(t.device.type == "meta" for t in shapes.values())
    assert all(tuple(shapes[k].shape) == tuple(v.shape) for k, v in full.items())
    monkeypatch.setattr(pipeline, "_KINDS", {})
    assert pipeline._family_of_checkpoint(ckpt, None) == "sd15"


def _fake_hub_repo(hub_cache, repo_id, class_name):
    # The layout huggingface_hub reads with local_files_only=True.
    commit = "0" * 40
    repo = os.path.join(hub_cache, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)
    snap = os.path.join(repo, "snapshots", commit)
    os.makedirs(snap, exist_ok=True)
    with open(os.path.join(snap, "model_index.json"), "w") as f:
        f.write('{"_class_name": "%s"}' % class_name)


def test_hub_config_family_comes_from_its_model_index(ckpt, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(pipeline, "_KINDS", {})
    # The repo's name says nothing (or the wrong thing); its index decides.
    _fake_hub_repo(str(tmp_path), "acme/ssd-1b", "StableDiffusionXLPipeline")
    _fake_hub_repo(str(tmp_path), "acme/xl-sd3-lookalike", "StableDiffusionPipeline")
    _fake_hub_repo(str(tmp_path), "acme/flux", "FluxPipeline")
    assert pipeline._family_of_checkpoint(ckpt, "acme/ssd-1b") == "sdxl"
    assert pipeline._family_of_checkpoint(ckpt, "acme/xl-sd3-lookalike") == "sd15"
    with pytest.raises(ModelError, match="FluxPipeline"):
        pipeline._family_of_checkpoint(ckpt, "acme/flux")
    # A config that cannot be had offline: the checkpoint's own keys decide.
    assert pipeline._family_of_checkpoint(ckpt, "acme/not-cached-xl") == "sd15"


def test_upper_case_extension_is_still_safetensors(gen, ckpt, tiny_dir, tmp_path, monkeypatch):
    """MODEL.SAFETENSORS (as some Windows tools name files) is neither a
    pickle that needs trust nor a file for torch.load: diffusers itself
    only knows the lower-case extension."""
    import shutil
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pipeline, "_TRUSTED", set())
    upper = str(tmp_path / "TINY.SAFETENSORS")
    shutil.copyfile(ckpt, upper)
    got = gen(model=upper, config=tiny_dir, seeds=("3",))[0]
    want = gen(model=ckpt, config=tiny_dir, seeds=("3",))[0]
    assert got["meta"]["model_source"] == "file"
    assert got["meta"]["pixel_sha256"] == want["meta"]["pixel_sha256"]
    assert not pipeline._TRUSTED


def test_local_files_only_reaches_from_single_file(ckpt, tiny_dir, cache_dir, monkeypatch):
    import diffusers
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = {}
    real = diffusers.StableDiffusionPipeline.from_single_file.__func__

    def spy(cls, path, **kw):
        seen.update(kw)
        return real(cls, path, **kw)
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_single_file", classmethod(spy))
    entry = pipeline.get_entry(ckpt, config=tiny_dir, cache_dir=cache_dir, local_files_only=True,
                               dtype="bfloat16")
    assert seen.get("local_files_only") is True
    pipeline.free(entry.info["key"])
