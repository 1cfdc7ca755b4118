"""LoRA adapters on cached pipelines.

R calls load_lora / unload_lora / list_loras / set_lora_scales (re-exported by
api.py).  Each works on one cache entry from pipeline.get_entry() and keeps
`entry.loras`, a list of dicts {name, path, sha256, scale, a1111_hash} in
load order (a1111_hash: see pipeline.a1111_lora_hash()), in
step with the adapters diffusers holds on the entry's components.

Guarantees the R side documents:
- A load that fails for any reason leaves the pipeline as it was: adapters
  that appeared during the attempt are deleted again, and when none were
  loaded before, the PEFT wrappers are removed too (unload_lora_weights), so
  a seed gives the same pixels as before the attempt.
- Unloading the last adapter removes the PEFT wrappers, so the base model is
  restored bit for bit.  Fused weights are unfused first (fusing followed by
  unloading would leave the LoRA baked into the base weights).
- Pickle formats (.bin, .ckpt, .pt, .pth) can run code when read, so they are
  refused unless trusted=True.

Task pipelines (img2img, inpaint) are built with from_pipe and share the
entry's UNet and text encoders, so adapters act on every task of a model and
never on another cache entry.
"""

import contextlib
import keyword
import logging
import os
import re

from .errors import InputError, LoraError
from .pipeline import (PICKLE_EXTENSIONS, SAFE_EXTENSIONS, a1111_lora_hash, file_sha256,
                       quiet_logs, read_pickle_checkpoint)

__all__ = [
    "load_lora", "unload_lora", "list_loras", "set_lora_scales", "describe",
    "make_test_lora", "make_non_lora_file",
]


def _lora_error(msg):
    return LoraError(msg)


def _input_error(msg):
    return InputError(msg)


def _get_entry(model, load_args, load=True):
    from . import pipeline
    return pipeline.get_entry(model, load=load, **load_args)


def _no_lora_named(names, why):
    """The error for LoRA names that are not loaded; `why` ends the sentence."""
    listed = ", ".join(repr(n) for n in names)
    head = ("No LoRA named %s is loaded" if len(names) == 1 else "No LoRAs named %s are loaded")
    return _input_error(head % listed + why)


def _not_loaded(model, names):
    return _no_lora_named(names, f": model {model!r} is not loaded (with these settings).")


def _loras(entry):
    loras = getattr(entry, "loras", None)
    if loras is None:
        loras = []
        entry.loras = loras
    return loras


def default_adapter_name(path):
    """File stem turned into a Python identifier ("my-style.v2" -> "my_style_v2")."""
    stem = os.path.basename(path)
    for ext in SAFE_EXTENSIONS + PICKLE_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    name = re.sub(r"\W", "_", stem, flags=re.ASCII).strip("_")
    if not name:
        # No ASCII letter or digit ("画像.safetensors"): one name per file
        # name, so that two such files do not clash.
        import hashlib
        name = "lora_" + hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    if name[0].isdigit() or keyword.iskeyword(name) or _module_attribute(name):
        name = "lora_" + name
    return name


def _module_attribute(name):
    """True for names torch modules already use ("train", "float", "to"):
    PEFT cannot add an adapter under them."""
    import torch
    return hasattr(torch.nn.ModuleDict, name) or hasattr(torch.nn.ParameterDict, name)


def _check_name(name):
    # Adapter names become attribute keys in PEFT's ModuleDicts; a dot would
    # be read as a submodule path, so only identifiers are accepted.
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise _input_error(f"adapter_name must be a valid identifier, not {name!r}.")
    if _module_attribute(name):
        raise _input_error(f"adapter_name cannot be {name!r}: torch modules use that name; "
                           "choose another.")
    return name


def _adapter_set(pipe):
    try:
        listed = pipe.get_list_adapters()
    except ValueError:  # no PEFT backend: nothing can be loaded either
        return set()
    return {a for adapters in listed.values() for a in adapters}


def _read_state_dict(path, trusted):
    """Read a LoRA file into a dict of tensors, refusing what is not one."""
    lower = path.lower()
    if lower.endswith(SAFE_EXTENSIONS):
        try:
            import safetensors.torch
            state = safetensors.torch.load_file(path, device="cpu")
        except Exception as e:  # header or data not safetensors
            raise _lora_error(
                f"{os.path.basename(path)} is not a valid .safetensors file ({type(e).__name__}: {e})."
            ) from e
    elif lower.endswith(PICKLE_EXTENSIONS):
        if not trusted:
            raise _lora_error(
                f"{os.path.basename(path)} is a pickle file, which can run arbitrary code when "
                "loaded; use a .safetensors file, or trusted=True if you trust its source."
            )
        try:
            # As a trusted checkpoint is read: the safe reader first, full
            # unpickling only because the user said the file is trusted.
            state = read_pickle_checkpoint(path)
        except Exception as e:
            raise _lora_error(
                f"{os.path.basename(path)} could not be read as a PyTorch file ({type(e).__name__}: {e})."
            ) from e
    else:
        raise _lora_error(
            f"{os.path.basename(path)}: unsupported LoRA file type; expected .safetensors "
            "(or .bin/.ckpt/.pt/.pth with trusted=True)."
        )
    import torch
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _lora_error(f"{os.path.basename(path)} does not hold a dict of tensors, so it is not a LoRA.")
    # Every LoRA format diffusers converts (PEFT "lora_A/B", kohya
    # "lora_up/down", old "lora.up/down") names its tensors with "lora".
    if not any("lora" in k.lower() for k in state):
        raise _lora_error(
            f"{os.path.basename(path)} holds no LoRA tensors (no 'lora_A/lora_B/lora_up/lora_down' keys); "
            "is it a full checkpoint or an embedding?"
        )
    return state


@contextlib.contextmanager
def _unmatched_keys():
    """Collects the names of LoRA tensors that matched no layer: diffusers
    (denoiser) and transformers (text encoders) load the rest of the file
    and only log these, as warnings that quiet_logs() keeps off the
    console. Their loggers get their own level and handler for the block.
    (diffusers' "missing keys" report is not used: it picks the adapter's
    keys by a substring test, so adapter "b" claims the keys of every
    "down_blocks" layer of another adapter.)"""
    found = []
    said = re.compile(r"Loading adapter weights from state_dict led to unexpected keys "
                      r"found in the model:")

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            for part in said.split(message)[1:]:  # diffusers: "...: k1, k2. "
                part = part.split("Loading adapter weights")[0]  # a missing-keys report after
                found.extend(k.strip() for k in part.strip().rstrip(".").split(",") if k.strip())
            for line in message.splitlines():  # transformers: a table, "key | UNEXPECTED |"
                cells = [c.strip() for c in line.split("|")]
                if len(cells) > 1 and cells[1] == "UNEXPECTED":
                    found.append(cells[0])

    handler = Collect(logging.WARNING)
    loggers = [logging.getLogger(n) for n in ("diffusers.utils.peft_utils",
                                              "transformers.integrations.peft")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
        lg.propagate = False
        lg.addHandler(handler)
    try:
        yield found
    finally:
        for lg, (level, propagate) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def _apply_scales(pipe, loras):
    if loras:
        pipe.set_adapters([l["name"] for l in loras], [float(l["scale"]) for l in loras])


def _set_scales(pipe, loras, scales):
    """Give the adapters named in `scales` (name -> float) those scales:
    diffusers first, then the records, so a failure leaves the records (and,
    restored, the pipeline) as they were."""
    wanted = [float(scales.get(l["name"], l["scale"])) for l in loras]
    try:
        pipe.set_adapters([l["name"] for l in loras], wanted)
    except Exception as e:
        try:
            _apply_scales(pipe, loras)
        except Exception:
            pass
        raise _lora_error(f"Could not set LoRA scales: {type(e).__name__}: {e}") from e
    for l, s in zip(loras, wanted):
        l["scale"] = s


def _unfuse(pipe):
    if getattr(pipe, "num_fused_loras", 0):
        comps = [c for c in pipe._lora_loadable_modules if getattr(pipe, c, None) is not None]
        pipe.unfuse_lora(components=comps)
        # Unfusing edits weights through `.data`, which packed convolutions
        # cannot see: drop their packs (see _packed_conv.py).
        from .optimize import unpack_convs
        unpack_convs(*(getattr(pipe, c) for c in comps))


def _restore(pipe, before, loras):
    """Put adapters back to `before` (a set of names) with the scales in loras."""
    if not before and _adapter_set(pipe):
        # Nothing was loaded before: remove every wrapper, as unloading the
        # last LoRA does (deleting the adapter alone leaves PEFT's layers).
        try:
            pipe.unload_lora_weights()
        except Exception:
            pass
    new = _adapter_set(pipe) - before
    for name in new:
        for comp in pipe._lora_loadable_modules:
            model = getattr(pipe, comp, None)
            if model is not None and name in getattr(model, "peft_config", {}):
                try:
                    if hasattr(model, "delete_adapters"):
                        model.delete_adapters([name])
                    else:
                        from peft.tuners.tuners_utils import BaseTunerLayer
                        for module in model.modules():
                            if isinstance(module, BaseTunerLayer):
                                module.delete_adapter(name)
                        model.peft_config.pop(name, None)
                except Exception:
                    pass
    for comp in pipe._lora_loadable_modules:
        model = getattr(pipe, comp, None)
        if model is not None and hasattr(model, "peft_config") and not model.peft_config:
            # A component left with no adapter (the attempt injected PEFT
            # wrappers into it, or failed half-way): give it back its own
            # layers, so its module tree is the one it had before, and drop
            # the empty peft_config that would make get_list_adapters()
            # report it as LoRA-capable. Other components keep their LoRAs.
            try:
                from diffusers.utils.peft_utils import recurse_remove_peft_layers
                recurse_remove_peft_layers(model)
            except Exception:
                pass
            try:
                del model.peft_config
            except AttributeError:
                pass
            if hasattr(model, "_hf_peft_config_loaded"):
                model._hf_peft_config_loaded = False
    if before:
        _apply_scales(pipe, loras)


def _entry_load(entry, path, scale=1.0, adapter_name=None, trusted=False):
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise _input_error(f"LoRA file {path} does not exist.")
    name = _check_name(adapter_name if adapter_name is not None else default_adapter_name(path))
    scale = float(scale)
    if entry.info.get("optimize") == "bf16-compile":
        raise _compiled_error()
    a1111_hash = a1111_lora_hash(path)  # reads the file once for both hashes
    sha = file_sha256(path)
    with entry.lock:
        pipe = entry.pipe
        loras = _loras(entry)
        existing = next((l for l in loras if l["name"] == name), None)
        if existing is not None:
            if existing["sha256"] != sha:
                raise _lora_error(
                    f"An adapter named '{name}' is already loaded from another file "
                    f"({existing['path']}); unload it first or choose another adapter_name."
                )
            # Same file under the same name: only the scale changes.
            _set_scales(pipe, loras, {name: scale})
            return dict(existing)
        if not hasattr(pipe, "load_lora_weights"):
            raise _lora_error(f"{type(pipe).__name__} does not support LoRA adapters.")
        state = _read_state_dict(path, trusted)
        before = _adapter_set(pipe)
        try:
            with quiet_logs(), _unmatched_keys() as unmatched:
                pipe.load_lora_weights(state, adapter_name=name)
        except Exception as e:
            _restore(pipe, before, loras)
            lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
            mismatches = [l for l in lines if l.startswith("size mismatch")]
            other_base = ("its tensor shapes do not match this model, so it was made for "
                          "another base model (e.g. SDXL vs SD 1.5)")
            if mismatches:
                # torch lists every tensor; the first one and a count say enough.
                detail = "%s; %d tensors differ, first: %s" % (other_base, len(mismatches),
                                                                mismatches[0])
            elif "ignore_mismatched_sizes" in str(e):
                # transformers' text encoders say so and point to a report
                # that quiet_logs() kept off the console.
                detail = other_base
            else:
                detail = "%s: %s" % (type(e).__name__, lines[0] if lines else "")
            raise _lora_error(f"Could not load LoRA {os.path.basename(path)}: {detail}") from e
        if name not in _adapter_set(pipe):
            # diffusers only warns when no key matched a component.
            _restore(pipe, before, loras)
            raise _lora_error(
                f"Loading {os.path.basename(path)} added no adapter: none of its tensors matched "
                "this model's layers (wrong base model or unsupported LoRA format)."
            )
        if unmatched:
            # Part of the file would act, the rest be dropped: not the LoRA
            # its author trained.
            _restore(pipe, before, loras)
            raise _lora_error(
                f"Could not load LoRA {os.path.basename(path)}: {len(unmatched)} of its tensors "
                f"match no layer of this model (first: {unmatched[0]}), so it was made for "
                "another model or holds more than a LoRA for it."
            )
        record = {"name": name, "path": path, "sha256": sha, "scale": scale,
                  "a1111_hash": a1111_hash}
        loras.append(record)
        try:
            _apply_scales(pipe, loras)
        except Exception as e:
            loras.remove(record)
            _restore(pipe, before, loras)
            raise _lora_error(f"Could not activate LoRA {name}: {e}") from e
        return dict(record)


def _entry_unload(entry, adapter_name=None):
    with entry.lock:
        pipe = entry.pipe
        loras = _loras(entry)
        if adapter_name is None:
            names = [l["name"] for l in loras]
        else:
            names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
            unknown = [n for n in names if n not in {l["name"] for l in loras}]
            if unknown:
                raise _no_lora_named(
                    unknown, f" (loaded: {', '.join(l['name'] for l in loras) or 'none'}).")
        if not _adapter_set(pipe) and not loras:
            return []
        _unfuse(pipe)
        remaining = [l for l in loras if l["name"] not in names]
        if remaining:
            pipe.delete_adapters(names)
            loras[:] = remaining
            _apply_scales(pipe, loras)
        else:
            # Removing the wrappers, not only the adapters, gives back the
            # exact module tree and so the exact base-model pixels.
            pipe.unload_lora_weights()
            loras.clear()
        return names


def _entry_set_scales(entry, scales):
    with entry.lock:
        loras = _loras(entry)
        known = {l["name"]: l for l in loras}
        unknown = [n for n in scales if n not in known]
        if unknown:
            raise _no_lora_named(unknown, f" (loaded: {', '.join(known) or 'none'}).")
        _set_scales(entry.pipe, loras, scales)
        return [dict(l) for l in loras]


def describe(entry):
    """List of dicts (name, path, sha256, scale) of the LoRAs active on a
    cache entry, for image metadata.  Empty list when none."""
    return [dict(l) for l in (getattr(entry, "loras", None) or [])]


# Functions R calls (through api.py) ------------------------------------


def load_lora(model, path, scale=1.0, adapter_name=None, trusted=False, **load_args):
    """Load a LoRA file onto the model's cached pipeline; return its record
    {name, path, sha256, scale}.  Loading an already loaded name from the
    same file only sets its scale."""
    _refuse_compiled(load_args)
    return _entry_load(_get_entry(model, load_args), path, scale, adapter_name, trusted)


def _compiled_error():
    # The compiled graph holds the weights as constants (inductor freezing)
    # and wraps the denoiser, so diffusers would find no UNet.
    return _input_error("LoRAs cannot be loaded into a compiled model (optimize = "
                        "\"bf16-compile\"); load the model with optimize = \"bf16\".")


def _refuse_compiled(load_args):
    """Refuses a compiled model before it is loaded (and compiled) for
    nothing: the mode comes from the load arguments as get_entry() finds it."""
    from . import pipeline
    _, _, mode = pipeline.run_settings(load_args.get("device") or "auto",
                                       load_args.get("dtype") or "auto",
                                       load_args.get("optimize") or "auto")
    if mode == "bf16-compile":
        raise _compiled_error()


def unload_lora(model, adapter_name=None, **load_args):
    """Unload one adapter (or a list), or all when adapter_name is None;
    return the names unloaded.  Never loads the model."""
    entry = _get_entry(model, load_args, load=False)
    if entry is None:
        if adapter_name is None:
            return []
        raise _not_loaded(model, [adapter_name] if isinstance(adapter_name, str) else adapter_name)
    return _entry_unload(entry, adapter_name)


def list_loras(model, **load_args):
    """List of {name, path, sha256, scale}, in load order; empty when the
    model is not loaded (it is not loaded to find out)."""
    entry = _get_entry(model, load_args, load=False)
    return [] if entry is None else describe(entry)


def set_lora_scales(model, scales, **load_args):
    """scales: dict adapter name -> float.  Changes scales without reloading;
    returns list_loras().  Never loads the model."""
    entry = _get_entry(model, load_args, load=False)
    if entry is None:
        raise _not_loaded(model, list(dict(scales)))
    return _entry_set_scales(entry, dict(scales))


# Test files --------------------------------------------------------------


def make_test_lora(model_dir, out_path, seed=0, rank=4, target="unet"):
    """Write a small random LoRA for the diffusers pipeline saved in
    model_dir (any UNet-based pipeline: SD 1.5, SDXL) to out_path, offline.

    target: "unet" (attention projections to_q/to_k/to_v/to_out.0),
    "unet_conv" (the ResNet convolutions conv1/conv2) or "text_encoder"
    (q/k/v/out_proj of the first text encoder).  The B
    matrices are random too (init_lora_weights=False), so the LoRA changes
    the output.  out_path ending in .safetensors is written with diffusers'
    save_lora_weights; any other extension with torch.save (pickle)."""
    import json
    import torch
    import diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from diffusers.utils import convert_state_dict_to_diffusers

    with open(os.path.join(model_dir, "model_index.json")) as f:
        pipe_cls = getattr(diffusers, json.load(f)["_class_name"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if target in ("unet", "unet_conv"):
            model = diffusers.UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
            modules = ["to_q", "to_k", "to_v", "to_out.0"] if target == "unet" else ["conv1", "conv2"]
        elif target == "text_encoder":
            import transformers
            model = transformers.CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder")
            modules = ["q_proj", "k_proj", "v_proj", "out_proj"]
        else:
            raise _input_error("target must be 'unet', 'unet_conv' or 'text_encoder'.")
        config = LoraConfig(r=int(rank), lora_alpha=int(rank), init_lora_weights=False,
                            target_modules=modules)
        model.add_adapter(config)
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
    out_path = os.path.abspath(out_path)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    if out_path.lower().endswith(".safetensors"):
        kwargs = {"text_encoder_lora_layers" if target == "text_encoder" else "unet_lora_layers": layers}
        pipe_cls.save_lora_weights(os.path.dirname(out_path),
                                   weight_name=os.path.basename(out_path),
                                   safe_serialization=True, **kwargs)
    else:
        prefix = "text_encoder." if target == "text_encoder" else "unet."
        torch.save({prefix + k: v.contiguous() for k, v in layers.items()}, out_path)
    return out_path


def make_non_lora_file(out_path, seed=0):
    """Write a valid .safetensors file of random tensors whose keys are not
    LoRA keys (what a full checkpoint or an embedding looks like)."""
    import torch
    import safetensors.torch
    g = torch.Generator().manual_seed(int(seed))
    tensors = {
        "unet.conv_in.weight": torch.randn(4, 4, 3, 3, generator=g),
        "emb_params": torch.randn(2, 8, generator=g),
    }
    safetensors.torch.save_file(tensors, out_path)
    return os.path.abspath(out_path)
