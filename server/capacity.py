"""Whether a spec fits any worker of its queue: igm_core.cost's estimate against the memory the
queue's live workers reported (server.workers).

Where a run keeps what (igm_core.trainer): the data in the worker's memory; the parameters with
their gradients and optimizer state (cost's param_bytes) on the GPU when the worker has one and
the spec's device is not "cpu", in memory otherwise. A run may use settings.worker_memory_share
of each (the rest is for the system, Python and activations, which the estimate leaves out). A
spec that fits no live worker of its queue is refused, each message naming the estimate, the
largest worker's memory, which worker that is, and the share; a spec asking for device "cuda" on
a queue without a GPU worker is refused too. With no live worker on the queue (a lab whose
workers start after the API, or all of them stopped) only the settings' caps apply, and their
messages say so: nothing is refused for want of a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from igm_core.cost import Estimate
from server.models import Worker

SHARE_SETTING = "IGM_WORKER_MEMORY_SHARE"


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


@dataclass(frozen=True)
class Fleet:
    """A queue's live workers and the rule they are read with."""

    queue: str
    workers: Sequence[Worker]
    share: float
    seen_within_s: float


def _on_gpu(worker: Worker, device: str) -> bool:
    return worker.gpu_memory_bytes is not None and device != "cpu"


def _needs(est: Estimate, worker: Worker, device: str) -> tuple[int, int]:
    """(memory, GPU memory) a run needs on `worker`."""
    if _on_gpu(worker, device):
        return est.data_bytes, est.param_bytes
    return est.data_bytes + est.param_bytes, 0


def fits(est: Estimate, device: str, worker: Worker, share: float) -> bool:
    if device == "cuda" and worker.gpu_memory_bytes is None:
        return False
    memory, gpu = _needs(est, worker, device)
    if memory > share * worker.memory_bytes:
        return False
    return not gpu or gpu <= share * (worker.gpu_memory_bytes or 0)


def _largest(workers: Sequence[Worker], gpu: bool) -> Worker:
    if gpu:
        return max(workers, key=lambda w: (w.gpu_memory_bytes or 0, w.name))
    return max(workers, key=lambda w: (w.memory_bytes, w.name))


def _of(worker: Worker, fleet: Fleet, gpu: bool) -> str:
    total = (worker.gpu_memory_bytes or 0) if gpu else worker.memory_bytes
    kind = "GPU memory" if gpu else "memory"
    model = f" ({worker.gpu_name})" if gpu and worker.gpu_name else ""
    return (
        f"the largest worker on queue {fleet.queue!r} by {kind}, {worker.name}, has "
        f"{gb(total)} of {kind}{model}, of which a run may use {fleet.share:.0%}: "
        f"{gb(fleet.share * total)} ({SHARE_SETTING})"
    )


def errors(est: Estimate, device: str, fleet: Fleet) -> list[tuple[str, str]]:
    """(field, message) per resource that no worker of `fleet` has enough of; [] when some
    worker fits, or when the queue has no live worker (then the settings' caps alone apply)."""
    if not fleet.workers or any(fits(est, device, w, fleet.share) for w in fleet.workers):
        return []
    gpus = [w for w in fleet.workers if w.gpu_memory_bytes is not None]
    if device == "cuda" and not gpus:
        names = ", ".join(w.name for w in fleet.workers)
        why = f"no worker on queue {fleet.queue!r} has a GPU (workers: {names})"
        return [("device", f"the spec asks for device 'cuda'; {why}")]
    out = []
    host = _largest(gpus if device == "cuda" else fleet.workers, gpu=False)
    memory, _ = _needs(est, host, device)
    if memory > fleet.share * host.memory_bytes:
        held = " and the model's parameters" if memory > est.data_bytes else ""
        need = f"the run would take about {gb(memory)} of memory (its data{held})"
        out.append(("dataset.params", f"{need}; {_of(host, fleet, gpu=False)}"))
    on_gpu = [w for w in gpus if _on_gpu(w, device)]
    if on_gpu:
        card = _largest(on_gpu, gpu=True)
        if est.param_bytes > fleet.share * (card.gpu_memory_bytes or 0):
            need = (
                f"the model would take about {gb(est.param_bytes)} of GPU memory with its "
                "gradients and optimizer state"
            )
            out.append(("model", f"{need}; {_of(card, fleet, gpu=True)}"))
    if not out:  # each resource is there, but never both on one worker
        out.append(
            (
                "model",
                f"no single worker on queue {fleet.queue!r} has both the memory "
                f"({gb(est.data_bytes)} of data) and the GPU memory ({gb(est.param_bytes)} "
                "of parameters) the run needs",
            )
        )
    return out


def no_workers_note(fleet: Fleet) -> str:
    """What a settings-cap message adds when no worker of the queue has reported."""
    return (
        f"no worker on queue {fleet.queue!r} has reported its memory in the last "
        f"{fleet.seen_within_s:g} s, so only this server's caps apply"
    )
