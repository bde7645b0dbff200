"""What every logged metric means, in one line each: the one glossary of metric keys.

Metric keys are "family/series/quantity" (`gm/weak/kept_ratio`: family gm, series weak, the
modality, or fused); the glossary is keyed by "family/quantity", as the dashboard draws one panel
per family and quantity with a line per series. A per-layer quantity (`gm/weak/head.0.min_gain`)
is explained by its last dotted part (`gm/min_gain`). The dashboard shows these words under each
panel and the README's metric glossary is rendered from here (tests/test_glossary.py keeps them
equal). A method that logs a new key adds its line here; the test runs every registered method
and refuses a key without one. Torch-free.
"""

from __future__ import annotations

# val/... and test/...: the same quantities on the validation and the test split
_EVALUATION = {
    "acc": "accuracy: of the fused prediction (series fused), or of one modality's head alone "
    "(series = the modality)",
    "macro_f1": "macro-F1 of the fused prediction: the mean over classes of each class's F1",
    "map": "mean average precision of the fused class probabilities, averaged over classes",
    "loss": "mean negative log-likelihood of the true class under the fused probabilities",
    "confidence": "mean probability a modality's head gives the true class",
    "confidence_ratio": "a modality's confidence over the mean of the other modalities' (above "
    "1: it dominates the others)",
    "modality_gap": "the best modality's head accuracy minus the worst one's: the imbalance "
    "between modalities (0: balanced)",
}

METRIC_GLOSSARY: dict[str, str] = {
    "train/loss": "training loss of the step: of every modality together (series fused) or of "
    "the one modality this stage trains",
    "train/epoch_loss": "mean training loss over the epoch, logged at its end",
    "train/loss_mixup": "IGM reference SAM: the mixup cross-entropy part of the step's loss",
    "train/loss_flat": "IGM reference SAM: the cross-entropy of the perturbed (flat) head, the "
    "other part of the step's loss",
    **{
        f"val/{k}": f"{words} (validation split, at each epoch's end)"
        for k, words in _EVALUATION.items()
    },
    **{
        f"test/{k}": f"{words} (test split, of the selected checkpoint)"
        for k, words in _EVALUATION.items()
    },
    "grad/norm": "L2 norm of the gradient of a modality's branch (encoder and head) on its "
    "loss, before any gradient modification: how hard the modality is pushed",
    "grad/encoder_norm": "L2 norm of the gradient of a modality's encoder alone, before any "
    "gradient modification",
    "grad/head_norm": "L2 norm of the gradient of a modality's head alone, before any gradient "
    "modification",
    "gm/kept_ratio": "norm of the projected gradient over the norm before projection, on the "
    "projected layers (1: untouched; near 0: the projection removes most of it)",
    "gm/norm_before": "norm of the projected layers' gradient before the projection",
    "gm/norm_after": "norm of the projected layers' gradient after the projection",
    "gm/min_gain": "IGM: the smallest gain exp(-tau x normalised eigenvalue) of a layer's flat "
    "projection, built when a modality's stage ends: how strongly the direction that modality "
    "used most is damped for the next (exp(-tau) at most)",
    "gm/eff_rank": "IGM: effective rank (exp of the spectral entropy) of the finished modality's "
    "input energy at a layer: how many directions it used",
    "gm/trace_ratio": "MLA (stage-wise): trace of a layer's orthogonal projector over its size, "
    "the share of directions left free for the next modality (1: nothing blocked)",
    "gm/owm_alpha": "MLA: the OWM regulariser alpha of the step (the released schedule, "
    "falling over each epoch)",
    "gm/plasticity_cos": "cosine between the first head layer's gradient just after a modality "
    "switch and the step's before (negative: the new modality undoes what the last one learned)",
    "gm/transition_s": "seconds spent building the projection at the end of a modality's stage",
    "sam/sharpness": "SAM's sharpness estimate: the loss at the perturbed weights minus the loss "
    "at the weights (reference mode: of the perturbed head on the mixed batch)",
    "ogm/ratio": "OGM-GE: a modality's summed true-class score over the mean of the others' "
    "(above 1: it dominates and its gradient is damped)",
    "ogm/coeff": "OGM-GE: the factor applied to a modality's encoder gradient (1 when it does "
    "not dominate, 1 - tanh(alpha x ratio) when it does)",
    "mla/loss": "MLA: the cross-entropy of a modality's head in its own part of the step",
    # the baselines of igm_core/methods/{gblending,agm,pmr,mmpareto,reconboost,relearning}.py
    "gblend/weight": "G-Blending: an output's weight in the blended loss (a modality's head, or "
    "fused: the mean of the logits), from its generalisation over overfitting squared; they sum "
    "to 1",
    "gblend/loss": "G-Blending: an output's own cross-entropy in the step (the blend weighs them)",
    "gblend/generalization": "G-Blending: G, how much an output's held-out loss fell over the "
    "estimate's epochs (above 0: it generalises)",
    "gblend/overfitting": "G-Blending: O, how much an output's held-out minus training loss grew "
    "over the estimate's epochs (its weight falls with O squared)",
    "agm/coeff": "AGM: the factor on the gradient through a modality's response, exp(alpha x "
    "(running target - ratio)) (1 outside the modulation window)",
    "agm/score": "AGM: the step's -log p(true class) of a modality's Shapley response alone "
    "(lower: it answers better)",
    "agm/running_score": "AGM: the running mean of a modality's score over every step so far, "
    "which sets the target the coefficients steer to",
    "pmr/proto_score": "PMR: mean probability a modality's prototype classifier (distances to its "
    "class prototypes) gives the true class",
    "pmr/ratio": "PMR: a modality's prototype score over the mean of the others' (the lower one is "
    "the slow learner, which gets the prototype loss)",
    "pmr/coeff": "PMR: the weight of a modality's prototype cross-entropy in the loss (alpha for "
    "the slow learner, 0 for the others)",
    "pmr/proto_loss": "PMR: a modality's prototype cross-entropy (of the negative distances to the "
    "class prototypes)",
    "pmr/proto_dist": "PMR: mean distance of a modality's features to its true class's prototype",
    "pmr/proto_spread": "PMR: mean distance between a modality's class prototypes, at each "
    "epoch's start (larger: classes further apart)",
    "pareto/cos": "MMPareto: cosine between the gradients a modality's encoder gets from the fused "
    "loss and from its own loss (0 or below: they conflict)",
    "pareto/weight_mm": "MMPareto: the fused loss's weight in the encoder's combined gradient (0.5 "
    "when the two agree, the min-norm point when they conflict)",
    "pareto/conflict": "MMPareto: 1 when the two gradients conflicted in the step (cosine at or "
    "below 0), else 0",
    "train/loss_uni": "MMPareto: a modality's own cross-entropy (its head alone), a part of the "
    "step's loss",
    "reconboost/q_join": "ReconBoost: mean probability the modalities boosted earlier give the "
    "true class together (1 while there are none); a sample they get right weighs less",
    "reconboost/ga_loss": "ReconBoost: mean squared difference of the boosted modality's and the "
    "previous one's class probabilities (the released code's term without gradient: logged only)",
    "reconboost/boost_rate": "ReconBoost: the learnable scale of the summed logits, trained in "
    "the global rectification",
    "relearn/purity_train": "Re-learning: k-means cluster purity (one cluster per class) of a "
    "modality's encoder features on the training split",
    "relearn/purity_val": "Re-learning: the same purity on the validation split",
    "relearn/purity_gap": "Re-learning: |purity_train - purity_val|, the modality's learning "
    "state (large: it learns the training split only)",
    "relearn/alpha": "Re-learning: tanh(lambda x gap), how far the modality's encoder is moved "
    "back towards the weights the run started from",
}


def explain(key: str) -> str | None:
    """The glossary's line for a metric key ("gm/weak/head.0.min_gain") or a panel id
    ("gm/min_gain"); None for a key it lacks."""
    parts = key.split("/")
    if len(parts) < 2:
        return None
    family, quantity = parts[0], parts[-1]
    return METRIC_GLOSSARY.get(f"{family}/{quantity}") or METRIC_GLOSSARY.get(
        f"{family}/{quantity.rsplit('.', 1)[-1]}"
    )


def glossary_markdown() -> str:
    """The README's metric glossary: a table of every key and its line."""
    rows = [f"| `{key}` | {words} |" for key, words in METRIC_GLOSSARY.items()]
    return "\n".join(["| key | what it means |", "| --- | --- |", *rows])
