"""The training loop: stages, epochs, steps; validation-only model selection; checkpoints.

Read it top to bottom in `train`. A method computes each step's gradients; the trainer steps the
optimizer (reset at every stage, with a per-stage step decay), evaluates the validation split after
every epoch, keeps the best checkpoint by the validation metric, and evaluates the test split once,
for that checkpoint, at the end. Randomness is derived from (seed, stage, epoch) and (seed, step),
so a run stopped between any two steps and resumed from its checkpoint repeats the same updates.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from igm_core import catalog, metrics
from igm_core.data.base import MultimodalData, Split, load_dataset
from igm_core.methods.alternating import TransitionData
from igm_core.methods.base import Method, Stage, StepContext
from igm_core.models import build_model
from igm_core.spec import Spec, resolve_spec
from igm_core.tracking import NullTracker, Tracker

CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 512
# Training batches per forward in the covariance pass: large forwards keep a GPU busy; on a CPU
# they only spill the caches (measured slower), so there each batch goes alone.
TRANSITION_CHUNK = {"cuda": 8, "cpu": 1}


@dataclass
class TrainResult:
    status: str  # "completed" or "stopped"
    result: dict[str, Any] | None = None  # the result.json content when completed
    checkpoint: Path | None = None


@dataclass
class Position:
    stage: int = 0
    epoch: int = 0
    batch: int = 0
    step: int = 0


@dataclass
class Best:
    score: float = -1.0
    stage: int = -1
    epoch: int = -1
    val: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None


def derive_seed(*parts: int) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the spec asks for device 'cuda' but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_autocast(precision: str, device: torch.device) -> tuple[str, Callable]:
    if precision == "auto":
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if use_bf16 else "fp32"
    if precision == "bf16":
        return "bf16", functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return "fp32", contextlib.nullcontext


def make_optimizer(spec: Spec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = spec.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def transition_data(split: Split, batch_size: int, device: torch.device) -> TransitionData:
    """The training inputs, in order, for the covariance pass between stages."""
    chunk = batch_size * TRANSITION_CHUNK.get(device.type, 1)
    return TransitionData(
        batches=lambda m: (xs[m] for xs, _ in split.batches(chunk, modalities=[m], device=device)),
        batch_size=batch_size,
    )


def stage_parameters(model: torch.nn.Module, stage: Stage) -> list[torch.nn.Parameter]:
    seen: dict[int, torch.nn.Parameter] = {}
    for m in stage.modalities:
        for p in model.branch_parameters(m):
            seen.setdefault(id(p), p)
    return list(seen.values())


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    method: Method,
    split: Split,
    n_classes: int,
    device: torch.device,
    autocast: Callable,
) -> dict[str, Any]:
    """Fused metrics, each evaluated head's accuracy and confidence, and the predictions."""
    model.eval()
    mods = method.eval_modalities()
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in mods}
    for xs, _ in split.batches(EVAL_BATCH, modalities=mods, device=device):
        with autocast():
            for m in mods:
                chunks[m].append(model.logits(m, xs[m]).float())
    model.train()
    y = split.y.to(device)
    logits = {m: torch.cat(c) for m, c in chunks.items()}
    fused = method.fuse(logits)
    out = metrics.summarize(fused, y, n_classes)
    out["modality_acc"] = {m: metrics.accuracy(v.argmax(1), y) for m, v in logits.items()}
    conf = {m: float(v.softmax(1).gather(1, y[:, None]).mean()) for m, v in logits.items()}
    out["confidence"] = conf
    out["preds"] = {"fused": fused.argmax(1).cpu()} | {
        m: v.argmax(1).cpu() for m, v in logits.items()
    }
    return out


def _flat_eval(prefix: str, ev: dict[str, Any]) -> dict[str, float]:
    flat = {f"{prefix}/fused/{k}": ev[k] for k in ("acc", "macro_f1", "map", "loss")}
    accs = ev["modality_acc"]
    for m, acc in accs.items():
        flat[f"{prefix}/{m}/acc"] = acc
        others = [c for o, c in ev["confidence"].items() if o != m]
        flat[f"{prefix}/{m}/confidence"] = ev["confidence"][m]
        if others:
            flat[f"{prefix}/{m}/confidence_ratio"] = ev["confidence"][m] / max(
                sum(others) / len(others), 1e-12
            )
    if len(accs) > 1:
        flat[f"{prefix}/fused/modality_gap"] = max(accs.values()) - min(accs.values())
    return flat


def _public(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != "preds"}


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves a broken checkpoint


def train(
    spec: Spec | dict[str, Any],
    *,
    out_dir: str | Path | None = None,
    tracker: Tracker | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    data: MultimodalData | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train the spec's method; write checkpoints (and result.json) under out_dir when given.

    The tracker is finished here in every case: FINISHED, KILLED (stopped, or interrupted) or
    FAILED (an exception, which propagates).
    """
    tracker = tracker or NullTracker()
    try:
        return _train(resolve_spec(spec), out_dir, tracker, should_stop, on_event, data, resume)
    except Exception:
        tracker.finish("FAILED")
        raise
    except BaseException:
        tracker.finish("KILLED")
        raise


def _train(
    spec: Spec,
    out_dir: str | Path | None,
    tracker: Tracker,
    should_stop: Callable[[], bool] | None,
    on_event: Callable[[dict[str, Any]], None] | None,
    data: MultimodalData | None,
    resume: bool,
) -> TrainResult:
    emit = on_event or (lambda event: None)
    device = pick_device(spec.device)
    precision, autocast = pick_autocast(spec.precision, device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None

    torch.manual_seed(spec.seed)
    if data is None:
        data = load_dataset(spec.dataset.name, spec.dataset.params, spec.seed)
    data = data.select(list(spec.modalities))
    model = build_model(
        {m: e.model_dump() for m, e in spec.model.encoders.items()},
        data.shapes(),
        spec.model.head_hidden,
        data.n_classes,
        spec.model.shared_head,
    ).to(device)
    entry = catalog.METHODS.get(spec.method.name)
    method: Method = entry.load()(spec.method.params, model, spec, device, autocast)
    stages = method.stages()
    train_split = data.splits["train"]
    n_batches = train_split.num_batches(spec.batch_size)
    total_steps = sum(s.epochs for s in stages) * n_batches

    pos, best, history, elapsed = Position(), Best(), [], 0.0
    transitions: list[dict[str, float]] = []
    saved_opt: dict[str, Any] | None = None
    if ckpt_path is not None and ckpt_path.exists() and resume:
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["spec_hash"] != spec.hash():
            raise RuntimeError(
                f"{ckpt_path} belongs to a different spec; use another --out or --fresh"
            )
        model.load_state_dict(ck["model"])
        method.load_state_dict(ck["method"])
        pos, best, history = Position(**ck["position"]), Best(**ck["best"]), ck["history"]
        transitions, elapsed, saved_opt = ck["transitions"], ck["elapsed"], ck["optimizer"]
        torch.set_rng_state(ck["rng"].cpu())  # map_location moved it
        emit({"type": "resumed", **ck["position"]})
    if pos.step == 0:
        tracker.log_params(spec.to_dict())
        tracker.set_tags(
            {"spec_hash": spec.hash(), "method": spec.method.name, "dataset": spec.dataset.name}
        )

    def checkpoint(optimizer: torch.optim.Optimizer | None, sched: Any) -> None:
        if ckpt_path is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        _save(
            ckpt_path,
            {
                "spec": spec.to_dict(),
                "spec_hash": spec.hash(),
                "model": model.state_dict(),
                "method": method.state_dict(),
                "position": vars(pos),
                "best": vars(best),
                "history": history,
                "transitions": transitions,
                "elapsed": elapsed + time.perf_counter() - t0,
                "optimizer": None
                if optimizer is None
                else {"opt": optimizer.state_dict(), "sched": sched.state_dict()},
                "rng": torch.get_rng_state(),
            },
        )

    t0 = time.perf_counter()
    steps_at_start, last_emit = pos.step, 0.0
    stop = should_stop or (lambda: False)
    for s_idx in range(pos.stage, len(stages)):
        stage = stages[s_idx]
        fresh = pos.epoch == 0 and pos.batch == 0
        optimizer = make_optimizer(spec, stage_parameters(model, stage))
        step_size = spec.optimizer.lr_step or 10**9
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size, spec.optimizer.lr_gamma)
        if not fresh and saved_opt is not None:
            optimizer.load_state_dict(saved_opt["opt"])
            sched.load_state_dict(saved_opt["sched"])
        saved_opt = None
        method.on_stage_start(stage, fresh=fresh)
        emit(
            {
                "type": "stage_start",
                "stage": s_idx,
                "n_stages": len(stages),
                "modalities": list(stage.modalities),
                "epochs": stage.epochs,
            }
        )
        for epoch in range(pos.epoch, stage.epochs):
            model.train()
            gen = torch.Generator().manual_seed(derive_seed(spec.seed, s_idx, epoch))
            loss_sum, loss_n = torch.zeros((), device=device), 0
            batches = train_split.batches(
                spec.batch_size,
                modalities=list(stage.modalities),
                generator=gen,
                start=pos.batch,
                device=device,
            )
            for b, (xs, y) in enumerate(batches, start=pos.batch):
                if stop():
                    pos.batch = b
                    checkpoint(optimizer, sched)
                    tracker.finish("KILLED")
                    emit({"type": "stopped", **vars(pos)})
                    return TrainResult("stopped", checkpoint=ckpt_path)
                log = pos.step % spec.log_every == 0
                ctx = StepContext(stage, epoch, pos.step, log, derive_seed(spec.seed, pos.step))
                optimizer.zero_grad(set_to_none=True)
                loss = method.step(xs, y, ctx)
                optimizer.step()
                loss_sum += loss
                loss_n += 1
                pos.step += 1
                if ctx.stats or log:
                    m_name = "fused" if len(stage.modalities) > 1 else stage.modalities[0]
                    stats = {f"train/{m_name}/loss": loss, **ctx.stats}
                    values = torch.stack(
                        [
                            torch.as_tensor(v, dtype=torch.float32, device=device)
                            for v in stats.values()
                        ]
                    ).tolist()
                    tracker.log_metrics(dict(zip(stats, values, strict=True)), pos.step)
                now = time.perf_counter()
                if now - last_emit > 0.25 or pos.step == total_steps:
                    last_emit = now
                    done = pos.step - steps_at_start
                    rate = done / max(now - t0, 1e-9)
                    emit(
                        {
                            "type": "progress",
                            "stage": s_idx,
                            "n_stages": len(stages),
                            "epoch": epoch,
                            "epochs": stage.epochs,
                            "step": pos.step,
                            "total_steps": total_steps,
                            "fraction": pos.step / total_steps,
                            "eta_s": (total_steps - pos.step) / rate if rate > 0 else None,
                            "modalities": list(stage.modalities),
                        }
                    )
            sched.step()
            pos.epoch, pos.batch = epoch + 1, 0
            ev = evaluate(model, method, data.splits["val"], data.n_classes, device, autocast)
            train_loss = float(loss_sum) / max(loss_n, 1)
            row = {
                "stage": s_idx,
                "epoch": epoch,
                "modalities": list(stage.modalities),
                "train_loss": train_loss,
                "lr": optimizer.param_groups[0]["lr"],
                **_public(ev),
            }
            history.append(row)
            flat = _flat_eval("val", ev)
            flat["train/fused/epoch_loss"] = train_loss
            tracker.log_metrics(flat, pos.step)
            score = ev[spec.selection]
            if score > best.score:
                best = Best(
                    score,
                    s_idx,
                    epoch,
                    _public(ev),
                    {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                )
            emit(
                {
                    "type": "epoch_end",
                    "stage": s_idx,
                    "epoch": epoch,
                    "val": _public(ev),
                    "best": {"stage": best.stage, "epoch": best.epoch, "score": best.score},
                }
            )
            checkpoint(optimizer, sched)
        next_stage = stages[s_idx + 1] if s_idx + 1 < len(stages) else None
        transition = transition_data(train_split, spec.batch_size, device)
        info = method.on_stage_end(stage, next_stage, transition)
        if info:
            transitions.append({"stage": s_idx, **info})
            tracker.log_metrics(info, pos.step)
        pos.stage, pos.epoch, pos.batch = s_idx + 1, 0, 0
        checkpoint(None, None)

    # Test metrics: once, for the checkpoint selected on the validation split.
    final_state = copy.deepcopy(model.state_dict())
    if best.state is not None:
        model.load_state_dict(best.state)
    test = evaluate(model, method, data.splits["test"], data.n_classes, device, autocast)
    wall = elapsed + time.perf_counter() - t0
    result = {
        "spec": spec.to_dict(),
        "spec_hash": spec.hash(),
        "val": best.val,
        "test": {k: test[k] for k in ("acc", "macro_f1", "map", "loss")}
        | {"modality_acc": test["modality_acc"]},
        "best": {
            "stage": best.stage,
            "epoch": best.epoch,
            "metric": spec.selection,
            "score": best.score,
        },
        "diagnostics": {
            "epochs": history,
            "transitions": transitions,
            "confusion_matrices": {
                name: metrics.confusion_matrix(pred, data.splits["test"].y, data.n_classes).tolist()
                for name, pred in test["preds"].items()
            },
            "test_confidence": test["confidence"],
            **method.diagnostics(),
        },
        "run": {
            "wall_time_s": wall,
            "steps": pos.step,
            "device": str(device),
            "precision": precision,
            "torch": torch.__version__,
            "sizes": {k: len(v) for k, v in data.splits.items()},
        },
    }
    tracker.log_metrics(_flat_eval("test", test), pos.step)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _save(
            out / "best_model.pt",
            {"spec": spec.to_dict(), "model": model.state_dict(), "best": result["best"]},
        )
        _save(out / "final_model.pt", {"spec": spec.to_dict(), "model": final_state})
        write_json(out / "result.json", result)
        write_json(out / "spec.json", spec.to_dict())
        write_json(out / "confusion_matrices.json", result["diagnostics"]["confusion_matrices"])
        for name in ("result.json", "spec.json", "confusion_matrices.json"):
            tracker.log_artifact(out / name)
        for name in ("final_model.pt", "best_model.pt"):
            tracker.log_artifact(out / name, "checkpoints")
    tracker.finish("FINISHED")
    emit({"type": "finished", "test": result["test"], "best": result["best"]})
    return TrainResult("completed", result, ckpt_path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
