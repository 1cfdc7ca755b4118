"""nn.Conv2d with its weight pre-packed for oneDNN (CPU, bfloat16).

Imported only by optimize.prepack_convs(), after torch is loaded (see
_blas.py for why this package must not import torch early).  Why and when
it is used: optimize.py.
"""

import torch

__all__ = ["PackCache", "PackedConv2d"]


class PackCache:
    """The packed weight and what it was packed for, as one tuple
    (key, packed weight, source) replaced in a single assignment, so a
    reader never pairs one key with another weight.  A copy of a module
    (deepcopy, pickle) starts empty: an opaque oneDNN tensor cannot be
    copied, and the copy packs its own weight on its first call."""
    __slots__ = ("state", "failed")

    def __init__(self):
        self.state, self.failed = None, False

    @property
    def key(self):
        return None if self.state is None else self.state[0]

    def __deepcopy__(self, memo):
        return PackCache()

    def __reduce__(self):
        return (PackCache, ())


class PackedConv2d(torch.nn.Conv2d):
    """nn.Conv2d whose bf16 CPU inference uses a weight packed once per input
    shape, with the operators torch.compile's freezing pass emits
    (mkldnn_reorder_conv2d_weight, then mkldnn._convolution_pointwise).

    The pack is redone when the weight is replaced or changed in place through
    autograd-visible ops (its data pointer or version counter moves).  Edits
    through `.data` (PEFT's merge, i.e. fuse_lora()) are invisible to both;
    rdiffusers never merges, and a caller who does must call unpack() first.
    Anything else (float32, CUDA, autograd, a weight made under
    inference_mode, which has no version counter, a torch build that cannot
    pack) runs nn.Conv2d.forward."""

    def __init__(self, *args, **kwargs):
        # Modules converted by prepack_convs() skip this; new ones (PEFT
        # builds a LoRA's conv layers with type(base_layer)) need it.
        super().__init__(*args, **kwargs)
        self._rdiffusers_pack = PackCache()

    def unpack(self):
        self._rdiffusers_pack = PackCache()

    def forward(self, x):
        w = self.weight
        cache = self._rdiffusers_pack
        if (cache.failed or x.dtype != torch.bfloat16 or w.dtype != torch.bfloat16
                or x.device.type != "cpu" or x.dim() != 4 or w.is_inference()
                or (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))):
            return super().forward(x)
        key = (tuple(x.shape), w.data_ptr(), w._version)
        state = cache.state
        if state is None or state[0] != key:
            try:
                packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    w.detach().to_mkldnn(), list(self.padding), list(self.stride),
                    list(self.dilation), self.groups, list(x.shape))
            except (RuntimeError, AttributeError, NotImplementedError):
                cache.failed = True      # this torch build cannot: plain path
                return super().forward(x)
            # Holding the source storage keeps its address from being reused
            # by a new weight while this key is cached.
            state = (key, packed, w.detach())
            cache.state = state
        return torch.ops.mkldnn._convolution_pointwise(
            x, state[1], self.bias, list(self.padding), list(self.stride),
            list(self.dilation), self.groups, "none", [], "")
