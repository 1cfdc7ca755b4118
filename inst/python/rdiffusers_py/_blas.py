"""Keep torch on its own BLAS when Python is embedded in R.

libtorch_cpu.so carries MKL and exports BLAS symbols such as sgemm_.  R has
already loaded its own BLAS (libblas.so.3) into the process's global symbol
scope, and on Linux the first definition loaded wins: torch's float32 matrix
products then run on R's BLAS -- the reference BLAS on a default Debian R,
about 60 times slower than MKL (measured here: 4.8 vs 297 GFLOP/s; a whole
SD1.5-layout float32 generation ran 17 times slower in R than in Python).

Loading libtorch_cpu.so first with RTLD_DEEPBIND puts its own symbols ahead
of the global scope for its own calls, so torch uses its own MKL whatever the
host process has loaded.  It is done only when needed: on Linux, when the
process already exports sgemm_ or dgemm_ (R does: its BLAS, or libRblas;
a plain Python does not), and before
torch is imported.
"""

import ctypes
import importlib.util
import os
import sys


def bind_torch_blas():
    """Returns what was done: "deepbind" (torch bound to its own BLAS),
    "not needed", "too late" (torch was imported before this package) or
    "unavailable" (torch not found)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "RTLD_DEEPBIND"):
        return "not needed"
    if "torch" in sys.modules:
        return "too late"
    host = ctypes.CDLL(None)
    if not any(hasattr(host, name) for name in ("sgemm_", "dgemm_")):
        return "not needed"
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return "unavailable"
    lib = os.path.join(os.path.dirname(spec.origin), "lib", "libtorch_cpu.so")
    if not os.path.exists(lib):
        return "unavailable"
    ctypes.CDLL(lib, mode=os.RTLD_NOW | os.RTLD_GLOBAL | os.RTLD_DEEPBIND)
    return "deepbind"


def blas_in_use(state):
    """Whose BLAS torch's float32 matrix products run on: "host" when torch
    was imported before this package in a process that exports BLAS
    symbols (R), otherwise "torch".  Pixels of float32 work can differ
    between the two, so images record it."""
    if state != "too late" or not sys.platform.startswith("linux"):
        return "torch"
    host = ctypes.CDLL(None)
    return "host" if any(hasattr(host, n) for n in ("sgemm_", "dgemm_")) else "torch"
