"""LoRA adapters on cached pipelines (owned by the LoRA work; see api.py)."""

__all__ = ["load_lora", "unload_lora", "list_loras", "set_lora_scales", "describe"]


def describe(entry):
    """List of dicts (name, path, sha256, scale) of the LoRAs active on a
    cache entry, for image metadata.  Empty list when none."""
    return []


def load_lora(model, path, scale=1.0, adapter_name=None, trusted=False, **load_args):
    raise NotImplementedError


def unload_lora(model, adapter_name=None, **load_args):
    raise NotImplementedError


def list_loras(model, **load_args):
    raise NotImplementedError


def set_lora_scales(model, scales, **load_args):
    raise NotImplementedError
