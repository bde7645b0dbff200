"""Late fusion of unimodal outputs into class probabilities, for the alternating methods.

- `mean`: the mean of the unimodal softmaxes.
- `entropy`: their mean weighted per sample by softmax(-entropy) of each modality's softmax.
- `geometric`: a product of experts, softmax(sum_m w_m log_softmax(z_m)) with weights w_m that sum
  to 1 (equal by default): the normalised geometric mean of the unimodal softmaxes. When each
  modality carries part of the label, this keeps the evidence that averaging probabilities dilutes.
- `calibrated`: a product of experts with one temperature per modality, p ~ prod_m
  softmax(z_m / T_m), the temperatures fitted after training by minimising the negative
  log-likelihood of the VALIDATION split (L-BFGS, bounded iterations), then applied unchanged to
  test. In a product of experts a weight and a temperature do the same thing (only w_m / T_m
  matters), so one number per modality is all there is to fit. The fit starts from T_m = M (M
  modalities), which is `geometric` with equal weights.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

FUSIONS = ("mean", "entropy", "geometric", "calibrated")
CALIBRATION_ITERS = 100  # L-BFGS iterations at most (a handful of parameters: it converges in ~10)
LOG_SCALE_BOUND = 10.0  # |log(1 / T_m)| at most: T_m in [4.5e-5, 2.2e4]


def _weights(names: list[str], weights: dict[str, float] | None, device: torch.device):
    w = torch.tensor([float((weights or {}).get(m, 1.0)) for m in names], device=device)
    return w / w.sum()


def fuse_probs(
    logits: dict[str, torch.Tensor],
    fusion: str,
    weights: dict[str, float] | None = None,
    temperatures: dict[str, float] | None = None,
) -> torch.Tensor:
    """Fused class probabilities (N x C) from per-modality logits by the named rule."""
    names = list(logits)
    z = torch.stack([logits[m].float() for m in names])  # M x N x C
    if fusion == "geometric":
        w = _weights(names, weights, z.device)
        return F.softmax((w[:, None, None] * F.log_softmax(z, dim=2)).sum(0), dim=1)
    if fusion == "calibrated":
        if temperatures is None:
            raise RuntimeError(
                "calibrated fusion needs temperatures fitted on the validation split"
            )
        t = torch.tensor([float(temperatures[m]) for m in names], device=z.device)
        return F.softmax((z / t[:, None, None]).sum(0), dim=1)
    if fusion not in ("mean", "entropy"):
        raise ValueError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSIONS)}")
    probs = F.softmax(z, dim=2)
    if fusion == "mean" or probs.shape[0] == 1:
        return probs.mean(0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # M x N
    w = F.softmax(-entropy, dim=0)
    return (w[..., None] * probs).sum(0)


def fit_temperatures(
    logits: dict[str, torch.Tensor], y: torch.Tensor, max_iter: int = CALIBRATION_ITERS
) -> dict[str, float]:
    """Per-modality temperatures minimising the NLL of softmax(sum_m z_m / T_m) on (logits, y).

    Call it with the validation split only. Float64 on the CPU, deterministic; the log inverse
    temperatures are bounded so that a separable split cannot push them to infinity.
    """
    names = list(logits)
    z = torch.stack([logits[m].detach().double().cpu() for m in names])  # M x N x C
    target = y.detach().long().cpu()
    log_a = torch.full((len(names),), -float(torch.log(torch.tensor(float(len(names))))))
    log_a = log_a.double().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [log_a], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9
    )

    def nll() -> torch.Tensor:
        opt.zero_grad()
        a = log_a.clamp(-LOG_SCALE_BOUND, LOG_SCALE_BOUND).exp()
        loss = F.cross_entropy((a[:, None, None] * z).sum(0), target)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(nll)
    a = log_a.detach().clamp(-LOG_SCALE_BOUND, LOG_SCALE_BOUND).exp()
    return {m: float(1.0 / a[i]) for i, m in enumerate(names)}
