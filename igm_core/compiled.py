"""`compile: off | on | graphs`: the encoders' forward (and backward) compiled by torch.compile.

Small models are bound by host-side kernel launches; torch.compile fuses the encoders' ops
(`on`), and `graphs` (mode "reduce-overhead") also replays them as CUDA graphs. Shapes are
static (dynamic=False: the last, shorter batch of an epoch compiles once more). The encoders are
compiled in place (nn.Module.compile), so parameters, state dicts and checkpoints are those of
the eager model. Heads stay eager: GM and SAM reach into their weights and gradients directly.

A failure to compile (an error raised by torch's compiler stack at a step) is logged, the
encoders go back to eager, the step's gradients are cleared and the step is run again eagerly;
the run goes on. The training step's losses equal the eager ones to float32 rounding (fused
kernels may sum in another order): tests/test_compiled.py checks them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

MODES = {"on": "default", "graphs": "reduce-overhead"}
_COMPILER_MODULES = ("torch._dynamo", "torch._inductor", "torch._functorch", "torch._subclasses")


def _from_compiler(err: BaseException) -> bool:
    return type(err).__module__.startswith(_COMPILER_MODULES)


class CompiledStep:
    """Wraps a method's step: the model's encoders compiled, eager again after a failure."""

    def __init__(
        self,
        step: Callable[..., torch.Tensor],
        model: torch.nn.Module,
        mode: str,
        backend: str | Callable[..., Any] = "inductor",
    ) -> None:
        self.step, self.model, self.mode = step, model, mode
        self.modules = list(model.encoders.values())
        self.active = True
        # SAM takes a second gradient through a retained graph (retain_graph=True), which the
        # compiled backward's donated buffers forbid
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        for module in self.modules:
            module.compile(mode=MODES[mode], dynamic=False, backend=backend)

    def eager(self) -> None:
        """Back to the eager forward for good (nn.Module.compile's wrapper dropped)."""
        for module in self.modules:
            module._compiled_call_impl = None
        self.active = False

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not self.active:
            return self.step(*args, **kwargs)
        try:
            return self.step(*args, **kwargs)
        except Exception as err:
            if not _from_compiler(err):
                raise
            log.warning(
                "compile %s failed (%s: %s); training on in eager mode",
                self.mode,
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.eager()
            for p in self.model.parameters():
                p.grad = None
            return self.step(*args, **kwargs)
