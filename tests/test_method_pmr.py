"""PMR: the prototype cross-entropy and its coefficients by hand, prototypes as class means with
the released momentum rule, that the prototype term reaches only the slow modality's encoder,
and resume across a prototype update."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from igm_core import catalog
from igm_core.methods.base import Stage
from igm_core.methods.pmr import pmr_coefficients, prototype_logits
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train
from tests.method_case import ctx_for, epoch_data, make, stop_and_resume, twin, with_grads
from tests.specs import spec_for

BOTH = Stage(0, ("strong", "weak"), 3)


def test_prototype_cross_entropy_by_hand() -> None:
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    protos = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    # distances: sample 0 -> (0, 3), sample 1 -> (5, 4)
    assert prototype_logits(z, protos).tolist() == [[0.0, -3.0], [-5.0, -4.0]]
    pce = F.cross_entropy(prototype_logits(z, protos), torch.tensor([0, 1]))
    # -(log(1 / (1 + e^-3)) + log(e^-4 / (e^-5 + e^-4))) / 2 = (0.0485874 + 0.3132617) / 2
    assert float(pce) == pytest.approx(0.1809245, abs=1e-6)


def test_coefficients_go_to_the_slow_modality() -> None:
    # scores 3 and 2: the second is slower and gets alpha; the released two-modality rule
    assert pmr_coefficients(torch.tensor([3.0, 2.0]), 2.0).tolist() == [0.0, 2.0]
    assert pmr_coefficients(torch.tensor([2.0, 2.0]), 2.0).tolist() == [0.0, 0.0]
    # three: below the others' mean (1.5, 2, 2.5): only the last
    assert pmr_coefficients(torch.tensor([3.0, 2.0, 1.0]), 1.0).tolist() == [0.0, 0.0, 1.0]


def _data(spec):
    return catalog.build_dataset("synthetic", spec.dataset.params, 0)


def test_prototypes_are_class_means_with_the_released_momentum() -> None:
    spec, model, method, _, _ = make("pmr", momentum_coef=0.25)
    data = epoch_data(spec, _data(spec))
    n = max(1, int(data.train.num_batches(data.batch_size) * 0.1))
    feats, labels = {"strong": [], "weak": []}, []
    gen = data.generator()
    for b, (xs, y) in enumerate(data.train.batches(data.batch_size, generator=gen)):
        if b == n:
            break
        labels.append(y)
        with torch.no_grad():
            for m in feats:
                feats[m].append(model.eval().features(m, xs[m]))
    model.train()
    y = torch.cat(labels)
    means = {
        m: torch.stack([torch.cat(f)[y == k].mean(0) for k in range(4)]) for m, f in feats.items()
    }
    method.on_epoch_start(BOTH, 0, data)
    for m in means:
        torch.testing.assert_close(method.protos[m], means[m])
    first = {m: c.clone() for m, c in method.protos.items()}
    method.on_epoch_start(BOTH, 1, data)  # after epoch 0: plain means again
    torch.testing.assert_close(method.protos["strong"], means["strong"])
    with torch.no_grad():
        for p in model.encoders["strong"].parameters():
            p.mul_(1.5)
    fresh = method.class_means(data)["strong"]
    method.on_epoch_start(BOTH, 2, data)  # from then on: 0.75 new + 0.25 old
    torch.testing.assert_close(method.protos["strong"], 0.75 * fresh + 0.25 * first["strong"])


def test_the_prototype_term_reaches_only_the_slow_encoder() -> None:
    spec, model, method, x, y = make("pmr", alpha=2.0)
    method.on_epoch_start(BOTH, 0, epoch_data(spec, _data(spec)))
    ref = twin(model)
    ctx = ctx_for(BOTH)
    method.step(x, y, ctx)
    got = with_grads(model)
    logits = ref(x)
    F.cross_entropy(torch.stack(list(logits.values())).mean(0), y).backward()
    joint = with_grads(ref)
    coeffs = {m: float(ctx.stats[f"pmr/{m}/coeff"]) for m in ("strong", "weak")}
    assert sorted(coeffs.values()) == [0.0, 2.0]  # one modality is the slow one here
    slow = next(m for m, c in coeffs.items() if c > 0)
    for name, g in got.items():
        if name.startswith(f"encoders.{slow}."):
            assert not torch.allclose(g, joint[name])
        else:  # heads and the fast encoder: the fused cross-entropy's gradient only
            torch.testing.assert_close(g, joint[name], rtol=1e-5, atol=1e-7)
    # the slow encoder's extra gradient is that of alpha * PCE
    ref.zero_grad()
    z = ref.features(slow, x[slow])
    (2.0 * F.cross_entropy(prototype_logits(z, method.protos[slow]), y)).backward()
    for name, p in ref.encoders[slow].named_parameters():
        full = f"encoders.{slow}.{name}"
        torch.testing.assert_close(got[full] - joint[full], p.grad, rtol=1e-4, atol=1e-6)


def test_outside_the_window_it_is_joint_training() -> None:
    spec, model, method, x, y = make("pmr", modulation_end=0)
    method.on_epoch_start(BOTH, 0, epoch_data(spec, _data(spec)))
    ref = twin(model)
    method.step(x, y, ctx_for(BOTH, epoch=1))
    logits = ref(x)
    F.cross_entropy(torch.stack(list(logits.values())).mean(0), y).backward()
    for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=n)


def test_entropy_term_for_the_dominant_modality() -> None:
    spec, model, method, x, y = make("pmr", alpha=0.0, entropy_weight=0.5)
    method.on_epoch_start(BOTH, 0, epoch_data(spec, _data(spec)))
    ctx = ctx_for(BOTH)
    feats = {m: model.features(m, x[m]) for m in ("strong", "weak")}
    extra = method.prototype_terms(feats, y, ctx)
    sims = {m: prototype_logits(feats[m], method.protos[m]) for m in feats}
    scores = {
        m: float(F.softmax(s.detach(), 1).gather(1, y[:, None]).sum()) for m, s in sims.items()
    }
    dominant = max(scores, key=scores.get)
    p = F.softmax(sims[dominant].detach(), 1)
    entropy = float(-(p * p.log()).sum(1).mean())
    assert float(extra.detach()) == pytest.approx(-0.5 * entropy, rel=1e-5)
    assert math.isfinite(float(extra.detach()))


def test_a_run_logs_the_prototype_diagnostics(tmp_path) -> None:
    train(spec_for("pmr"), tracker=JsonlTracker(tmp_path / "m.jsonl"))
    h = read_jsonl_metrics(tmp_path / "m.jsonl")
    keys = {"pmr/strong/ratio", "pmr/weak/coeff", "pmr/weak/proto_dist", "pmr/strong/proto_spread"}
    assert keys <= set(h)
    assert [s for s, _ in h["pmr/strong/proto_spread"]] == [0, 8, 16]  # before each epoch


@pytest.mark.parametrize("stop_at", [9, 19])  # the first batch of epoch 1 (before its
def test_resume_across_a_prototype_update(stop_at: int, tmp_path) -> None:  # prototypes), later
    stop_and_resume(spec_for("pmr"), stop_at, tmp_path)
