"""Method entries: parameters, the factory, and each method's own rules for the spec.

A method's rules say how its schedule is written (`stages`: one entry per stage and a modality
order; `epochs`: one stage of all modalities), how its parameters are completed from the spec
(unimodal picks its modality), and which modalities it trains and evaluates. spec.py applies
them; nothing outside this file and the method's module knows about one method in particular.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from igm_core.names import ModalityName
from igm_core.registry import Registry

METHODS = Registry("method")

Errors = list[tuple[str, str]]


@dataclass(frozen=True)
class MethodRules:
    schedule: Literal["stages", "epochs"]
    # (params, spec modalities, errors) -> params with the spec-dependent defaults filled in
    complete: Callable[[dict[str, Any], list[str], Errors], dict[str, Any]] | None = None
    # (resolved params, spec modalities) -> the modalities trained and evaluated
    uses: Callable[[dict[str, Any], list[str]], list[str]] | None = None

    def complete_params(
        self, params: dict[str, Any], modalities: list[str], errors: Errors
    ) -> dict[str, Any]:
        return self.complete(params, modalities, errors) if self.complete else params

    def used_modalities(self, params: dict[str, Any], modalities: list[str]) -> list[str]:
        return self.uses(params, modalities) if self.uses else list(modalities)


def method_rules(name: str) -> MethodRules:
    return METHODS.get(name).extra["rules"]


class _Params(BaseModel):
    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)


_SCOPE = re.compile(r"^(head|all|none|head\+([1-9][0-9]?))$")


def _check_scope(value: str | float) -> str | float:
    if isinstance(value, float | int) and not isinstance(value, bool):
        if not 0.0 < float(value) <= 1.0:
            raise ValueError("a fraction of parameters must lie in (0, 1]")
        return float(value)
    if isinstance(value, str) and _SCOPE.match(value):
        return value
    raise ValueError(
        f"scope must be 'head', 'all', 'none', 'head+K' (K last encoder layers) "
        f"or a fraction in (0, 1], got {value!r}"
    )


Fusion = Literal["mean", "entropy"]


class JointParams(_Params):
    pass


class UnimodalParams(_Params):
    modality: ModalityName | None = Field(None, description="default: the first modality")


def _complete_unimodal(params: dict[str, Any], modalities: list[str], errors: Errors) -> dict:
    chosen = params["modality"] or modalities[0]
    if chosen not in modalities:
        errors.append(
            (
                "method.params.modality",
                f"{chosen!r} is not one of the spec's modalities: {', '.join(modalities)}",
            )
        )
    return {**params, "modality": chosen}


class AlternatingParams(_Params):
    fusion: Fusion = "mean"


class MLAParams(AlternatingParams):
    scope: str | float = "head"
    alpha: float = Field(
        1.0, gt=0.0, le=1e6, description="OWM regulariser in P -= k k^T/(alpha + x^T k)"
    )

    _scope = field_validator("scope")(_check_scope)


class IGMParams(AlternatingParams):
    tau: float = Field(0.4, ge=0.0, le=50.0)
    gm_scope: str | float = "head"
    sam: Literal["standard", "reference", "none"] = "standard"
    rho: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        description="SAM radius; default 0.05 (standard) or the authors' 1e-10 (reference, where "
        "it perturbs the head and is never undone: a large value walks the weights uphill)",
    )
    rho_encoder: float = Field(
        0.0, ge=0.0, le=10.0, description="reference mode only: encoder perturbation radius"
    )
    flat_ratio: float = Field(0.3, ge=0.0, le=1.0, description="reference mode: beta")
    mixup_alpha: float = Field(1.0, ge=0.0, le=100.0, description="reference mode: Beta(a, a)")

    _scope = field_validator("gm_scope")(_check_scope)

    @model_validator(mode="after")
    def _default_rho(self) -> IGMParams:
        if self.rho is None:
            self.rho = 1e-10 if self.sam == "reference" else 0.05
        return self


class OGMGEParams(_Params):
    alpha: float = Field(0.5, ge=0.0, le=100.0, description="modulation strength")
    modulation_start: int = Field(0, ge=0, le=100_000, description="first modulated epoch")
    modulation_end: int | None = Field(None, ge=0, le=100_000, description="last modulated epoch")
    ge: bool = Field(True, description="generalization enhancement: Gaussian noise on gradients")


STAGES = MethodRules("stages")
EPOCHS = MethodRules("epochs")

METHODS.register(
    "joint",
    "All modalities trained together on the loss of the fused (mean) logits.",
    JointParams,
    "igm_core.methods.joint:Joint",
    kind="joint",
    rules=EPOCHS,
)
METHODS.register(
    "unimodal",
    "One modality alone (the 'Unimodal' rows of the paper's table).",
    UnimodalParams,
    "igm_core.methods.unimodal:Unimodal",
    kind="unimodal",
    rules=MethodRules(
        "epochs", complete=_complete_unimodal, uses=lambda params, _mods: [params["modality"]]
    ),
)
METHODS.register(
    "alternating",
    "Stage-wise alternation between modalities, no gradient modification (MLA/IGM without GM).",
    AlternatingParams,
    "igm_core.methods.alternating:Alternating",
    kind="alternating",
    rules=STAGES,
)
METHODS.register(
    "mla",
    "Alternation with MLA's orthogonal (OWM) projection of head gradients, really applied.",
    MLAParams,
    "igm_core.methods.mla:MLA",
    kind="alternating",
    rules=STAGES,
)
METHODS.register(
    "igm",
    "Alternation with flat projection gradient modification (T = V diag(exp(-tau*norm eig)) V^T "
    "from the previous modality) and sharpness-aware minimisation.",
    IGMParams,
    "igm_core.methods.igm:IGM",
    kind="alternating",
    rules=STAGES,
)
METHODS.register(
    "ogm_ge",
    "Joint training with on-the-fly gradient modulation and generalization enhancement "
    "(Peng et al., CVPR 2022), extended to any number of modalities.",
    OGMGEParams,
    "igm_core.methods.ogm_ge:OGMGE",
    kind="joint",
    rules=EPOCHS,
)
