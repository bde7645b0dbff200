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
    schedule: Literal["stages", "epochs"]  # with the default parameters
    # (params, spec modalities, errors) -> params with the spec-dependent defaults filled in
    complete: Callable[[dict[str, Any], list[str], Errors], dict[str, Any]] | None = None
    # (resolved params, spec modalities) -> the modalities trained and evaluated
    uses: Callable[[dict[str, Any], list[str]], list[str]] | None = None
    # (resolved params) -> the schedule form, where a parameter changes it
    schedule_of: Callable[[dict[str, Any]], Literal["stages", "epochs"]] | None = None
    # (resolved params) -> does the method train one head shared by every modality?
    shared_head: Callable[[dict[str, Any]], bool] | None = None
    hint: str = ""  # appended to a schedule error: how to get the other schedule form

    def schedule_kind(self, params: dict[str, Any]) -> Literal["stages", "epochs"]:
        return self.schedule_of(params) if self.schedule_of else self.schedule

    def needs_shared_head(self, params: dict[str, Any]) -> bool:
        return bool(self.shared_head and self.shared_head(params))

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


# the late-fusion rules of igm_core/methods/fusion.py (kept here: this module is torch-free)
Fusion = Literal["mean", "entropy", "geometric", "calibrated"]


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
    fusion: Fusion = Field(
        "mean",
        description="late fusion at evaluation: mean or entropy-weighted mean of the unimodal "
        "softmaxes, geometric (softmax of the weighted mean log-softmax, a product of experts), "
        "or calibrated (a product of experts with per-modality temperatures fitted on the "
        "validation split)",
    )
    fusion_weights: dict[ModalityName, float] | None = Field(
        None, description="geometric fusion only: a weight per modality (default: equal)"
    )

    @field_validator("fusion_weights")
    @classmethod
    def _positive_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for m, w in (value or {}).items():
            if not 0.0 < w <= 1e6:
                raise ValueError(f"the weight of {m!r} must lie in (0, 1e6], got {w}")
        return value

    @model_validator(mode="after")
    def _weights_need_geometric(self) -> AlternatingParams:
        if self.fusion_weights is not None and self.fusion != "geometric":
            raise ValueError("fusion_weights applies to fusion 'geometric' only")
        return self


class MLAParams(AlternatingParams):
    """MLA (Zhang et al., CVPR 2024); the default is the paper's and released code's method."""

    alternation: Literal["step", "stage"] = Field(
        "step",
        description="step: every mini-batch trains each modality in turn (one optimizer step "
        "each) over ONE shared head, as MLA does; stage: this project's earlier variant, one "
        "modality per stage with an OWM projector built between stages",
    )
    project: bool | None = Field(
        None,
        description="apply the OWM projection to the head's gradients (the paper's rule, with "
        "the released code's alpha schedule and normalisation). Default: off for alternation "
        "step, as in the released code (its projector is never applied: the parameter-name "
        "check it relies on never matches); on for alternation stage",
    )
    fusion: Fusion | Literal["entropy_logits"] = Field(
        "entropy_logits",
        description="entropy_logits: MLA's test-time fusion, per-sample weights "
        "softmax(-entropy) on the unimodal head outputs (logits), then softmax",
    )
    scope: str | float = Field("head", description="alternation stage only: projected layers")
    alpha: float = Field(
        1.0,
        gt=0.0,
        le=1e6,
        description="OWM regulariser in P -= k k^T/(alpha + x^T k); alternation step uses the "
        "released schedule alpha * 0.1 ** (1 + batch / batches_per_epoch)",
    )

    _scope = field_validator("scope")(_check_scope)

    @model_validator(mode="after")
    def _alternation_defaults(self) -> MLAParams:
        if self.project is None:
            self.project = self.alternation == "stage"
        if self.alternation == "step" and self.scope != "head":
            raise ValueError(
                "scope applies to alternation 'stage'; alternation 'step' projects the shared head"
            )
        return self


class IGMParams(AlternatingParams):
    tau: float = Field(0.4, ge=0.0, le=50.0)
    gm_scope: str | float = Field(
        "head",
        description="layers under gradient modification: head | all | none | head+K (the head and "
        "the last K encoder layers) | a fraction f in (0, 1]: the head and the last k encoder "
        "layers, k chosen so their share of the branch's Linear/Conv weights is nearest f (on a "
        "tie the smaller share)",
    )
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
    coefficient: Literal["paper", "continuous"] = Field(
        "paper",
        description="paper: 1 - tanh(alpha r) for the dominant modality (r > 1), as Eq. 10 and "
        "the released code; continuous: 1 - tanh(alpha (r - 1)), a variant, not the baseline",
    )


def _complete_alternating(params: dict[str, Any], modalities: list[str], errors: Errors) -> dict:
    for m in params.get("fusion_weights") or {}:
        if m not in modalities:
            errors.append(
                (
                    f"method.params.fusion_weights.{m}",
                    f"{m!r} is not one of the spec's modalities: {', '.join(modalities)}",
                )
            )
    return params


STAGES = MethodRules("stages", complete=_complete_alternating)
MLA_RULES = MethodRules(
    "epochs",
    complete=_complete_alternating,
    schedule_of=lambda params: "stages" if params["alternation"] == "stage" else "epochs",
    shared_head=lambda params: params["alternation"] == "step",
    hint=" (method.params.alternation: stage trains in stages)",
)
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
    "MLA (Zhang et al., CVPR 2024): every mini-batch trains each modality in turn over one "
    "shared head, fused at test time by per-sample entropy weights; OWM projection of the "
    "head's gradients optional (off, as in the released code); stage-wise variant optional.",
    MLAParams,
    "igm_core.methods.mla:make_mla",
    kind="alternating",
    rules=MLA_RULES,
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
    "(Peng et al., CVPR 2022): the dominant modality's encoder weight gradients scaled by "
    "1 - tanh(alpha r), plus Gaussian noise; extended to any number of modalities.",
    OGMGEParams,
    "igm_core.methods.ogm_ge:OGMGE",
    kind="joint",
    rules=EPOCHS,
)
