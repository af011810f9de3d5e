"""A fingerprint of everything a vizlib call must leave as it found it in a model."""

import torch


def _hook_count(module):
    dicts = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(module, name, {})) for name in dicts)


def fingerprint(model):
    return {
        "modules": [(name, id(module), type(module)) for name, module in model.named_modules()],
        "training": [module.training for module in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "tensors": [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())],
        "hooks": sum(_hook_count(module) for module in model.modules()),
        "inplace": [getattr(module, "inplace", None) for module in model.modules()],
    }


def assert_unchanged(model, before):
    after = fingerprint(model)
    for key in ("modules", "training", "requires_grad", "hooks", "inplace"):
        assert after[key] == before[key], f"model's {key} changed"
    for old, new in zip(before["grads"], after["grads"]):
        assert (old is None) == (new is None), "a parameter gradient appeared or vanished"
        if old is not None:
            assert torch.equal(old, new), "a parameter gradient changed"
    for old, new in zip(before["tensors"], after["tensors"]):
        assert torch.equal(old, new), "a parameter or buffer changed"
