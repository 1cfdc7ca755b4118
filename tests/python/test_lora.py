"""LoRA loading, stacking, scaling, unloading and rejection on tiny pipelines.

Every check compares pixels of a fixed seed: a LoRA must change them, scale 0
and unloading must give back the base pixels bit for bit, and a rejected file
must leave them exactly as they were.
"""

import hashlib
import os
import threading

import pytest

# Plain imports: a missing torch, diffusers or peft must fail the run, never
# skip it (conftest.py puts inst/python on sys.path).
import peft  # noqa: E402,F401
import torch  # noqa: E402

from rdiffusers_py import errors, lora, pipeline, tiny  # noqa: E402

torch.set_num_threads(1)


class Entry:
    """The parts of a pipeline cache entry lora.py uses."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.info = {"optimize": "none"}
        self.lock = threading.RLock()
        self.loras = []


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    cache = str(root / "cache")
    sd15 = tiny.build("tiny", cache)
    sdxl = tiny.build("tiny-sdxl", cache)
    f = {"sd15": sd15, "sdxl": sdxl}
    f["a"] = lora.make_test_lora(sd15, str(root / "style-a.safetensors"), seed=1)
    f["b"] = lora.make_test_lora(sd15, str(root / "b.safetensors"), seed=2)
    f["te"] = lora.make_test_lora(sd15, str(root / "te.safetensors"), seed=3, target="text_encoder")
    f["pickle"] = lora.make_test_lora(sd15, str(root / "pk.bin"), seed=4)
    f["xl"] = lora.make_test_lora(sdxl, str(root / "xl.safetensors"), seed=5)
    f["xl_te"] = lora.make_test_lora(sdxl, str(root / "xlte.safetensors"), seed=6,
                                     target="text_encoder")
    f["not_lora"] = lora.make_non_lora_file(str(root / "weights.safetensors"))
    text = root / "notes.safetensors"
    text.write_text("this is a text file, not safetensors\n")
    f["text"] = str(text)
    import safetensors.torch
    # LoRA-looking keys for a component SD 1.5 does not have: diffusers
    # loads nothing and only logs a warning.
    safetensors.torch.save_file(
        {"transformer.blocks.0.attn.to_q.lora_A.weight": torch.ones(4, 8),
         "transformer.blocks.0.attn.to_q.lora_B.weight": torch.ones(8, 4)},
        str(root / "other.safetensors"))
    f["nothing"] = str(root / "other.safetensors")
    # A LoRA for this model plus tensors for a layer it does not have:
    # diffusers loads the part that fits and only logs the rest.
    part = safetensors.torch.load_file(f["a"])
    part["unet.nonexistent_block.to_q.lora.down.weight"] = torch.zeros(4, 32)
    part["unet.nonexistent_block.to_q.lora.up.weight"] = torch.zeros(32, 4)
    safetensors.torch.save_file(part, str(root / "part.safetensors"))
    f["part"] = str(root / "part.safetensors")
    # The same for a text-encoder LoRA (transformers reports those keys).
    te_part = safetensors.torch.load_file(f["te"])
    te_part["text_encoder.text_model.encoder.layers.0.nonexistent.lora_A.weight"] = torch.zeros(4, 32)
    te_part["text_encoder.text_model.encoder.layers.0.nonexistent.lora_B.weight"] = torch.zeros(32, 4)
    safetensors.torch.save_file(te_part, str(root / "te-part.safetensors"))
    f["te_part"] = str(root / "te-part.safetensors")
    f["missing"] = str(root / "absent.safetensors")
    return f


def _pipe(model_dir):
    import diffusers
    return diffusers.DiffusionPipeline.from_pretrained(model_dir)


@pytest.fixture
def entry(files):
    return Entry(_pipe(files["sd15"]))


def pixels(pipe, seed=1):
    out = pipe("a red cat", num_inference_steps=2, height=64, width=64,
               generator=torch.Generator().manual_seed(seed), output_type="np")
    return hashlib.sha256(out.images[0].tobytes()).hexdigest()


def test_lora_changes_output_and_scale_zero_is_base(entry, files):
    base = pixels(entry.pipe)
    rec = lora._entry_load(entry, files["a"])
    assert rec["name"] == "style_a"
    with_lora = pixels(entry.pipe)
    assert with_lora != base
    lora._entry_set_scales(entry, {"style_a": 0.0})
    assert pixels(entry.pipe) == base
    lora._entry_set_scales(entry, {"style_a": 1.0})
    assert pixels(entry.pipe) == with_lora


def test_reloading_a_loaded_name_only_sets_its_scale(entry, files):
    base = pixels(entry.pipe)
    lora._entry_load(entry, files["a"], adapter_name="a")
    lora._entry_load(entry, files["a"], adapter_name="a", scale=0.0)
    assert [l["scale"] for l in lora.describe(entry)] == [0.0]
    assert pixels(entry.pipe) == base
    with pytest.raises(errors.LoraError, match="already loaded"):
        lora._entry_load(entry, files["b"], adapter_name="a")


def test_stacked_loras_have_their_own_scales(entry, files):
    lora._entry_load(entry, files["a"], adapter_name="a")
    only_a = pixels(entry.pipe)
    lora._entry_load(entry, files["b"], adapter_name="b", scale=0.5)
    both = pixels(entry.pipe)
    assert both != only_a
    assert [(l["name"], l["scale"]) for l in lora.describe(entry)] == [("a", 1.0), ("b", 0.5)]
    lora._entry_set_scales(entry, {"b": 0.0})
    assert pixels(entry.pipe) == only_a
    lora._entry_set_scales(entry, {"b": 0.5})
    assert pixels(entry.pipe) == both
    # Unloading one keeps the other with its scale.
    assert lora._entry_unload(entry, "b") == ["b"]
    assert pixels(entry.pipe) == only_a


def test_unload_restores_base_bit_identically(entry, files):
    base = pixels(entry.pipe)
    lora._entry_load(entry, files["a"])
    lora._entry_load(entry, files["te"], scale=0.7)
    assert pixels(entry.pipe) != base
    lora._entry_unload(entry)
    assert pixels(entry.pipe) == base
    assert lora.describe(entry) == []
    assert entry.pipe.get_list_adapters() == {}
    # The PEFT wrappers are gone, not only the adapters.
    attn = entry.pipe.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1
    assert type(attn.to_q) is torch.nn.Linear


def test_fused_lora_is_unfused_before_unloading(entry, files):
    # rdiffusers never fuses, but a user may on entry.pipe.  Unfusing
    # subtracts the delta again, so the weights come back up to rounding
    # (bit-identity is only promised for unfused LoRAs); without the unfuse
    # the whole LoRA would stay baked in.
    base = {k: v.clone() for k, v in entry.pipe.unet.state_dict().items()}
    lora._entry_load(entry, files["a"])
    entry.pipe.fuse_lora(components=["unet"])
    lora._entry_unload(entry)
    after = entry.pipe.unet.state_dict()
    assert after.keys() == base.keys()
    for k, v in base.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=1e-5)


def test_metadata_records_name_path_hash_scale(entry, files):
    lora._entry_load(entry, files["a"], scale=0.25, adapter_name="style")
    with open(files["a"], "rb") as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()
    # A1111's hash of a .safetensors LoRA skips the 8-byte length and the
    # JSON header it gives.
    header = 8 + int.from_bytes(data[:8], "little")
    a1111 = hashlib.sha256(data[header:]).hexdigest()[:12]
    assert a1111 != sha[:12]
    assert lora.describe(entry) == [
        {"name": "style", "path": os.path.abspath(files["a"]), "sha256": sha, "scale": 0.25,
         "a1111_hash": a1111}
    ]
    # Copies: metadata already handed out does not change with the model.
    described = lora.describe(entry)
    described[0]["scale"] = 9.0
    assert lora.describe(entry)[0]["scale"] == 0.25


def test_a1111_hash_ignores_the_safetensors_header_and_covers_other_files(tmp_path):
    from rdiffusers_py import pipeline
    import safetensors.torch
    import torch
    tensors = {"w": torch.arange(6.0)}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    safetensors.torch.save_file(tensors, str(a), metadata={"ss_output_name": "a"})
    safetensors.torch.save_file(tensors, str(b), metadata={"ss_output_name": "renamed"})
    assert pipeline.file_sha256(str(a)) != pipeline.file_sha256(str(b))
    assert pipeline.a1111_lora_hash(str(a)) == pipeline.a1111_lora_hash(str(b))
    # The whole file's hash, read in the same pass, is the file's.
    assert pipeline.file_sha256(str(a)) == hashlib.sha256(a.read_bytes()).hexdigest()
    pickle = tmp_path / "c.pt"
    pickle.write_bytes(b"not a safetensors file")
    assert pipeline.a1111_lora_hash(str(pickle)) == \
        hashlib.sha256(b"not a safetensors file").hexdigest()[:12]
    # A .safetensors name on a file too short for its header: the whole file.
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\xff" * 12)
    assert pipeline.a1111_lora_hash(str(short)) == hashlib.sha256(b"\xff" * 12).hexdigest()[:12]


@pytest.mark.parametrize("bad,error,message", [
    ("not_lora", errors.LoraError, "no LoRA tensors"),
    ("text", errors.LoraError, "not a valid .safetensors"),
    ("xl", errors.LoraError, "another base model"),
    ("xl_te", errors.LoraError, "another base model"),
    ("pickle", errors.LoraError, "trusted"),
    ("nothing", errors.LoraError, "added no adapter"),
    ("part", errors.LoraError, "2 of its tensors match no layer of this model"),
    ("te_part", errors.LoraError, "2 of its tensors match no layer of this model"),
    ("missing", errors.InputError, "does not exist"),
])
@pytest.mark.parametrize("preloaded", [False, True])
def test_rejected_files_leave_the_pipeline_unchanged(entry, files, bad, error, message, preloaded):
    if preloaded:
        lora._entry_load(entry, files["a"])
    def tree():
        return [(c, n, type(m).__name__) for c in ("unet", "text_encoder")
                for n, m in getattr(entry.pipe, c).named_modules()]
    before = pixels(entry.pipe)
    adapters = entry.pipe.get_list_adapters()
    records = lora.describe(entry)
    modules = tree()
    with pytest.raises(error, match=message):
        lora._entry_load(entry, files[bad])
    assert pixels(entry.pipe) == before
    assert entry.pipe.get_list_adapters() == adapters
    assert lora.describe(entry) == records
    assert tree() == modules


def test_pickle_loads_when_trusted(entry, files):
    base = pixels(entry.pipe)
    lora._entry_load(entry, files["pickle"], trusted=True)
    assert pixels(entry.pipe) != base
    lora._entry_unload(entry)
    assert pixels(entry.pipe) == base


def test_bad_names_and_unknown_adapters_are_input_errors(entry, files):
    with pytest.raises(errors.InputError):
        lora._entry_load(entry, files["a"], adapter_name="has.dot")
    with pytest.raises(errors.InputError, match="torch modules use"):
        lora._entry_load(entry, files["a"], adapter_name="train")
    with pytest.raises(errors.InputError, match=r"No LoRA named 'nope' is loaded \(loaded: none\)"):
        lora._entry_unload(entry, "nope")
    with pytest.raises(errors.InputError, match="No LoRAs named 'nope', 'nix' are loaded"):
        lora._entry_set_scales(entry, {"nope": 1.0, "nix": 0.5})


def test_default_adapter_names_are_identifiers():
    assert lora.default_adapter_name("/x/my-style.v2.safetensors") == "my_style_v2"
    assert lora.default_adapter_name("/x/3d.bin") == "lora_3d"
    # Names torch modules already use cannot be PEFT adapter names.
    assert lora.default_adapter_name("/x/train.safetensors") == "lora_train"
    assert lora.default_adapter_name("/x/float.safetensors") == "lora_float"
    # File names without an ASCII letter or digit get names that differ.
    a, b = (lora.default_adapter_name(p) for p in ("/x/\u753b\u50cf.safetensors",
                                                    "/x/\u5199\u771f.safetensors"))
    assert a != b and a.startswith("lora_") and a.isidentifier() and a.isascii()


def test_a_file_named_like_a_module_method_loads(entry, files, tmp_path):
    import shutil
    f = str(tmp_path / "eval.safetensors")
    shutil.copy(files["a"], f)
    assert lora._entry_load(entry, f)["name"] == "lora_eval"


def test_lora_on_one_pipeline_does_not_leak_into_another(files):
    e1, e2 = Entry(_pipe(files["sd15"])), Entry(_pipe(files["sd15"]))
    base2 = pixels(e2.pipe)
    lora._entry_load(e1, files["a"])
    assert pixels(e2.pipe) == base2
    assert e2.pipe.get_list_adapters() == {}


def test_lora_acts_on_task_pipelines_that_share_components(entry, files):
    import diffusers
    from PIL import Image
    i2i = diffusers.AutoPipelineForImage2Image.from_pipe(entry.pipe)
    assert i2i.unet is entry.pipe.unet
    init = Image.new("RGB", (64, 64), (200, 40, 40))

    def run():
        out = i2i("a red cat", image=init, strength=0.8, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(3), output_type="np")
        return hashlib.sha256(out.images[0].tobytes()).hexdigest()

    base = run()
    lora._entry_load(entry, files["a"])
    assert run() != base
    lora._entry_unload(entry)
    assert run() == base


def test_sdxl_lora_changes_sdxl_output_and_unloads(files):
    e = Entry(_pipe(files["sdxl"]))
    base = pixels(e.pipe)
    lora._entry_load(e, files["xl"])
    assert pixels(e.pipe) != base
    lora._entry_unload(e)
    assert pixels(e.pipe) == base


def test_api_functions_work_on_cached_entries(files, tmp_path):
    from rdiffusers_py import api
    model = files["sd15"]
    try:
        rec = api.load_lora(model, files["a"], scale=0.5)
        assert api.list_loras(model) == [rec]
        entry = pipeline.get_entry(model)
        assert entry.task("img2img").unet is entry.pipe.unet
        assert entry.task("inpaint").unet is entry.pipe.unet
        assert api.set_lora_scales(model, {"style_a": 0.0})[0]["scale"] == 0.0
        assert api.unload_lora(model) == ["style_a"]
        assert api.list_loras(model) == []
    finally:
        pipeline.free()


def test_a_compiled_model_is_refused_before_it_is_loaded(files):
    from rdiffusers_py import api
    pipeline.free()
    with pytest.raises(errors.InputError, match="compiled model"):
        api.load_lora(files["sd15"], files["a"], optimize="bf16-compile")
    assert pipeline.cached() == []


def test_failed_scale_change_keeps_records_and_pipeline(entry, files, monkeypatch):
    lora._entry_load(entry, files["a"], adapter_name="a", scale=0.5)
    ref = pixels(entry.pipe)
    real = entry.pipe.set_adapters

    def refuse(names, weights=None, **kw):
        if weights is not None and 0.5 not in list(weights):
            raise RuntimeError("refused")
        return real(names, weights, **kw)
    monkeypatch.setattr(entry.pipe, "set_adapters", refuse)
    with pytest.raises(errors.LoraError, match="refused"):
        lora._entry_set_scales(entry, {"a": 0.9})
    with pytest.raises(errors.LoraError, match="refused"):
        lora._entry_load(entry, files["a"], adapter_name="a", scale=0.9)
    assert [l["scale"] for l in lora.describe(entry)] == [0.5]
    monkeypatch.undo()
    assert pixels(entry.pipe) == ref


def test_listing_and_unloading_never_load_a_model(files):
    from rdiffusers_py import api
    model = files["sd15"]
    pipeline.free()
    try:
        assert api.list_loras(model) == []
        assert api.unload_lora(model) == []
        with pytest.raises(errors.InputError, match="not loaded"):
            api.unload_lora(model, "style_a")
        with pytest.raises(errors.InputError, match="not loaded"):
            api.set_lora_scales(model, {"style_a": 0.5})
        assert pipeline.cached() == []
        # Cached under other settings is another pipeline: still nothing.
        rec = api.load_lora(model, files["a"], optimize="none")
        assert api.list_loras(model, optimize="bf16") == []
        assert len(pipeline.cached()) == 1
        # The same directory spelt differently is the same pipeline.
        rel = os.path.relpath(model)
        assert api.list_loras(rel + os.sep, optimize="none") == [rec]
        # A hub id that was never loaded is not looked up online.
        assert api.list_loras("nobody/never-loaded") == []
    finally:
        pipeline.free()


def test_listing_builds_reads_and_downloads_nothing(tmp_path, monkeypatch):
    """Look-only calls: a tiny model that is not built stays unbuilt, a
    single file's hub config is not fetched, an untrusted pickle or a
    folder that is no pipeline are simply not loaded."""
    from rdiffusers_py import api, tiny
    import huggingface_hub
    pipeline.free()
    cache = str(tmp_path / "empty-cache")
    built, fetched = [], []
    monkeypatch.setattr(tiny, "build", lambda *a, **k: built.append(a))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda *a, **k: fetched.append(a))
    monkeypatch.setattr(pipeline, "_HASHES", {})
    st = tmp_path / "model.safetensors"
    st.write_bytes(b"not read")
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not unpickled")
    (tmp_path / "folder").mkdir()
    assert api.list_loras("tiny", cache_dir=cache) == []
    assert api.list_loras(str(st), config="org/repo") == []
    assert api.list_loras(str(ckpt)) == []
    assert api.list_loras(str(tmp_path / "folder")) == []
    assert api.unload_lora(str(ckpt)) == []
    assert built == [] and fetched == [] and pipeline._HASHES == {}
