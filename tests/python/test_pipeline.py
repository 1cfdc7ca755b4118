"""The pipeline cache, model resolution, presets and devices."""

import contextlib
import json
import logging
import os
import shutil

import pytest

from rdiffusers_py import pipeline
from rdiffusers_py.errors import InputError, ModelError, RdiffusersError


def test_cache_hit_returns_same_objects(api, cache_dir):
    first = api.load_pipeline("tiny", cache_dir=cache_dir)
    entry = pipeline.get_entry("tiny", cache_dir=cache_dir)
    again = api.load_pipeline("tiny", cache_dir=cache_dir)
    assert again["loaded"] is False
    assert again["key"] == first["key"]
    assert pipeline.get_entry("tiny", cache_dir=cache_dir) is entry
    assert first["source"] == "tiny" and first["family"] == "sd15"
    assert first["revision"].startswith("sha256:")
    assert first["device"] == "cpu" and first["dtype"] == "float32"
    assert any(i["key"] == first["key"] for i in api.cached_pipelines())


def test_info_is_plain_data(api, cache_dir):
    info = api.load_pipeline("tiny", cache_dir=cache_dir)
    json.dumps(info)
    for v in info.values():
        assert isinstance(v, (str, bool, float, int, type(None)))


def test_dtype_is_part_of_the_key(api, cache_dir):
    a = api.load_pipeline("tiny", cache_dir=cache_dir)
    b = api.load_pipeline("tiny", cache_dir=cache_dir, dtype="bfloat16")
    assert a["key"] != b["key"]
    # So is the fast-path mode: a bf16 copy is not the plain one.
    plain = api.load_pipeline("tiny", cache_dir=cache_dir, optimize="none")
    fast = api.load_pipeline("tiny", cache_dir=cache_dir, optimize="bf16")
    assert plain["key"] != fast["key"] and fast["optimize"] == "bf16"
    assert api.free_pipelines(fast["key"]) == 1
    assert b["dtype"] == "bfloat16"
    e = pipeline.get_entry("tiny", cache_dir=cache_dir, dtype="bfloat16")
    import torch
    assert e.pipe.unet.dtype == torch.bfloat16
    assert api.free_pipelines(b["key"]) == 1
    assert all(i["key"] != b["key"] for i in api.cached_pipelines())
    assert api.free_pipelines(b["key"]) == 0


def test_free_all_then_reload(api, cache_dir):
    api.load_pipeline("tiny", cache_dir=cache_dir)
    assert api.free_pipelines() >= 1
    assert api.cached_pipelines() == []
    assert api.load_pipeline("tiny", cache_dir=cache_dir)["loaded"] is True


def test_local_dir_is_hashed_by_content(api, cache_dir, tmp_path):
    src = api.tiny_model("tiny", cache_dir)
    copy = str(tmp_path / "my model")
    shutil.copytree(src, copy)
    info = api.load_pipeline(copy)
    assert info["source"] == "dir"
    assert info["model_id"] == os.path.abspath(copy)
    # Same weights, same revision, wherever they live.
    assert info["revision"] == api.load_pipeline("tiny", cache_dir=cache_dir)["revision"]
    # Through a symlink it is the same model, one pipeline (a LoRA loaded
    # by one path applies by the other).
    link = str(tmp_path / "link")
    os.symlink(copy, link)
    again = api.load_pipeline(link)
    assert (again["key"], again["model_id"], again["loaded"]) == (info["key"], copy, False)
    api.free_pipelines(info["key"])


def test_local_dir_revision_covers_what_the_pipeline_reads(api, cache_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(api.tiny_model("tiny", cache_dir), copy)
    rev = pipeline.content_revision(str(copy))
    # Files the pipeline does not read leave it alone: notes, hidden files,
    # a stray checkpoint beside the component folders, the safety checker.
    (copy / "README.md").write_text("notes")
    (copy / "old.ckpt").write_bytes(b"not loaded")
    (copy / "unet" / ".DS_Store").write_bytes(b"x")
    (copy / "safety_checker").mkdir()
    (copy / "safety_checker" / "model.safetensors").write_bytes(b"x")
    assert pipeline.content_revision(str(copy)) == rev
    # So does re-saving with another library version (provenance keys only).
    cfg = copy / "scheduler" / "scheduler_config.json"
    data = json.loads(cfg.read_text())
    data["_diffusers_version"] = "0.0.1"
    cfg.write_text(json.dumps(data, indent=7))
    assert pipeline.content_revision(str(copy)) == rev
    # A config the pipeline reads is part of the model: a new revision, and
    # a new cache entry rather than the pipeline loaded before the edit.
    first = api.load_pipeline(str(copy))
    data["beta_end"] = data["beta_end"] * 2
    cfg.write_text(json.dumps(data))
    second = api.load_pipeline(str(copy))
    assert second["revision"] != rev and second["loaded"] is True
    assert second["key"] != first["key"]
    # The copy of the old files is freed: it cannot be asked for again.
    assert [i["key"] for i in api.cached_pipelines()
            if i["model_id"] == str(copy.resolve())] == [second["key"]]
    api.free_pipelines(second["key"])


def test_task_pipelines_share_components(cache_dir):
    entry = pipeline.get_entry("tiny", cache_dir=cache_dir)
    i2i = entry.task("img2img")
    inp = entry.task("inpaint")
    assert entry.task("img2img") is i2i
    assert type(i2i).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(inp).__name__ == "StableDiffusionInpaintPipeline"
    for p in (i2i, inp):
        assert p.unet is entry.pipe.unet
        assert p.vae is entry.pipe.vae
        assert p.text_encoder is entry.pipe.text_encoder


def test_presets(api):
    p = api.presets()
    for name in ["tiny", "tiny-sdxl", "tiny-sd3", "sd15", "sd21", "sdxl", "sd-turbo",
                 "sdxl-turbo", "sd3-medium"]:
        assert name in p
        assert set(p[name]) >= {"model_id", "family", "steps", "guidance_scale", "width",
                                "height", "scheduler", "strength"}
    assert p["sd-turbo"]["steps"] == 1 and p["sd-turbo"]["guidance_scale"] == 0.0
    assert p["sd15"]["model_id"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert p["tiny"]["width"] == 64


def test_devices_and_versions(api):
    d = api.devices()
    assert d["available"][-1] == "cpu" and d["default"] == d["available"][0]
    assert d["torch_threads"] == 1
    v = api.versions()
    assert v["diffusers"] and v["torch"] and v["python"]


def test_resolve_dtype_and_device():
    assert pipeline.resolve_dtype("auto", "cpu") == "float32"
    assert pipeline.resolve_dtype("auto", "cuda") == "float16"
    assert pipeline.resolve_dtype("fp16", "cpu") == "float16"
    with pytest.raises(InputError):
        pipeline.resolve_dtype("float8", "cpu")
    with pytest.raises(InputError):
        pipeline.resolve_device("tpu")


def test_each_device_has_one_spelling(monkeypatch):
    """"cuda" and "cuda:0" (or "cpu:0") are one device: one cache key, one
    name in metadata. CUDA is faked here; nothing runs on it."""
    import torch
    monkeypatch.setattr(pipeline, "devices", lambda: {"available": ["cuda", "mps", "cpu"]})
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert pipeline.resolve_device("cuda") == "cuda:1"
    assert pipeline.resolve_device("auto") == "cuda:1"
    assert pipeline.resolve_device("cuda:0") == "cuda:0"
    assert pipeline.resolve_device("cpu:0") == "cpu"
    assert pipeline.resolve_device("mps:0") == "mps"
    for bad in ("cuda:2", "cuda:x", "cpu:1", "mps:1"):
        with pytest.raises(InputError, match="does not exist"):
            pipeline.resolve_device(bad)


def test_unknown_model_lists_presets(api, cache_dir):
    with pytest.raises(ModelError, match="sd-turbo") as e:
        api.load_pipeline("no such model!", cache_dir=cache_dir)
    assert isinstance(e.value, RdiffusersError)


def test_directory_without_model_index(api, tmp_path):
    with pytest.raises(ModelError, match="model_index.json"):
        api.load_pipeline(str(tmp_path))


@pytest.mark.parametrize("cls", ["StableDiffusionInpaintPipeline",
                                 "StableDiffusionXLImg2ImgPipeline",
                                 "StableDiffusionInstructPix2PixPipeline", "FluxPipeline"])
def test_a_pipeline_that_is_not_text_to_image_is_refused(api, cache_dir, tmp_path, cls):
    """Inpainting, refiner and pix2pix models take other UNet inputs: loaded
    as the text-to-image pipeline they failed inside diffusers at generation."""
    copy = tmp_path / "m"
    shutil.copytree(api.tiny_model("tiny", cache_dir), copy)
    index = json.loads((copy / "model_index.json").read_text())
    index["_class_name"] = cls
    (copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="%s; rdiffusers loads the text-to-image" % cls):
        api.load_pipeline(str(copy))


def test_config_and_revision_a_model_cannot_use_are_errors(api, cache_dir, tmp_path):
    """Both used to be ignored silently for models that take neither."""
    tiny_dir = api.tiny_model("tiny", cache_dir)
    copy = str(tmp_path / "m")
    shutil.copytree(tiny_dir, copy)
    with pytest.raises(InputError, match="config is for single-file checkpoints; 'tiny' is a tiny"):
        api.load_pipeline("tiny", config=tiny_dir, cache_dir=cache_dir)
    with pytest.raises(InputError, match="revision is for models from the Hugging Face hub"):
        api.load_pipeline("tiny", revision="main", cache_dir=cache_dir)
    with pytest.raises(InputError, match="is a local directory"):
        api.load_pipeline(copy, revision="v1", cache_dir=cache_dir)


def test_hub_id_offline_is_a_model_error(api, monkeypatch, tmp_path):
    import huggingface_hub.constants as hc
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # An empty cache: huggingface_hub read HF_HOME when it was imported.
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        api.load_pipeline("nobody/nothing-here")


@contextlib.contextmanager
def said_by_diffusers():
    """The messages diffusers' loggers hand to their handlers."""
    said = []

    class Keep(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    root = logging.getLogger("diffusers")
    handler = Keep(level=logging.WARNING)
    root.addHandler(handler)
    try:
        yield said
    finally:
        root.removeHandler(handler)


def test_hub_id_unreachable_names_the_hubs_answer(api, monkeypatch):
    # Online, but the hub cannot be asked (no network here, a 404, a gated
    # repository): diffusers falls back to the local cache and its own error
    # points at a traceback; ours names what the hub said.
    import diffusers.pipelines.pipeline_utils as pu
    import requests

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pu, "model_info", unreachable)
    with said_by_diffusers() as said, pytest.raises(ModelError) as e:
        api.load_pipeline("nobody/nothing-here")
    msg = str(e.value)
    assert "asking the hub failed (ConnectionError: Name or service not known)" in msg
    assert "stacktrace" not in msg
    # The id also reads as a relative path: the error says none exists.
    assert "No directory or file 'nobody/nothing-here' exists either" in msg
    # diffusers' "Couldn't connect ... will try the local cache" is not
    # printed before an error that says the same.
    assert not [m for m in said if "Couldn't connect" in m]


def test_hub_fallback_warning_still_shown_when_the_cache_has_the_model(api, tmp_path,
                                                                      monkeypatch):
    import diffusers.pipelines.pipeline_utils as pu
    import huggingface_hub.constants as hc
    import requests

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--cached"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pu, "model_info", unreachable)
    with said_by_diffusers() as said:
        resolved = pipeline._resolve_hub("org/cached", None, None, False)
    assert resolved["revision"] == commit
    assert [m for m in said if "Couldn't connect" in m]


def test_a_loaded_hub_model_is_found_by_any_spelling_without_network(api, cache_dir, tmp_path,
                                                                     monkeypatch):
    # LoRA listing / unloading look pipelines up with load=False: "main",
    # the commit and no revision name the same loaded pipeline.
    import huggingface_hub.constants as hc
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny"
    shutil.copytree(api.tiny_model("tiny", cache_dir), str(repo / "snapshots" / commit))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pipeline.get_entry("org/tiny", load=False) is None     # not loaded yet
    entry = pipeline.get_entry("org/tiny", revision="main", cache_dir=cache_dir)
    try:
        assert entry.info["source"] == "hub" and entry.info["revision"] == commit
        for rev in (None, "main", commit):
            assert pipeline.get_entry("org/tiny", revision=rev, load=False) is entry
        assert pipeline.get_entry("org/tiny", revision="f" * 40, load=False) is None
        assert pipeline.get_entry("org/absent", load=False) is None
    finally:
        pipeline.free(entry.info["key"])


def test_pickle_checkpoint_needs_trust(api, tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really")
    with pytest.raises(ModelError, match="trusted"):
        api.load_pipeline(str(ckpt))


def test_a_file_that_is_not_a_weights_file_is_refused_before_trust(api, tmp_path):
    """An image given as the model is not offered trusted=True, which would
    only hand it to torch.load()."""
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    for trusted in (False, True):
        with pytest.raises(ModelError, match="not a model file") as err:
            api.load_pipeline(str(png), trusted=trusted)
        assert "model_index.json" in str(err.value)


def test_trust_in_a_pickle_checkpoint_is_given_to_its_content(api, cache_dir, tmp_path,
                                                              monkeypatch):
    """Trusted once, the same bytes load again in the session without
    trusted (a LoRA on that model, sd_reproduce()'s checks); other bytes,
    even at the same path, need it again."""
    import safetensors.torch
    import torch
    monkeypatch.setattr(pipeline, "_TRUSTED", set())
    ckpt = str(tmp_path / "tiny.ckpt")
    weights = safetensors.torch.load_file(api.tiny_single_file(cache_dir))
    torch.save(weights, ckpt)
    config = api.tiny_model("tiny", cache_dir)
    args = {"config": config, "local_files_only": True}
    with pytest.raises(ModelError, match="trusted"):
        api.load_pipeline(ckpt, **args)
    info = api.load_pipeline(ckpt, trusted=True, **args)
    assert api.load_pipeline(ckpt, **args)["key"] == info["key"]
    api.free_pipelines(info["key"])
    assert api.load_pipeline(ckpt, **args)["loaded"] is True
    api.free_pipelines(info["key"])
    weights[next(iter(weights))] += 1
    torch.save(weights, ckpt)
    with pytest.raises(ModelError, match="trusted"):
        api.load_pipeline(ckpt, **args)


def test_a_trusted_training_checkpoint_loads(api, cache_dir, tmp_path, monkeypatch):
    """Weights under "state_dict" beside Python objects (a Lightning
    checkpoint's hyper-parameters): torch.load's weights_only mode, which
    diffusers always uses, refuses those; trusted = TRUE reads them whole.
    The family comes from the nested weights (no config given)."""
    import argparse

    import safetensors.torch
    import torch
    monkeypatch.setattr(pipeline, "_TRUSTED", set())
    flat = safetensors.torch.load_file(api.tiny_single_file(cache_dir))
    ckpt = str(tmp_path / "trained.ckpt")
    torch.save({"state_dict": flat, "hyper_parameters": argparse.Namespace(lr=1e-4),
                "global_step": 10}, ckpt)
    with pytest.raises(Exception):
        torch.load(ckpt, weights_only=True)
    assert set(pipeline._checkpoint_shapes(ckpt)) == set(flat)
    config = api.tiny_model("tiny", cache_dir)
    info = api.load_pipeline(ckpt, trusted=True, config=config, local_files_only=True)
    unet = pipeline.get_entry(ckpt, config=config, local_files_only=True).pipe.unet
    ref = pipeline.get_entry(config).pipe.unet
    got, want = unet.state_dict(), ref.state_dict()
    assert list(got) == list(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name
    assert pipeline._family_of_checkpoint(ckpt, None) == "sd15"
    api.free_pipelines(info["key"])


@pytest.mark.parametrize("kind", ["xl_refiner", "xl_inpaint", "inpainting", "playground-v2-5"])
def test_checkpoints_that_are_not_text_to_image_are_refused(ckpt_kind_file, monkeypatch, kind):
    from diffusers.loaders import single_file_utils
    monkeypatch.setattr(pipeline, "_KINDS", {})
    monkeypatch.setattr(single_file_utils, "infer_diffusers_model_type", lambda sd: kind)
    with pytest.raises(ModelError, match="looks like a '%s' checkpoint" % kind):
        pipeline._family_of_checkpoint(ckpt_kind_file, None)


@pytest.fixture
def ckpt_kind_file(tmp_path):
    import safetensors.torch
    import torch
    f = str(tmp_path / "model.safetensors")
    safetensors.torch.save_file({"model.diffusion_model.x": torch.zeros(1)}, f)
    return f


def test_single_file_that_is_not_a_checkpoint_is_a_model_error(api, cache_dir, tmp_path):
    import safetensors.torch
    import torch
    f = str(tmp_path / "weights.safetensors")
    safetensors.torch.save_file({"something.weight": torch.zeros(2, 2)}, f)
    with pytest.raises(ModelError):
        api.load_pipeline(f, config=api.tiny_model("tiny", cache_dir), local_files_only=True)


def test_overlapping_quiet_blocks_restore_log_levels():
    """A load on one model may overlap a generation on another: the last
    quiet block out, not the first, restores the levels it found."""
    import threading
    import warnings

    import diffusers
    log = diffusers.utils.logging
    before = log.get_verbosity()
    filters = list(warnings.filters)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def a():
        with pipeline.quiet_logs():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with pipeline.quiet_logs():
            b_in.set()
            a_out.wait(5)
            seen.append(log.get_verbosity())  # still quiet after A left?
    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert a_out.is_set() and b_in.is_set()
    assert seen == [log.CRITICAL]
    assert log.get_verbosity() == before
    assert list(warnings.filters) == filters


def test_a_tiny_models_directory_is_that_tiny_model(api, cache_dir, tmp_path):
    pipeline.free()
    first = api.load_pipeline("tiny", cache_dir=cache_dir)
    path = api.tiny_model("tiny", cache_dir)
    again = api.load_pipeline(path + os.sep, cache_dir=cache_dir)
    assert again["loaded"] is False and again["key"] == first["key"]
    assert len(pipeline.cached()) == 1
    # a copy of its files elsewhere is an ordinary model directory
    copy = str(tmp_path / "tiny-copy")
    shutil.copytree(path, copy)
    other = api.load_pipeline(copy, cache_dir=cache_dir)
    assert other["source"] == "dir" and other["key"] != first["key"]
    pipeline.free(other["key"])


def test_free_model_takes_the_tiny_models_directory_too(api, cache_dir):
    pipeline.free()
    api.load_pipeline("tiny", cache_dir=cache_dir)
    path = api.tiny_model("tiny", cache_dir)
    assert api.free_model(path + os.sep) == 1
    assert pipeline.cached() == []


def test_thread_count_follows_the_variable_and_goes_back_to_torchs(monkeypatch):
    import torch
    monkeypatch.setattr(pipeline, "_DEFAULT_THREADS", 3)
    try:
        monkeypatch.setenv("RDIFFUSERS_TORCH_THREADS", "2")
        pipeline.setup_torch()
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("RDIFFUSERS_TORCH_THREADS")
        pipeline.setup_torch()
        assert torch.get_num_threads() == 3
        for bad in ("0", "-1", "1025", "x", "\u0662"):
            monkeypatch.setenv("RDIFFUSERS_TORCH_THREADS", bad)
            with pytest.raises(InputError, match="from 1 to 1024"):
                pipeline.setup_torch()
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)


def test_a_weight_variant_is_loaded_and_kept_apart(api, cache_dir, tmp_path):
    import diffusers
    import torch
    d = str(tmp_path / "variants")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(api.tiny_model("tiny", cache_dir))
    pipe.save_pretrained(d)
    with torch.no_grad():
        for p in pipe.unet.parameters():
            p.mul_(2)
    pipe.save_pretrained(d, variant="fp16")
    plain = api.load_pipeline(d)
    fp16 = api.load_pipeline(d, variant="fp16")
    assert plain["key"] != fp16["key"] and fp16["variant"] == "fp16"
    w = {k: next(pipeline.get_entry(d, variant=v).pipe.unet.parameters())
         for k, v in (("plain", None), ("fp16", "fp16"))}
    assert torch.equal(w["fp16"], 2 * w["plain"])
    api.free_pipelines(plain["key"])
    api.free_pipelines(fp16["key"])


def test_the_safety_checker_is_not_part_of_a_folders_revision(api, cache_dir, tmp_path):
    copy = str(tmp_path / "with-checker")
    shutil.copytree(api.tiny_model("tiny", cache_dir), copy)
    index = os.path.join(copy, "model_index.json")
    with open(index) as f:
        spec = json.load(f)
    spec["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    with open(index, "w") as f:
        json.dump(spec, f)
    os.makedirs(os.path.join(copy, "safety_checker"))
    weights = os.path.join(copy, "safety_checker", "model.safetensors")
    with open(weights, "wb") as f:
        f.write(b"one")
    before = pipeline.content_revision(copy)
    with open(weights, "wb") as f:
        f.write(b"two")
    assert pipeline.content_revision(copy) == before
