"""A fingerprint of everything a vizlib call must leave as it found it in a model.

Besides the model itself it covers the torch state a call could leave switched:
global module hooks, torch-function modes (guided backprop installs one) and grad mode.
"""

import torch
from torch.nn.modules import module as torch_module

_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_TENSOR_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")


def _hook_count(owner, names):
    return sum(len(getattr(owner, name, None) or {}) for name in names)


def fingerprint(model):
    tensors = list(model.parameters()) + list(model.buffers())
    return {
        "modules": [(name, id(module), type(module)) for name, module in model.named_modules()],
        # an attribute set on a module (a patched `forward`, a stashed input) shows up here
        "attributes": [sorted(vars(module)) for module in model.modules()],
        "training": [module.training for module in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "tensors": [t.detach().clone() for t in tensors],
        "hooks": sum(_hook_count(module, _MODULE_HOOKS) for module in model.modules())
        + sum(_hook_count(t, _TENSOR_HOOKS) for t in tensors),
        "inplace": [getattr(module, "inplace", None) for module in model.modules()],
        "global hooks": _hook_count(torch_module, ["_global" + name for name in _MODULE_HOOKS]),
        "torch-function modes": torch._C._len_torch_function_stack(),
        "grad mode": torch.is_grad_enabled(),
    }


_EXACT = ("modules", "attributes", "training", "requires_grad", "hooks", "inplace",
          "global hooks", "torch-function modes", "grad mode")


def assert_unchanged(model, before):
    after = fingerprint(model)
    for key in _EXACT:
        assert after[key] == before[key], f"{key} changed (model or torch state left behind)"
    for old, new in zip(before["grads"], after["grads"]):
        assert (old is None) == (new is None), "a parameter gradient appeared or vanished"
        if old is not None:
            assert torch.equal(old, new), "a parameter gradient changed"
    for old, new in zip(before["tensors"], after["tensors"]):
        assert torch.equal(old, new), "a parameter or buffer changed"
