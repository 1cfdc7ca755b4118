"""Loading pipelines, the pipeline cache, devices and presets.

A cache entry is keyed by everything that changes the loaded weights (resolved
model, revision, dtype, device, variant, optimize mode, single-file config).
Calls into one entry are serialized by its lock because diffusers pipelines
are not thread-safe (the scheduler holds per-run state).
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import warnings

from . import tiny
from .errors import InputError, ModelError

__all__ = ["Entry", "get_entry", "cached", "free", "presets", "devices",
           "versions", "resolve_device", "resolve_dtype", "setup_torch",
           "default_cache_dir"]

_CACHE = {}                     # key -> Entry
_CACHE_LOCK = threading.RLock()  # guards _CACHE and loading
_HUB_KEYS = {}                  # hub request -> key, so a cache hit needs no network
_HASHES = {}                    # ([kind,] path, size, mtime) -> sha256 hex
_KINDS = {}                     # (path, size, mtime) -> checkpoint kind; ("config", id) -> class
_TRUSTED = set()                # revisions of pickle checkpoints loaded with trusted=True

# Weight files (checkpoints and LoRAs): safetensors, or pickle formats, which
# can run code when read and so need trusted=True.
SAFE_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".bin", ".ckpt", ".pt", ".pth", ".pkl")

_FAMILY_CLASSES = {
    "sd15": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
}


# --- presets ----------------------------------------------------------------

def _preset(model_id, family, steps, guidance_scale, size, scheduler=None, strength=0.75):
    return {"model_id": model_id, "family": family, "steps": steps,
            "guidance_scale": guidance_scale, "width": size, "height": size,
            "scheduler": scheduler, "strength": strength}


_PRESETS = {
    "tiny": _preset("tiny", "sd15", 2, 7.5, 64),
    "tiny-sdxl": _preset("tiny-sdxl", "sdxl", 2, 5.0, 64),
    "tiny-sd3": _preset("tiny-sd3", "sd3", 2, 7.0, 64),
    "sd15": _preset("stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15", 30, 7.5, 512,
                    "DPM++ 2M Karras"),
    "sd21": _preset("stabilityai/stable-diffusion-2-1", "sd15", 30, 7.5, 768,
                    "DPM++ 2M Karras"),
    "sdxl": _preset("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", 30, 6.0, 1024,
                    "DPM++ 2M Karras"),
    "sd-turbo": _preset("stabilityai/sd-turbo", "sd15", 1, 0.0, 512, None, 0.5),
    "sdxl-turbo": _preset("stabilityai/sdxl-turbo", "sdxl", 1, 0.0, 512, None, 0.5),
    "sd3-medium": _preset("stabilityai/stable-diffusion-3-medium-diffusers", "sd3", 28, 7.0,
                          1024),
}


def presets():
    return {k: dict(v) for k, v in _PRESETS.items()}


# --- environment ------------------------------------------------------------

_QUIET = False
# torch's own thread count, put back when RDIFFUSERS_TORCH_THREADS is unset.
_DEFAULT_THREADS = None
# Far above any machine's cores (more threads than cores still reproduce
# bit-identically, slowly); OpenMP crashes the process with 100000.
MAX_THREADS = 1024


def setup_torch():
    """Silence progress bars once; apply RDIFFUSERS_TORCH_THREADS when set
    (read on every call so R can change it between calls), torch's default
    when it is not."""
    global _QUIET, _DEFAULT_THREADS
    import torch
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    threads = os.environ.get("RDIFFUSERS_TORCH_THREADS", "").strip()
    n = _DEFAULT_THREADS
    if threads:
        n = int(threads) if re.fullmatch(r"\+?[0-9]+", threads) else 0
        if not 1 <= n <= MAX_THREADS:
            raise InputError("RDIFFUSERS_TORCH_THREADS must be a whole number from 1 to %d, "
                             "not %r." % (MAX_THREADS, threads))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _QUIET:
        # R shows its own progress; tqdm bars garble R consoles and knitr output.
        import diffusers
        import transformers
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        # diffusers' lazy pipeline imports make transformers log, once per
        # process, that torchvision is missing (the PIL image processors it
        # falls back to are what we want). Trigger them here, quietly.
        with quiet_logs():
            diffusers.AutoPipelineForText2Image  # noqa: B018
        _QUIET = True
    return torch


_QUIET_LOCK = threading.Lock()
_QUIET_STATE = {"depth": 0, "saved": None}


@contextlib.contextmanager
def quiet_logs(active=True):
    """Silence diffusers' and transformers' loggers and Python warnings for
    a block.  Used where we report the outcome ourselves, in R's terms:
    loading (notices about optional torchvision processors and dtype casts
    that say nothing to an R user), failed LoRA loads (hundreds of lines of
    mismatching tensors), scheduler notices and generation (long prompts get
    our own warning).  Blocks may overlap across threads (a load on one
    model while another generates): log levels and warning filters are
    process-wide, so the outermost block saves them and the last one out
    restores them."""
    if not active:
        yield
        return
    import diffusers
    import transformers
    with _QUIET_LOCK:
        if _QUIET_STATE["depth"] == 0:
            filters = warnings.catch_warnings()
            filters.__enter__()
            warnings.simplefilter("ignore")
            _QUIET_STATE["saved"] = (diffusers.utils.logging.get_verbosity(),
                                     transformers.utils.logging.get_verbosity(), filters)
            diffusers.utils.logging.set_verbosity(diffusers.utils.logging.CRITICAL)
            transformers.utils.logging.set_verbosity(transformers.utils.logging.CRITICAL)
        _QUIET_STATE["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_STATE["depth"] -= 1
            if _QUIET_STATE["depth"] == 0:
                d_level, t_level, filters = _QUIET_STATE["saved"]
                _QUIET_STATE["saved"] = None
                diffusers.utils.logging.set_verbosity(d_level)
                transformers.utils.logging.set_verbosity(t_level)
                filters.__exit__(None, None, None)


def default_cache_dir():
    d = os.environ.get("RDIFFUSERS_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "rdiffusers")
    return d


def devices():
    import torch
    available = []
    cuda_names = []
    if torch.cuda.is_available():
        available.append("cuda")
        cuda_names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.append("mps")
    available.append("cpu")
    try:
        cpu_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        cpu_bf16 = False
    return {"available": available, "default": available[0], "cuda_names": cuda_names,
            "torch_threads": int(torch.get_num_threads()), "cpu_bf16": cpu_bf16}


def resolve_device(device):
    """The device to run on, spelled one way per device ("cuda:0", "mps",
    "cpu") so that "cuda" and "cuda:0" share one cached pipeline and record
    the same device in metadata."""
    avail = devices()["available"]
    if device in (None, "auto"):
        device = avail[0]
    base, _, index = device.partition(":")
    if base not in ("cuda", "mps", "cpu"):
        raise InputError("device must be \"auto\", \"cuda\", \"mps\" or \"cpu\", not %r." % device)
    if base not in avail:
        raise InputError("device %r is not available here; available: %s."
                         % (device, ", ".join(avail)))
    if base != "cuda":
        if index not in ("", "0"):
            raise InputError("device %r does not exist: there is one %s device." % (device, base))
        return base
    import torch
    if not index:
        index = str(torch.cuda.current_device())
    if not index.isdigit() or int(index) >= torch.cuda.device_count():
        raise InputError("device %r does not exist: this machine has %d CUDA device(s)."
                         % (device, torch.cuda.device_count()))
    return "cuda:%d" % int(index)


def resolve_dtype(dtype, device):
    if dtype in (None, "auto"):
        return "float32" if device == "cpu" else "float16"
    names = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
             "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
    if dtype not in names:
        raise InputError("dtype must be one of \"auto\", \"float32\", \"float16\", \"bfloat16\", "
                         "not %r." % dtype)
    return names[dtype]


def versions():
    import importlib
    out = {"python": "%d.%d.%d" % sys.version_info[:3]}
    for mod, name in [("torch", "torch"), ("diffusers", "diffusers"),
                      ("transformers", "transformers"), ("peft", "peft"),
                      ("accelerate", "accelerate"), ("safetensors", "safetensors"),
                      ("PIL", "pillow"), ("numpy", "numpy")]:
        try:
            out[name] = str(importlib.import_module(mod).__version__)
        except Exception:
            out[name] = None
    return out


# --- resolving a model ------------------------------------------------------

def file_sha256(path):
    """sha256 hex of a file's bytes, memoized by path, size and mtime."""
    return _file_hashes(path, tensors=False)[0]


def a1111_lora_hash(path):
    """The 12 hex digits by which AUTOMATIC1111 (its `Lora hashes` field)
    and Civitai know a LoRA file: the sha256 of a .safetensors file's tensor
    data (what follows its header, so editing the header's metadata keeps
    it), of the whole file otherwise."""
    full, tensors = _file_hashes(path, tensors=path.lower().endswith(".safetensors"))
    return (tensors or full)[:12]


def _file_hashes(path, tensors):
    """(sha256 of the file, sha256 of what follows its safetensors header,
    or None when not asked for or there is no such header), in one read."""
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    tensors_memo = ("tensors",) + memo
    if memo in _HASHES and (not tensors or tensors_memo in _HASHES):
        return _HASHES[memo], _HASHES.get(tensors_memo)
    whole, body = hashlib.sha256(), None
    with open(path, "rb") as f:
        if tensors:
            head = f.read(8)
            whole.update(head)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if 0 <= n <= st.st_size - 8:
                header = f.read(n)
                whole.update(header)
                body = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            whole.update(chunk)
            if body is not None:
                body.update(chunk)
    _HASHES[memo] = whole.hexdigest()
    if tensors:
        _HASHES[tensors_memo] = body.hexdigest() if body is not None else None
    return _HASHES[memo], _HASHES.get(tensors_memo)


def content_revision(path):
    """"sha256:<hex>" of a checkpoint file's bytes, or of what a pipeline
    directory loads: model_index.json and every file in the component folders
    it lists (weights, configs, tokenizer files), as sorted "relative path
    hash" lines. So the same model gives the same revision wherever it is
    stored, and editing any file the pipeline reads (a scheduler config, a
    tokenizer) gives another. JSON files are hashed without the library
    versions that wrote them (see _json_sha256)."""
    if os.path.isfile(path):
        return "sha256:" + file_sha256(path)
    return _tree_revision(path, _pipeline_files(path))


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx")


def config_revision(path):
    """content_revision() of a single-file checkpoint's `config` folder over
    what from_single_file() reads from it: configs and tokenizer files, not
    weights (the checkpoint brings those)."""
    return _tree_revision(path, [rel for rel in _pipeline_files(path)
                                 if not rel.lower().endswith(_WEIGHT_SUFFIXES)])


def _tree_revision(path, files):
    h = hashlib.sha256()
    for rel in files:
        full = os.path.join(path, rel)
        digest = _json_sha256(full) if rel.endswith(".json") else file_sha256(full)
        h.update(("%s %s\n" % (rel, digest)).encode())
    return "sha256:" + h.hexdigest()


# Written by save_pretrained: which library version (or source) wrote the
# file, not how the model computes.
_PROVENANCE_KEYS = ("_diffusers_version", "transformers_version", "_name_or_path")


def _pipeline_files(path):
    """Relative paths ("/"-separated, sorted) of model_index.json and of the
    files in the component folders it names. The safety checker is never
    loaded (see _from_pretrained); hidden files and folders are skipped."""
    with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    out = ["model_index.json"]
    for name, spec in index.items():
        folder = os.path.join(path, name)
        if name.startswith("_") or name == "safety_checker" or not isinstance(spec, list) \
                or not any(spec) or not os.path.isdir(folder):
            continue
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for fname in files:
                if not fname.startswith("."):
                    out.append(os.path.relpath(os.path.join(root, fname), path)
                               .replace(os.sep, "/"))
    return sorted(out)


def _json_sha256(path):
    """sha256 of a JSON config without its _PROVENANCE_KEYS (canonical
    form), so re-saving the same model with another diffusers or
    transformers version keeps its revision. Not JSON: the bytes. Memoized
    like file_sha256 (generation resolves a local model on every call)."""
    st = os.stat(path)
    memo = ("json", os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if memo not in _HASHES:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError:
            return file_sha256(path)
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in _PROVENANCE_KEYS}
        _HASHES[memo] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return _HASHES[memo]


_FAMILY_OF_CLASS = {cls: fam for fam, cls in _FAMILY_CLASSES.items()}


def _family_of_class(class_name, where):
    """The family of a pipeline class, or a ModelError. Only text-to-image
    pipelines: img2img and inpainting are derived from them, while an
    inpainting, refiner or pix2pix model (other UNet inputs) cannot make
    text-to-image images and would fail inside diffusers."""
    fam = _FAMILY_OF_CLASS.get(class_name)
    if fam is None:
        raise ModelError(
            "%s is a %s; rdiffusers loads the text-to-image pipelines of Stable Diffusion "
            "1.x/2.x, SDXL and SD3 (%s) and makes img2img and inpainting from them."
            % (where, class_name, ", ".join(_FAMILY_CLASSES.values())))
    return fam


def _family_of_dir(path):
    index = os.path.join(path, "model_index.json")
    with open(index, encoding="utf-8") as f:
        cls = json.load(f).get("_class_name")
    return _family_of_class(cls, "The model in %s" % path)


def _family_of_checkpoint(path, config, local_files_only=False):
    """Which pipeline class loads this single-file checkpoint.

    A `config` decides (it is what from_single_file builds the pipeline
    from): a local directory, or a hub repo whose model_index.json is
    fetched (one small file, memoised per repo so later calls need no
    network). Without one, the checkpoint's own tensor names decide, read
    from the .safetensors header only; pickle checkpoints must be read whole.
    """
    if config and os.path.isdir(config):
        return _family_of_dir(config)
    if config:
        memo = ("config", config)
        if memo not in _KINDS:
            cls = _hub_pipeline_class(config, local_files_only)
            if cls is None:          # not reachable: fall back to the weights
                return _family_of_checkpoint(path, None)
            _KINDS[memo] = cls
        return _family_of_class(_KINDS[memo], "The config %r" % config)
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if memo not in _KINDS:
        try:
            from diffusers.loaders.single_file_utils import infer_diffusers_model_type
            _KINDS[memo] = infer_diffusers_model_type(_checkpoint_shapes(path))
        except Exception as e:  # noqa: BLE001
            raise ModelError("Cannot tell which model family %s is (%s); pass `config`."
                             % (path, e))
    kind = _KINDS[memo]
    fam = _CHECKPOINT_FAMILIES.get(kind)
    if fam is None:
        raise ModelError("%s looks like a %r checkpoint; rdiffusers loads text-to-image "
                         "checkpoints of Stable Diffusion 1.x/2.x, SDXL and SD3." % (path, kind))
    return fam


# diffusers' infer_diffusers_model_type() kinds that are text-to-image
# models; not "xl_refiner", "xl_inpaint", "inpainting" and the like.
_CHECKPOINT_FAMILIES = {"v1": "sd15", "v2": "sd15", "xl_base": "sdxl",
                        "sd3": "sd3", "sd35_medium": "sd3", "sd35_large": "sd3"}


def is_safetensors(path):
    """A .safetensors file, whatever the case of its extension (diffusers
    itself looks for the lower-case one only)."""
    return path.lower().endswith(SAFE_EXTENSIONS)


def _checkpoint_shapes(path):
    """Tensor name -> tensor with the right shape, without reading weights
    where the format allows it (safetensors: the header; meta tensors)."""
    if is_safetensors(path):
        import torch
        from safetensors import safe_open
        with safe_open(path, framework="pt") as f:
            return {k: torch.empty(f.get_slice(k).get_shape(), device="meta")
                    for k in f.keys()}
    return read_pickle_checkpoint(path)


def read_pickle_checkpoint(path):
    """The weights of a trusted pickle checkpoint (callers check the trust).
    Many training checkpoints hold Python objects beside their weights
    (Lightning's callbacks, hyper-parameters), which torch.load's safe
    weights_only mode refuses, so that is tried first and full unpickling
    second; the weights may sit under "state_dict", as diffusers allows."""
    import torch
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - pickle.UnpicklingError and others
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    while isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    return checkpoint


@contextlib.contextmanager
def _checkpoint_reader():
    """Within it, diffusers' single-file loader reads pickle checkpoints with
    read_pickle_checkpoint() (it always passes weights_only=True to
    torch.load, so trusted = TRUE alone would not load such files) and a
    .SAFETENSORS file as safetensors (it would hand that to torch.load)."""
    from diffusers.loaders import single_file_utils
    original = single_file_utils.load_state_dict

    def load_state_dict(checkpoint_file, *args, **kwargs):
        if isinstance(checkpoint_file, str):
            if checkpoint_file.lower().endswith(PICKLE_EXTENSIONS):
                return read_pickle_checkpoint(checkpoint_file)
            if is_safetensors(checkpoint_file):
                import safetensors.torch
                return safetensors.torch.load_file(checkpoint_file, device="cpu")
        return original(checkpoint_file, *args, **kwargs)

    single_file_utils.load_state_dict = load_state_dict
    try:
        yield
    finally:
        single_file_utils.load_state_dict = original


def _hub_pipeline_class(repo_id, local_files_only):
    """The _class_name in a hub repo's model_index.json, or None when it
    cannot be had (offline and not cached, no such repo)."""
    try:
        from huggingface_hub import hf_hub_download
        index = hf_hub_download(repo_id, "model_index.json",
                                local_files_only=bool(local_files_only) or _offline())
        with open(index, encoding="utf-8") as f:
            return json.load(f).get("_class_name")
    except Exception:  # noqa: BLE001
        return None


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _resolve(model, revision, variant, config, cache_dir, local_files_only, single_file, trusted):
    """Return dict(source, model_id, path, revision, family, config).
    A `config` or `revision` the model cannot use is an error, not ignored."""
    r = _resolve_source(model, revision, variant, config, cache_dir, local_files_only,
                        single_file, trusted)
    what = {"tiny": "a tiny model", "dir": "a local directory", "file": "a checkpoint file",
            "hub": "a hub model"}[r["source"]]
    if config and r["source"] != "file":
        raise InputError("config is for single-file checkpoints; %r is %s." % (model, what))
    if revision and r["source"] != "hub":
        raise InputError("revision is for models from the Hugging Face hub; %r is %s."
                         % (model, what))
    return r


def _resolve_source(model, revision, variant, config, cache_dir, local_files_only, single_file,
                    trusted):
    if not isinstance(model, str) or not model:
        raise InputError("model must be a preset name, a Hugging Face id or a path.")
    if model in tiny.TINY:
        path = tiny.build(model, cache_dir or default_cache_dir())
        return {"source": "tiny", "model_id": model, "path": path,
                "revision": content_revision(path), "family": tiny.TINY[model], "config": None}
    if model in _PRESETS:
        model = _PRESETS[model]["model_id"]
    expanded = os.path.expanduser(model)
    # A model reached through a symlink is the same model: one cache entry
    # (keyed by the real path), so a LoRA loaded on it applies whichever
    # path is given. A file keeps the path given, whose name tells its
    # format: the hub cache links model.safetensors to an extensionless blob.
    if os.path.isfile(expanded) or single_file:
        path = os.path.abspath(expanded)
        if not os.path.isfile(path):
            raise ModelError("Checkpoint file %s does not exist." % path)
        if not path.lower().endswith(SAFE_EXTENSIONS + PICKLE_EXTENSIONS):
            # An image or other file given by mistake: trusted = TRUE would
            # only hand it to torch.load().
            raise ModelError(
                "%s is not a model file: a checkpoint is a %s file (or a pickle %s file, with "
                "trusted = TRUE), and a diffusers model is a directory with model_index.json."
                % (path, SAFE_EXTENSIONS[0], "/".join(PICKLE_EXTENSIONS)))
        revision = content_revision(path)  # reads bytes; unpickles nothing
        if not is_safetensors(path):
            # Trust is given to the file's content, once per session: later
            # calls (a LoRA on this model, sd_reproduce()'s checks) find it.
            if trusted:
                _TRUSTED.add(revision)
            elif revision not in _TRUSTED:
                raise ModelError(
                    "%s is not a .safetensors file. Pickle checkpoints (.ckpt, .pt) can run "
                    "arbitrary code when loaded; load it only if you trust its source, with "
                    "trusted = TRUE." % path)
        config_rev = None
        if config and os.path.isdir(os.path.expanduser(config)):
            config = os.path.abspath(os.path.expanduser(config))
            if os.path.isfile(os.path.join(config, "model_index.json")):
                # The architecture comes from there: part of what made an image.
                config_rev = config_revision(config)
        return {"source": "file", "model_id": path, "path": path, "real": os.path.realpath(path),
                "revision": revision, "config_revision": config_rev,
                "family": _family_of_checkpoint(path, config, local_files_only),
                "config": config}
    if os.path.isdir(expanded):
        path = os.path.realpath(expanded)
        # A tiny model's own directory (sd_pipelines() shows it) is that tiny
        # model: one cache entry and one copy in memory, not two.
        for name in tiny.TINY:
            built = tiny.tiny_dir(name, cache_dir or default_cache_dir())
            if os.path.isdir(built) and os.path.samefile(path, built):
                return _resolve_source(name, revision, variant, config, cache_dir,
                                       local_files_only, single_file, trusted)
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise ModelError("%s is a directory but not a diffusers pipeline (no "
                             "model_index.json)." % path)
        return {"source": "dir", "model_id": path, "path": path,
                "revision": content_revision(path), "family": _family_of_dir(path),
                "config": None}
    looks_like_path = (os.sep in model and not _HUB_ID.match(model)) or model.startswith((".", "~"))
    if _HUB_ID.match(model) and not looks_like_path:
        return _resolve_hub(model, revision, variant, local_files_only)
    raise ModelError("Unknown model %r: not a preset (%s), not an existing file or directory, "
                     "and not a Hugging Face id like \"org/name\"."
                     % (model, ", ".join(sorted(_PRESETS))))


class _HeldRecords(logging.Filter):
    """Holds back what a logger says (diffusers' "Couldn't connect to the
    Hub ... Will try to load from local cache") until the outcome is known:
    replayed when the load works, dropped when it fails, because then the
    error R raises names the hub's answer itself."""

    def __init__(self):
        super().__init__()
        self.records = []

    def filter(self, record):
        self.records.append(record)
        return False


@contextlib.contextmanager
def _hold_logs(name):
    logger = logging.getLogger(name)
    held = _HeldRecords()
    logger.addFilter(held)
    try:
        yield held
    finally:
        logger.removeFilter(held)


def _resolve_hub(model_id, revision, variant, local_files_only):
    from diffusers import DiffusionPipeline
    offline = bool(local_files_only) or _offline()
    try:
        # safety_checker=None: it is never loaded (see _from_pretrained), so
        # do not download its 1.2 GB either.
        with _hold_logs("diffusers.pipelines.pipeline_utils") as held:
            path = DiffusionPipeline.download(model_id, revision=revision, variant=variant,
                                              local_files_only=offline, safety_checker=None)
        for record in held.records:
            logging.getLogger(record.name).handle(record)
    except Exception as e:  # noqa: BLE001
        at = "" if revision is None else " at revision %r" % revision
        cause = e.__cause__
        if offline:
            why = (" It is not in the local Hugging Face cache and downloads are off "
                   "(HF_HUB_OFFLINE or local_files_only). (%s: %s)" % (type(e).__name__, e))
        elif isinstance(cause, Exception):
            # diffusers could not ask the hub (no network, 404, gated
            # repository), fell back to the local cache, and did not find the
            # model there; its own message points at a traceback R users do
            # not see. Name the hub's answer instead.
            why = (" It is not in the local Hugging Face cache, and asking the hub failed "
                   "(%s: %s)." % (type(cause).__name__, str(cause).strip().splitlines()[0]
                                  if str(cause).strip() else ""))
        else:
            why = " (%s: %s)" % (type(e).__name__, e)
        # "plots/model" reads as a hub id and as a relative path: say that
        # the path was looked for too.
        where = (" No directory or file %r exists either (relative to %s)."
                 % (model_id, os.getcwd()))
        raise ModelError("Cannot get %r from the Hugging Face hub%s.%s%s"
                         % (model_id, at, why, where)) from e
    path = str(path)
    commit = revision
    if os.path.basename(os.path.dirname(path)) == "snapshots":
        commit = os.path.basename(path)
    return {"source": "hub", "model_id": model_id, "path": path, "revision": commit,
            "family": _family_of_dir(path), "config": None}


# --- the cache --------------------------------------------------------------

class Entry:
    """One loaded pipeline plus what belongs to it."""

    def __init__(self, key, pipe, info):
        self.key = key
        self.pipe = pipe
        self.info = info
        self.lock = threading.RLock()
        self.loras = []      # maintained by lora.py
        self._tasks = {"txt2img": pipe}

    def task(self, name):
        """Pipeline for task name, derived once with from_pipe so that all
        tasks share the same components (and memory)."""
        if name not in self._tasks:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting
            makers = {"img2img": AutoPipelineForImage2Image, "inpaint": AutoPipelineForInpainting}
            if name not in makers:
                raise InputError("task must be \"txt2img\", \"img2img\" or \"inpaint\", not %r."
                                 % name)
            p = makers[name].from_pipe(self.pipe)
            p.set_progress_bar_config(disable=True)
            self._tasks[name] = p
        return self._tasks[name]


def _key(parts):
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def run_settings(device="auto", dtype="auto", optimize="auto"):
    """(device, dtype, optimize mode) as a cache entry for these arguments
    has them, found without loading anything."""
    from . import optimize as opt
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    return device, dtype, opt.resolve(optimize, device, dtype)


def get_entry(model, revision=None, device="auto", dtype="auto", variant=None, config=None,
              cache_dir=None, optimize="auto", local_files_only=False, single_file=None,
              trusted=False, load=True):
    """Return the cache Entry for these load arguments, loading when needed.
    Sets entry.info["loaded"] to whether this call loaded it.  load=False:
    only look; return None when no such pipeline is cached (nothing is
    loaded, built or downloaded)."""
    from . import optimize as opt
    t0 = time.perf_counter()  # load_seconds: resolving (hashing a local model) included
    setup_torch()
    device, dtype, mode = run_settings(device, dtype, optimize)
    with _CACHE_LOCK:
        request = _key([model, revision, variant, config, device, dtype, mode, single_file])
        if request in _HUB_KEYS and _HUB_KEYS[request] in _CACHE:
            entry = _CACHE[_HUB_KEYS[request]]
            entry.info["loaded"] = False
            return entry
        if load:
            r = _resolve(model, revision, variant, config, cache_dir, local_files_only,
                         single_file, trusted)
        else:
            # Only look: resolve from disk and the local Hugging Face cache,
            # never the network, so that another spelling of the same model
            # and commit (revision "main" or the commit itself, the preset or
            # its hub id, another path) finds the loaded pipeline. A tiny
            # model that is not built is not loaded either: do not build it.
            if model in tiny.TINY and not _is_local(model, cache_dir):
                return None
            # Nor hash a big local model's files when nothing of it is loaded.
            if isinstance(model, str) and model not in tiny.TINY and \
                    os.path.exists(os.path.expanduser(model)) and not keys_of(model):
                return None
            try:
                r = _resolve(model, revision, variant, config, cache_dir, True,
                             single_file, trusted)
            except (InputError, ModelError):
                return None
        key = _key({"model": r.get("real", r["model_id"]), "revision": r["revision"], "dtype": dtype,
                    "device": device, "variant": variant, "optimize": mode,
                    "config": r["config"], "config_revision": r.get("config_revision")})
        if r["source"] == "hub":
            _HUB_KEYS[request] = key
        if key in _CACHE:
            entry = _CACHE[key]
            entry.info["loaded"] = False
            return entry
        if not load:
            return None
        if r["source"] in ("dir", "file"):
            # Its files (or its config folder's) changed since a copy was
            # loaded (re-saved by a training run, say): that copy can never
            # be asked for again, so it goes before the new one loads.
            real = os.path.realpath(r["path"])
            now = (r["revision"], r.get("config_revision"))
            free_keys([k for k, e in _CACHE.items()
                       if e.info["source"] == r["source"] and e.info["config"] == r["config"]
                       and (e.info["revision"], e.info.get("config_revision")) != now
                       and os.path.realpath(e.info["model_path"]) == real])
        pipe = _load(r, variant, dtype, local_files_only)
        try:
            if device != "cpu":  # loaded on the CPU; .to("cpu") would only log a notice
                pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
            _clip_skip_shim(pipe)
            applied = opt.apply(pipe, device, dtype, mode)
        except (InputError, ModelError):
            raise
        except Exception as e:  # noqa: BLE001 - e.g. out of GPU memory
            raise ModelError("Could not prepare %s on %s (%s: %s)"
                             % (r["model_id"], device, type(e).__name__, e)) from e
        info = {"key": key, "model": model, "model_id": r["model_id"], "model_path": r["path"],
                "source": r["source"], "family": r["family"], "variant": variant,
                "config": r["config"], "config_revision": r.get("config_revision"),
                "pipeline_class": type(pipe).__name__, "revision": r["revision"],
                "device": device, "dtype": dtype, "scheduler": type(pipe.scheduler).__name__,
                "optimize": str(applied), "loaded": True,
                "load_seconds": round(time.perf_counter() - t0, 3)}
        entry = Entry(key, pipe, info)
        _CACHE[key] = entry
        return entry


def _is_local(model, cache_dir):
    """True when `model` names something on disk now: a built tiny model, or
    an existing file or directory (directly or through a preset)."""
    if not isinstance(model, str) or not model:
        return False
    if model in tiny.TINY:
        target = tiny.tiny_dir(model, cache_dir or default_cache_dir())
        return os.path.isfile(os.path.join(target, "model_index.json"))
    if model in _PRESETS:
        model = _PRESETS[model]["model_id"]
    return os.path.exists(os.path.expanduser(model))


class _TextModelView:
    """Stands in for `text_encoder.text_model` (see _clip_skip_shim)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)


def _clip_skip_shim(pipe):
    """diffusers 0.42's SD pipelines apply clip_skip through
    `text_encoder.text_model.final_layer_norm`, which transformers 5's
    CLIPTextModel no longer has (its layers sit on the model itself).  Give it
    a view with that name, outside nn.Module's registry so weights, state
    dicts and LoRA targets are unchanged."""
    te = getattr(pipe, "text_encoder", None)
    if te is None or "text_model" in te.__dict__ or hasattr(te, "text_model"):
        return
    if hasattr(te, "final_layer_norm"):
        object.__setattr__(te, "text_model", _TextModelView(te))


def _load(r, variant, dtype, local_files_only):
    import torch
    import diffusers
    torch_dtype = getattr(torch, dtype)
    # diffusers >= 0.42 renamed torch_dtype to dtype (the old name warns).
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
        dtype_arg = "dtype"
    except ImportError:
        dtype_arg = "torch_dtype"
    try:
        with quiet_logs():
            return _from_pretrained(r, variant, torch_dtype, dtype_arg, local_files_only)
    except (InputError, ModelError):
        raise
    except Exception as e:  # noqa: BLE001
        raise ModelError("Could not load %s (%s: %s)" % (r["model_id"], type(e).__name__, e)) from e


def _from_pretrained(r, variant, torch_dtype, dtype_arg, local_files_only):
    import diffusers
    if r["source"] == "file":
        cls = getattr(diffusers, _FAMILY_CLASSES[r["family"]])
        kw = {dtype_arg: torch_dtype}
        if r["config"]:
            kw["config"] = r["config"]
        if local_files_only or _offline():
            kw["local_files_only"] = True
        # Only trusted pickles get here (_resolve); the cache lock is held.
        with _checkpoint_reader():
            return cls.from_single_file(r["path"], **kw)
    kw = {dtype_arg: torch_dtype, "local_files_only": True}
    if variant:
        kw["variant"] = variant
    if r["family"] == "sd15":
        # SD checkpoints on the hub list a safety checker; R users asked
        # for images, and the checker needs extra weights and network.
        kw["safety_checker"] = None
        kw["requires_safety_checker"] = False
    # Hub models are loaded from their resolved snapshot dir, so what is
    # loaded is exactly the commit recorded as the revision.
    return diffusers.DiffusionPipeline.from_pretrained(r["path"], **kw)


def cached():
    with _CACHE_LOCK:
        return [dict(e.info) for e in _CACHE.values()]


def keys_of(model):
    """Cache keys of every pipeline of `model` however it is spelled: the
    name it was loaded by, a cache key, a preset or its hub id, or any path
    to the same directory or file. Never loads or resolves anything remote."""
    names = {model}
    if model in _PRESETS:
        names.add(_PRESETS[model]["model_id"])
    path = os.path.expanduser(model)
    real = os.path.realpath(path) if os.path.exists(path) else None
    with _CACHE_LOCK:
        return [k for k, e in _CACHE.items()
                if k == model or e.info["model"] in names or e.info["model_id"] in names
                or (real is not None and e.info.get("model_path")
                    and os.path.realpath(e.info["model_path"]) == real)]


def free(key=None):
    return free_keys(list(_CACHE) if key is None else [key])


def free_keys(keys):
    with _CACHE_LOCK:
        keys = [k for k in keys if k in _CACHE]
        for k in keys:
            del _CACHE[k]
        for req in [q for q, k in _HUB_KEYS.items() if k in keys]:
            del _HUB_KEYS[req]
    if keys:
        import gc
        gc.collect()
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass
    return len(keys)
