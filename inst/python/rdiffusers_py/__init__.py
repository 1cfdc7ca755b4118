"""Private helper package of the R package rdiffusers.

The R side calls exactly one function of this package per user operation and
gets back plain data: str, bool, float, int that fits in 32 bits, None, and
lists/dicts of those.  Seeds cross the bridge as decimal strings.  Pixels cross
as PNG files.  See api.py for the functions R calls.
"""

from ._blas import bind_torch_blas, blas_in_use

# Must run before anything imports torch (see _blas.py).
TORCH_BLAS = bind_torch_blas()
BLAS = blas_in_use(TORCH_BLAS)

from .api import *  # noqa: E402,F401,F403
