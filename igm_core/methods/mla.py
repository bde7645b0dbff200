"""MLA: alternation with an OWM projector per layer position, fed with the input batch means of
every finished stage and applied to all later gradients of that layer (it narrows the update
space over time)."""

from __future__ import annotations

from typing import Any

import torch

from igm_core import gm
from igm_core.methods.projected import Projected


class MLA(Projected):
    applies_to_source = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owm: dict[str, torch.Tensor] = {}  # float64 projectors, accumulated over all stages

    def build(self, k: str, means: dict[str, torch.Tensor]) -> dict[str, float]:
        metrics = {}
        for name, z in means.items():
            p = gm.owm_projector(z.cpu(), self.params["alpha"], self.owm.get(name))
            self.owm[name] = p
            self.proj[name] = p.float().to(self.device)
            metrics[f"gm/{k}/{name}.trace_ratio"] = float(torch.trace(p)) / p.shape[0]
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "owm": self.owm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.owm = dict(state.get("owm", {}))
