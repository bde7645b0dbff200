"""The training loop: stages, epochs, steps; validation-only model selection; checkpoints.

Read it top to bottom in `Run`: `train` builds one, `Run.start` loads the data, the model and the
method (and resumes from a checkpoint), `Run.stage` and `Run.epoch` are the loop, `Run.finish`
evaluates the test split once, for the checkpoint selected on the validation split. A method
computes each step's gradients; the trainer steps the optimizer (igm_core/optim.py: reset at
every stage, with a per-stage step decay). Randomness is derived from (seed, stage, epoch) and
(seed, step), so a run stopped between any two steps and resumed from its checkpoint repeats the
same updates.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from igm_core import balance, catalog, checkpoint, events, results
from igm_core.checkpoint import CHECKPOINT, Best, RunState, derive_seed
from igm_core.compiled import CompiledStep
from igm_core.data.base import MultimodalData, hold_out
from igm_core.device import pick_autocast, pick_device
from igm_core.evaluation import compare_fusions, evaluate, flat_metrics, public
from igm_core.methods.base import EpochData, Method, Stage, StepContext, transition_data
from igm_core.models import build_model
from igm_core.optim import make_optimizer, make_scheduler
from igm_core.spec import ResolvedSpec, Spec, resolve_spec
from igm_core.tracking import NullTracker, Tracker

__all__ = ["CHECKPOINT", "TrainResult", "evaluate", "train"]

PROGRESS_EVERY_S = 0.25


@dataclass
class TrainResult:
    status: str  # "completed" or "stopped"
    result: dict[str, Any] | None = None  # the result.json content when completed
    checkpoint: Path | None = None


def train(
    spec: ResolvedSpec | Spec | dict[str, Any],
    *,
    out_dir: str | Path | None = None,
    tracker: Tracker | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_event: Callable[[events.Event], None] | None = None,
    data: MultimodalData | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train the spec's method; write checkpoints (and result.json) under out_dir when given.

    A ResolvedSpec is used as it is; a mapping or a plain Spec is resolved first. The tracker is
    finished here in every case: FINISHED, KILLED (stopped, or interrupted) or FAILED (an
    exception, which propagates).
    """
    tracker = tracker or NullTracker()
    try:
        run = Run(resolve_spec(spec), out_dir, tracker, should_stop, on_event)
        return run.start(data, resume)
    except Exception:
        tracker.finish("FAILED")
        raise
    except BaseException:
        tracker.finish("KILLED")
        raise


class _Stop(Exception):
    """should_stop() said so: unwinds the loop to Run.start."""


class Run:
    """One training run from its spec to its result (or to a stop)."""

    def __init__(
        self,
        spec: ResolvedSpec,
        out_dir: str | Path | None,
        tracker: Tracker,
        should_stop: Callable[[], bool] | None,
        on_event: Callable[[events.Event], None] | None,
    ) -> None:
        self.spec, self.tracker = spec, tracker
        self.stop = should_stop or (lambda: False)
        self.emit = on_event or (lambda event: None)
        self.out = Path(out_dir) if out_dir is not None else None
        self.ckpt_path = self.out / CHECKPOINT if self.out is not None else None
        self.device = pick_device(spec.device)
        self.precision, self.autocast = pick_autocast(spec.precision, self.device)
        self.state = RunState()

    # ------------------------------------------------------------------------- set-up

    def start(self, data: MultimodalData | None, resume: bool) -> TrainResult:
        spec = self.spec
        torch.manual_seed(spec.seed)
        if data is None:
            data = catalog.build_dataset(spec.dataset.name, spec.dataset.params, spec.seed)
        self.data = data.select(list(spec.modalities))
        self.model = build_model(
            {m: e.model_dump() for m, e in spec.model.encoders.items()},
            self.data.shapes(),
            spec.model.head_hidden,
            self.data.n_classes,
            spec.model.shared_head,
        ).to(self.device)
        factory = catalog.METHODS.get(spec.method.name).load()
        self.method: Method = factory(
            spec.method.params, self.model, spec, self.device, self.autocast
        )
        self.step_fn = self.method.step
        if spec.compile != "off":
            self.step_fn = CompiledStep(self.method.step, self.model, spec.compile)
        self.stages = self.method.stages()
        self.train_split, self.holdout = self.data.splits["train"], None
        if self.method.holdout_fraction() > 0:  # never trained on: the method's own use
            self.train_split, self.holdout = hold_out(
                self.train_split, self.method.holdout_fraction(), spec.seed
            )
        n_batches = self.train_split.num_batches(spec.batch_size)
        self.total_steps = sum(s.epochs for s in self.stages) * n_batches
        if self.ckpt_path is not None and self.ckpt_path.exists() and resume:
            self.state = checkpoint.load(
                self.ckpt_path,
                spec=spec,
                model=self.model,
                method=self.method,
                device=self.device,
            )
            self.emit(events.Resumed(**vars(self.state.pos)))
        # every attempt's run carries the params and tags, a resumed one included
        self.tracker.log_params(spec.to_dict())
        self.tracker.set_tags(
            {"spec_hash": spec.hash(), "method": spec.method.name, "dataset": spec.dataset.name}
        )
        self.t0, self.steps_at_start, self.last_emit = time.perf_counter(), self.state.pos.step, 0.0
        try:
            for s_idx in range(self.state.pos.stage, len(self.stages)):
                self.stage(s_idx)
        except _Stop:
            pos = self.state.pos
            self.tracker.finish("KILLED")
            self.emit(events.Stopped(pos.stage, pos.epoch, pos.batch, pos.step))
            return TrainResult("stopped", checkpoint=self.ckpt_path)
        return self.finish()

    def save(self, optimizer: torch.optim.Optimizer | None = None, sched: Any = None) -> None:
        if self.ckpt_path is None:
            return
        checkpoint.save(
            self.ckpt_path,
            spec=self.spec,
            model=self.model,
            method=self.method,
            state=self.state,
            elapsed=self.state.elapsed + time.perf_counter() - self.t0,
            optimizer=optimizer,
            scheduler=sched,
        )

    # ------------------------------------------------------------------------- the loop

    def stage(self, s_idx: int) -> None:
        spec, pos, stage = self.spec, self.state.pos, self.stages[s_idx]
        fresh = pos.epoch == 0 and pos.batch == 0
        optimizer = make_optimizer(spec, self.method.stage_parameters(stage))
        for group in optimizer.param_groups:
            group["lr"] *= self.method.lr_scale(stage)
        sched = make_scheduler(spec, optimizer)
        saved = self.state.optimizer
        if not fresh and saved is not None:
            optimizer.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
        self.state.optimizer = None
        self.method.on_stage_start(stage, fresh=fresh)
        self.emit(events.StageStart(s_idx, len(self.stages), list(stage.modalities), stage.epochs))
        for epoch in range(pos.epoch, stage.epochs):
            self.epoch(s_idx, epoch, optimizer, sched)
        next_stage = self.stages[s_idx + 1] if s_idx + 1 < len(self.stages) else None
        best = self.state.best.state
        if spec.schedule.stage_init == "best" and next_stage is not None and best is not None:
            # the next stage (and the projection built for it) starts from the best weights so
            # far: the best score is kept over the whole run, never reset per stage
            self.model.load_state_dict(best)
        transition = transition_data(self.train_split, spec.batch_size, self.device)
        info = self.method.on_stage_end(stage, next_stage, transition)
        if info:
            self.state.transitions.append({"stage": s_idx, **info})
            self.tracker.log_metrics(info, pos.step)
        pos.stage, pos.epoch, pos.batch = s_idx + 1, 0, 0
        self.save()

    def epoch(self, s_idx: int, epoch: int, optimizer: torch.optim.Optimizer, sched: Any) -> None:
        spec, pos, stage = self.spec, self.state.pos, self.stages[s_idx]
        self.model.train()
        gen = torch.Generator().manual_seed(derive_seed(spec.seed, s_idx, epoch))
        loss_sum, loss_n = torch.zeros((), device=self.device), 0
        batches = self.train_split.batches(
            spec.batch_size,
            modalities=list(stage.loaded),
            generator=gen,
            start=pos.batch,
            device=self.device,
        )
        lr = optimizer.param_groups[0]["lr"]  # this epoch's (the scheduler steps at its end)
        n_batches = self.train_split.num_batches(spec.batch_size)

        def step_optimizer() -> None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for b, (xs, y) in enumerate(batches, start=pos.batch):
            if self.stop():
                pos.batch = b
                self.save(optimizer, sched)
                raise _Stop
            if b == 0:
                self.hook("on_epoch_start", s_idx, epoch)
            log = pos.step % spec.log_every == 0
            ctx = StepContext(
                stage,
                epoch,
                pos.step,
                log,
                derive_seed(spec.seed, pos.step),
                batch=b,
                batches=n_batches,
                step_optimizer=step_optimizer,
            )
            optimizer.zero_grad(set_to_none=True)
            loss = self.step_fn(xs, y, ctx)
            optimizer.step()
            loss_sum += loss
            loss_n += 1
            pos.step += 1
            if ctx.stats or log:
                self.log_step(stage, loss, ctx)
            self.progress(s_idx, epoch)
        sched.step()
        pos.epoch, pos.batch = epoch + 1, 0
        self.validate(s_idx, epoch, float(loss_sum) / max(loss_n, 1), lr)
        self.hook("on_epoch_end", s_idx, epoch)
        self.save(optimizer, sched)

    def hook(self, name: str, s_idx: int, epoch: int) -> None:
        """A method's epoch hook with what it may read; its metrics go to the tracker."""
        spec, stage = self.spec, self.stages[s_idx]
        data = EpochData(
            train=self.train_split,
            holdout=self.holdout,
            val=self.data.splits["val"],
            n_classes=self.data.n_classes,
            batch_size=spec.batch_size,
            device=self.device,
            seed=derive_seed(spec.seed, s_idx, epoch, 1),
            make_optimizer=functools.partial(make_optimizer, spec),
        )
        info = getattr(self.method, name)(stage, epoch, data)
        if info:
            self.tracker.log_metrics(info, self.state.pos.step)

    def log_step(self, stage: Stage, loss: torch.Tensor, ctx: StepContext) -> None:
        m_name = "fused" if len(stage.modalities) > 1 else stage.modalities[0]
        stats = {f"train/{m_name}/loss": loss, **ctx.stats}
        # one device-to-host copy for all of them
        values = torch.stack(
            [torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in stats.values()]
        ).tolist()
        self.tracker.log_metrics(dict(zip(stats, values, strict=True)), self.state.pos.step)

    def progress(self, s_idx: int, epoch: int) -> None:
        pos, now = self.state.pos, time.perf_counter()
        if now - self.last_emit <= PROGRESS_EVERY_S and pos.step != self.total_steps:
            return
        self.last_emit = now
        rate = (pos.step - self.steps_at_start) / max(now - self.t0, 1e-9)
        stage = self.stages[s_idx]
        self.emit(
            events.Progress(
                stage=s_idx,
                n_stages=len(self.stages),
                epoch=epoch,
                epochs=stage.epochs,
                step=pos.step,
                total_steps=self.total_steps,
                fraction=pos.step / self.total_steps,
                eta_s=(self.total_steps - pos.step) / rate if rate > 0 else None,
                modalities=list(stage.modalities),
            )
        )

    def validate(self, s_idx: int, epoch: int, train_loss: float, lr: float) -> None:
        """Evaluate the validation split, log it, and keep the model if it is the best so far."""
        state, stage = self.state, self.stages[s_idx]
        # a fusion with parameters (calibrated) is fitted here, so selection uses it as configured
        ev = self.evaluate("val", fit_fusion=self.method.calibrates)
        state.history.append(
            {
                "stage": s_idx,
                "epoch": epoch,
                "modalities": list(stage.modalities),
                "train_loss": train_loss,
                "lr": lr,
                **public(ev),
            }
        )
        flat = flat_metrics("val", ev)
        flat["train/fused/epoch_loss"] = train_loss
        self.tracker.log_metrics(flat, state.pos.step)
        score = ev[self.spec.selection]
        if score > state.best.score and self.method.selectable(stage, epoch):
            weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            state.best = Best(score, s_idx, epoch, public(ev), weights)
        best = state.best
        self.emit(
            events.EpochEnd(
                s_idx,
                epoch,
                public(ev),
                {"stage": best.stage, "epoch": best.epoch, "score": best.score},
            )
        )

    def evaluate(self, split: str, fit_fusion: bool = False) -> dict[str, Any]:
        if fit_fusion and split != "val":
            raise ValueError("fusion parameters are fitted on the validation split only")
        return evaluate(
            self.model,
            self.method,
            self.data.splits[split],
            self.data.n_classes,
            self.device,
            self.autocast,
            fit_fusion=fit_fusion,
        )

    # ------------------------------------------------------------------------- the end

    def finish(self) -> TrainResult:
        """Test metrics: once, for the checkpoint selected on the validation split."""
        state = self.state
        final_state = copy.deepcopy(self.model.state_dict())
        if state.best.state is not None:
            self.model.load_state_dict(state.best.state)
        fusions, calibration = None, None
        if self.method.fusions:
            # fit the fusion parameters on the selected model's validation logits; then every
            # fusion is scored on the same test logits (test labels are only scored against)
            val = self.evaluate("val", fit_fusion=True)
            calibration = val.get("calibration")
        test = self.evaluate("test")
        if self.method.fusions:
            fusions = compare_fusions(
                self.method,
                val,
                test,
                self.data.splits["val"].y,
                self.data.splits["test"].y,
                self.data.n_classes,
            )
        measured = balance.measure(self, test)
        result = results.assemble(
            spec=self.spec,
            best=state.best,
            test=test,
            test_y=self.data.splits["test"].y,
            n_classes=self.data.n_classes,
            history=state.history,
            transitions=state.transitions,
            method_diagnostics=self.method.diagnostics(),
            fusions=fusions,
            calibration=calibration,
            balance=measured,
            run={
                "wall_time_s": state.elapsed + time.perf_counter() - self.t0,
                "steps": state.pos.step,
                "device": str(self.device),
                "precision": self.precision,
                "torch": torch.__version__,
                "sizes": {k: len(v) for k, v in self.data.splits.items()},
            },
        )
        self.tracker.log_metrics(flat_metrics("test", test), state.pos.step)
        if self.out is not None:
            results.write_run_dir(
                self.out, result, self.model.state_dict(), final_state, self.tracker
            )
        self.tracker.finish("FINISHED")
        self.emit(events.Finished(result["test"], result["best"]))
        return TrainResult("completed", result, self.ckpt_path)
