"""DatasetSplit: samples loaded on demand through DataLoader workers, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from igm_core import catalog
from igm_core.data.base import DatasetSplit, MultimodalData
from igm_core.trainer import train
from tests.specs import staged

SPEC = staged("ds", 200, 60, 60, batch_size=16)


class NoisySource:
    """In-memory samples with a random training-time augmentation (noise from the sample rng)."""

    def __init__(self, split) -> None:
        self.x, self.labels = split.x, split.y.numpy()
        self.modalities = list(split.x)

    def load(self, index: int, modalities: list[str], rng: np.random.Generator | None):
        out = {}
        for m in modalities:
            t = self.x[m][index].clone()
            if rng is not None:
                t += torch.from_numpy(rng.normal(0, 0.1, t.shape).astype(np.float32))
            out[m] = t
        return out


def as_dataset_splits(num_workers: int) -> MultimodalData:
    data = catalog.build_dataset("synthetic", SPEC["dataset"]["params"], 0)
    splits = {
        k: DatasetSplit(NoisySource(s), num_workers=num_workers) for k, s in data.splits.items()
    }
    return MultimodalData(splits, data.n_classes)


def test_batches_are_reproducible_and_resumable() -> None:
    split = as_dataset_splits(0).splits["train"]
    a = list(split.batches(16, generator=torch.Generator().manual_seed(3)))
    b = list(split.batches(16, generator=torch.Generator().manual_seed(3), start=4))
    assert len(a) == split.num_batches(16) == 13 and len(b) == 9
    for (xa, ya), (xb, yb) in zip(a[4:], b, strict=True):
        assert torch.equal(ya, yb) and torch.equal(xa["weak"], xb["weak"])
    evaluation = list(split.batches(16))
    assert torch.equal(torch.cat([y for _, y in evaluation]), split.y)  # ordered, no noise
    assert torch.equal(evaluation[0][0]["strong"], split.source.x["strong"][:16])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_training_through_workers_matches_in_memory_order(num_workers: int, tmp_path) -> None:
    ref = train(SPEC, data=as_dataset_splits(0)).result
    got = train(SPEC, data=as_dataset_splits(num_workers)).result
    assert got["test"] == ref["test"]  # worker processes change nothing
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 20

    first = train(SPEC, data=as_dataset_splits(num_workers), out_dir=tmp_path, should_stop=stop)
    assert first.status == "stopped"
    resumed = train(SPEC, data=as_dataset_splits(num_workers), out_dir=tmp_path).result
    assert resumed["test"] == ref["test"]
