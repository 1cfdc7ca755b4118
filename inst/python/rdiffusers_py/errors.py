"""Errors the R user can act on.

R maps these classes to classed R conditions (rdiffusers_error_input,
rdiffusers_error_model, rdiffusers_error_lora, rdiffusers_error_file); any other Python exception
becomes rdiffusers_error_python.  Messages name arguments the way R spells
them (steps, guidance_scale, width, ...), because R users read them.
"""

__all__ = ["RdiffusersError", "InputError", "ModelError", "LoraError", "FileError"]


class RdiffusersError(Exception):
    """Base class of every error the helper raises on purpose."""


class InputError(RdiffusersError, ValueError):
    """An argument value the user can fix (unknown scheduler, bad size...)."""


class ModelError(RdiffusersError):
    """The model cannot be found, resolved or loaded."""


class LoraError(RdiffusersError):
    """A LoRA cannot be loaded, does not fit the model, or is unknown."""


class FileError(RdiffusersError):
    """A file cannot be written (its folder gone, no space, no permission)."""
