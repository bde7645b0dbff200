"""Method entries of the field's imbalance baselines: G-Blending, AGM, PMR, MMPareto, ReconBoost,
Diagnosing & Re-learning. Each default is the authors' released code's (the file named next to
it); where the release has no value, the note says whose it is. Torch-free, like methods.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from igm_core.catalog.methods import EPOCHS, METHODS, Errors, MethodRules, _Params

FUSED = "fused"


class GBlendingParams(_Params):
    mode: Literal["offline", "online", "fixed"] = Field(
        "offline",
        description="offline: weights estimated once, before training, from the initial weights "
        "(the release trains with weights computed beforehand); online: re-estimated every "
        "super_epoch epochs from the current weights; fixed: the given weights",
    )
    holdout_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="share of the training split held out (never trained on) for the estimate "
        "(ours: the release ships no estimator)",
    )
    estimate_epochs: int | None = Field(
        None, ge=1, le=10_000, description="offline: epochs of each estimate (default: the run's)"
    )
    super_epoch: int = Field(
        10, ge=1, le=10_000, description="online: epochs between estimates (BalanceBenchmark's 10)"
    )
    weights: dict[str, float] | None = Field(
        None,
        description="fixed: a weight per modality and for 'fused' (normalised to sum 1; the "
        "release's defaults are 0 for each modality and 1 for the fused output)",
    )

    @model_validator(mode="after")
    def _weights_with_fixed(self) -> GBlendingParams:
        if (self.weights is not None) != (self.mode == "fixed"):
            raise ValueError("weights are given with mode 'fixed', and only then")
        for k, w in (self.weights or {}).items():
            if not 0.0 <= w <= 1e6:
                raise ValueError(f"the weight of {k!r} must lie in [0, 1e6], got {w}")
        return self


def _complete_gblending(params: dict[str, Any], modalities: list[str], errors: Errors) -> dict:
    if FUSED in modalities:
        errors.append(
            ("modalities", f"G-Blending names its fused output {FUSED!r}: rename that modality")
        )
        return params
    weights = params.get("weights")
    if weights is not None:
        wanted = {*modalities, FUSED}
        if set(weights) != wanted:
            errors.append(
                (
                    "method.params.weights",
                    f"give one weight for each of: {', '.join([*modalities, FUSED])}",
                )
            )
        elif sum(weights.values()) <= 0:
            errors.append(("method.params.weights", "the weights must not all be 0"))
    return params


class AGMParams(_Params):
    alpha: float = Field(
        1.0, ge=0.0, le=100.0, description="modulation strength (utils/config.py --alpha)"
    )
    modulation_start: int = Field(0, ge=0, le=100_000, description="first modulated epoch")
    modulation_end: int | None = Field(
        19,
        ge=0,
        le=100_000,
        description="last modulated epoch, counted from 0 (the release's --modulation_ends 20 "
        "counts from 1); None: to the end",
    )
    clip: float | None = Field(
        1.0,
        gt=0.0,
        le=1e6,
        description="when a head's classifying-layer gradient leaves [-clip, clip], clip the "
        "total gradient norm to clip (run/CREMAD_main.py); None: never",
    )


class PMRParams(_Params):
    alpha: float = Field(
        1.0, ge=0.0, le=100.0, description="weight of the slow modality's prototype CE (--alpha)"
    )
    momentum_coef: float = Field(
        0.2, ge=0.0, lt=1.0, description="prototype momentum (--momentum_coef)"
    )
    proto_fraction: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="share of the training batches the prototypes average (the release: 1/10)",
    )
    modulation_start: int = Field(0, ge=0, le=100_000, description="--modulation_starts")
    modulation_end: int | None = Field(100, ge=0, le=100_000, description="--modulation_ends")
    entropy_weight: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="the paper's entropy regulariser for the dominant modality (not in the "
        "released training script: 0)",
    )
    entropy_end: int | None = Field(
        None, ge=0, le=100_000, description="last epoch of the entropy term (None: modulation_end)"
    )


class MMParetoParams(_Params):
    gamma: float = Field(
        1.5, gt=0.0, le=100.0, description="scale of the integrated gradient (MMPareto.py gamma)"
    )


class ReconBoostParams(_Params):
    weight1: float = Field(5.0, ge=0.0, le=1e3, description="cross-entropy weight (--weight1)")
    weight2: float = Field(1.0, ge=0.0, le=1e3, description="reconcilement weight (--weight2)")
    boost_rate: float = Field(
        1.0, gt=0.0, le=1e3, description="initial ensemble scale, learned (--boost_rate)"
    )
    correct_epochs: int = Field(
        4, ge=1, le=10_000, description="global rectification epochs per round (--correct_epoch)"
    )
    lr_decay_rounds: int = Field(
        30, ge=1, le=100_000, description="rounds between learning-rate decays (train.py, CREMA-D)"
    )
    lr_decay_gamma: float = Field(0.1, gt=0.0, le=1.0, description="the decay factor (train.py)")
    shared_head: bool = Field(
        True, description="one head shared by every modality (--common_space True)"
    )


class RelearningParams(_Params):
    move_lambda: float = Field(
        3.0, ge=0.0, le=100.0, description="re-initialisation strength tanh(lambda gap)"
    )
    reinit_epoch: int = Field(20, ge=1, le=100_000, description="epochs between diagnoses")
    reinit_num: int = Field(3, ge=0, le=100_000, description="diagnoses at most")
    n_init: int = Field(
        10,
        ge=1,
        le=100,
        description="k-means restarts (the release leaves scikit-learn's default: 10 before 1.4)",
    )


def _register() -> None:
    joint = {"kind": "joint", "rules": EPOCHS}
    METHODS.register(
        "gblending",
        "Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020): unimodal and fused losses weighted "
        "by generalisation over overfitting squared, estimated on a held-out part of the "
        "training split.",
        GBlendingParams,
        "igm_core.methods.gblending:GBlending",
        kind="joint",
        rules=MethodRules("epochs", complete=_complete_gblending),
    )
    METHODS.register(
        "agm",
        "AGM (Li et al., ICCV 2023): Shapley mono-modal responses from zero-input passes, each "
        "one's gradient scaled toward its running balance.",
        AGMParams,
        "igm_core.methods.agm:AGM",
        **joint,
    )
    METHODS.register(
        "pmr",
        "PMR (Fan et al., CVPR 2023): class prototypes per modality; the slow modality gets a "
        "prototype cross-entropy term.",
        PMRParams,
        "igm_core.methods.pmr:PMR",
        **joint,
    )
    METHODS.register(
        "mmpareto",
        "MMPareto (Wei, Hu, ICML 2024): multimodal and unimodal gradients of each encoder "
        "integrated by their Pareto (min-norm) combination when they conflict, with the "
        "magnitude rule.",
        MMParetoParams,
        "igm_core.methods.mmpareto:MMPareto",
        **joint,
    )
    METHODS.register(
        "reconboost",
        "ReconBoost (Hua et al., ICML 2024): alternating boosting of one modality at a time "
        "against the others' ensemble, then global rectification of the ensemble.",
        ReconBoostParams,
        "igm_core.methods.reconboost:ReconBoost",
        kind="alternating",
        rules=MethodRules("stages", shared_head=lambda params: params["shared_head"]),
    )
    METHODS.register(
        "relearning",
        "Diagnosing & Re-learning (Wei et al., ECCV 2024): encoders softly re-initialised by the "
        "train/validation gap of their clusters' purity.",
        RelearningParams,
        "igm_core.methods.relearning:Relearning",
        **joint,
    )


_register()
