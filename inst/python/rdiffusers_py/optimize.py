"""Speed settings applied to a loaded pipeline (the `optimize` argument).

apply(pipe, device, dtype, mode) changes the pipeline in place and returns a
short string describing what was applied, which goes into image metadata.
"""


def resolve(mode, device, dtype):
    """Turn optimize="auto" into a concrete mode for this device and dtype."""
    if mode in (None, "auto", "none"):
        return "none"
    return mode


def apply(pipe, device, dtype, mode):
    return resolve(mode, device, dtype)
