"""torch must use its own BLAS even when the host process (R) exports one."""

import os
import subprocess
import sys
import textwrap

INST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "inst", "python")


def run(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=INST), timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_plain_python_needs_no_binding():
    assert run("import rdiffusers_py; print(rdiffusers_py.TORCH_BLAS)") == "not needed"


def test_a_host_blas_in_the_global_scope_triggers_deepbind_and_torch_still_works():
    # (Which BLAS then runs shows in speed only: bench/ measures that.)
    # Stand in for R: load the system BLAS (libblas3, which R depends on)
    # into the global scope first, then import the package.
    res = run("""
        import ctypes, ctypes.util, os
        ctypes.CDLL(ctypes.util.find_library("blas"), mode=os.RTLD_GLOBAL)
        ctypes.CDLL(None).sgemm_  # the host now exports sgemm_
        import rdiffusers_py, torch
        a = torch.ones(64, 64)
        assert torch.equal(a @ a, torch.full((64, 64), 64.0))
        print(rdiffusers_py.TORCH_BLAS, rdiffusers_py.BLAS)
    """)
    assert res == "deepbind torch"


def test_too_late_when_torch_came_first():
    want = "too late" if sys.platform.startswith("linux") else "not needed"
    assert run("import torch, rdiffusers_py; print(rdiffusers_py.TORCH_BLAS)") == want
    # Too late is harmless without a host BLAS, and recorded where there is one.
    assert run("import torch, rdiffusers_py; print(rdiffusers_py.BLAS)") == "torch"
    if sys.platform.startswith("linux"):
        assert run("""
            import ctypes, ctypes.util, os
            ctypes.CDLL(ctypes.util.find_library("blas"), mode=os.RTLD_GLOBAL)
            import torch, rdiffusers_py
            print(rdiffusers_py.BLAS)
        """) == "host"
