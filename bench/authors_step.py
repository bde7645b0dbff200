"""The authors' IGM training step (their CREMA-D loop), timed in this process from a checkout the
user names: `bench_igm.py --reference-dir DIR`, DIR a checkout of njustkmg/IJCAI25-IGM.

None of their code is in this project: their train_CREMA.py (train_withP, compute_P_matrix),
models/ and utils/ are imported from DIR at run time. What their files import but their training
step never calls (torchvision's transforms, transformers' BERT, librosa, pandas, cv2: their data
loading, augmentation and text model) is stood in for by empty placeholder modules when it is not
installed here; scikit-learn, whose f1_score and average_precision_score their loop calls on every
batch, must be installed (`pip install scikit-learn`). On a CPU their `.cuda()` calls are made to
return the tensor or module unchanged while their code runs.

Their step is train_withP's loop body in the 'train_video' state (the frame trained after the
audio, the head gradients multiplied by the audio stage's matrices), with their crema.json
(batch 12, mixup 1.0, flat ratio 0.3, rho 1e-10 on the encoder and the head, SGD 0.01, momentum
0.9, weight decay 1e-4) on their ResNet-18 model (6 classes).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import io
import itertools
import json
import logging
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import torch

# top-level modules their files import for data loading and the text model only
PLACEHOLDERS = {"torchvision", "transformers", "librosa", "pandas", "cv2"}


class _Anything:
    """Any attribute, any call, any base class: what a placeholder module hands out."""

    def __getattr__(self, name: str) -> _Anything:
        return _placeholder_attr(name)

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


def _placeholder_attr(name: str) -> _Anything:
    if name.startswith("__"):  # __file__, __spec__...: tools that inspect modules ask for these
        raise AttributeError(name)
    return _Anything()


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: serves a placeholder only for a module that is not installed."""

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in PLACEHOLDERS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _placeholder_attr
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@contextlib.contextmanager
def _cuda_is_here(device: torch.device) -> Iterator[None]:
    """On a CPU, their `.cuda()` calls return the tensor or module as it is."""
    if device.type == "cuda":
        yield
        return
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


def load(reference_dir: str) -> types.ModuleType:
    """Import their train_CREMA.py from the checkout (their main() does not run)."""
    root = Path(reference_dir).resolve()
    if not (root / "train_CREMA.py").is_file() or not (root / "models" / "AudioVideo.py").is_file():
        raise SystemExit(f"--reference-dir {root}: no train_CREMA.py and models/AudioVideo.py")
    sys.path.insert(0, str(root))
    sys.meta_path.append(_PlaceholderFinder())
    with contextlib.redirect_stdout(io.StringIO()):
        module = importlib.import_module("train_CREMA")
    cfg = module.deep_update_dict(
        json.loads((root / "configs" / "crema.json").read_text()), module.config
    )
    cfg["print_inteval"] = 10**9  # their loop prints at step 0 only
    module.cfg = cfg  # as their main() sets it
    return module


class AuthorsStep:
    """Their model, optimizer and loop on fixed CREMA-D-shaped batches; times one step."""

    def __init__(self, module: types.ModuleType, device: torch.device, batch: int) -> None:
        self.m, self.device, self.batch = module, device, batch
        cfg = module.cfg
        g = torch.Generator().manual_seed(0)
        n_class = cfg["setting"]["num_class"]
        self.spec = torch.randn(batch, 257, 188, generator=g)  # their loader's spectrogram
        self.image = torch.randn(batch, 3, cfg["fps"], 224, 224, generator=g)  # B x C x T x H x W
        labels = torch.arange(batch) % n_class
        self.y = torch.nn.functional.one_hot(labels, n_class).float()  # their labels are one-hot
        with _cuda_is_here(device):
            torch.manual_seed(0)
            self.model = module.create_model(cfg).to(device)
        o = cfg["train"]["optimizer"]
        self.optimizer = torch.optim.SGD(  # as their main() builds it, every stage
            self.model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["wc"]
        )
        self.logger = logging.getLogger("authors_step")
        self.logger.addHandler(logging.NullHandler())
        self.logger.propagate = False
        # the matrices of the audio stage, keyed by the audio head's weights as their
        # get_P_matrix keys them; identity unless transition() built them (same cost per step)
        for layer in self.model.cls_a:
            if isinstance(layer, torch.nn.Linear):
                d = layer.weight.shape[1]
                self.model.P_matrix[layer.weight] = torch.eye(d, device=device)

    def _loader(self, n: int, stamps: list[float]) -> Iterator[tuple]:
        """n batches; stamps[i + 1] - stamps[i] is then the loop body of batch i."""
        for _ in range(n):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            yield self.spec, self.image, self.y  # on the host: their loop moves each batch
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    def steps(self, n: int) -> list[float]:
        """Seconds of each of n steps of their train_withP (one epoch of n batches)."""
        stamps: list[float] = []
        with _cuda_is_here(self.device), contextlib.redirect_stdout(io.StringIO()):
            self.m.train_withP(
                0, self._loader(n, stamps), self.model, self.optimizer, self.logger, "train_video"
            )
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return [b - a for a, b in itertools.pairwise(stamps)]

    def transition(self, n_batches: int) -> tuple[float, float]:
        """Their compute_P_matrix over n batches of the audio stage: (seconds of the SVDs of
        get_P_matrix, one per Linear and Conv2d layer; seconds per batch of the covariance pass
        before them)."""
        self.model.fea_in.clear()
        svd_s: list[float] = []
        get_p = self.model.get_P_matrix

        def timed_get_p(*args: object) -> None:
            t = time.perf_counter()
            get_p(*args)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            svd_s.append(time.perf_counter() - t)

        self.model.get_P_matrix = timed_get_p
        t0 = time.perf_counter()
        try:
            with _cuda_is_here(self.device), torch.no_grad():
                self.m.compute_P_matrix(
                    self.model, self._loader(n_batches, []), self.m.config, "train_audio"
                )
        finally:
            del self.model.get_P_matrix
        total = time.perf_counter() - t0
        return svd_s[0], (total - svd_s[0]) / n_batches
