"""What one resolved spec costs, estimated before it runs: data in memory, parameters, steps.

Every spec field is bounded alone, but combinations are not: 8 modalities x 4,096 dims x 10^6
samples, or 16 MLP layers 8,192 wide, or 1,000 stages x 10,000 epochs. `estimate` computes, without
torch and without loading data (the dataset's meta: shapes and split sizes, read from headers):
- data_bytes: float32 arrays of the datasets held in memory (the clip datasets read an
  on-disk cache instead, so they count 0 here);
- parameters: the model's trainable parameters (encoders and heads, as igm_core.models builds
  them; ResNet-18 by its layer sizes), and param_bytes = parameters x 16 (float32 weights,
  gradients and up to two optimizer states);
- steps: epochs of the whole schedule x batches per epoch of the training split;
- activation_bytes: float32 activations kept for the backward pass of one training step at the
  spec's batch size (the encoders' by their layer shapes, BERT's at the spec's token length, from
  the model folder's config.json): what a step needs besides the parameters (igm_core.cost_models).
`check` compares an estimate with a deployment's caps and returns one (field, message) per cap
exceeded, each naming the estimate and the cap. Torch-free: the API calls it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from igm_core import catalog
from igm_core.cost_models import activation_values, bert_config, bert_parameters

BYTES_PER_VALUE = 4  # float32
BYTES_PER_PARAMETER = 16  # weights, gradients, two optimizer moments (Adam), float32
IN_MEMORY = frozenset({"synthetic", "digits", "features", "nvgesture_features"})
DIGITS_SAMPLES = 1797
# ResNet-18 without its classifier, 3 input channels (torchvision's layer sizes)
RESNET18_PARAMETERS = 11_176_512
RESNET18_CONV1_PER_CHANNEL = 64 * 7 * 7
# ResNet-50 without its 1000-way classifier (2048 x 1000 + 1000), 3 input channels
RESNET50_PARAMETERS = 23_508_032
RESNET50_FC = 2048 * 1000 + 1000


@dataclass(frozen=True)
class Estimate:
    data_bytes: int
    parameters: int
    param_bytes: int
    epochs: int
    steps: int
    activation_bytes: int = 0


@dataclass(frozen=True)
class Caps:
    """A deployment's limits (server settings)."""

    max_data_bytes: int
    max_parameters: int
    max_steps: int


def _linear(a: int, b: int) -> int:
    return a * b + b


def _mlp(dims: list[int]) -> int:
    return sum(_linear(a, b) for a, b in itertools.pairwise(dims))


def encoder_parameters(name: str, params: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    """Parameters of one encoder on inputs of `shape`, as igm_core.models builds it."""
    if name == "mlp":
        return _mlp([math.prod(shape), *params.get("hidden", [256]), params.get("out_dim", 128)])
    if name == "conv":
        c_in, total = shape[-3] if len(shape) >= 3 else 1, 0
        for c in params.get("channels", [32, 64]):
            total += c_in * c * 9 + c + 2 * c  # 3x3 conv with bias, batch norm scale and shift
            c_in = c
        return total + _linear(c_in * 4, params.get("out_dim", 128))
    if name == "resnet18":
        channels = shape[-3] if len(shape) >= 3 else 1
        return RESNET18_PARAMETERS + RESNET18_CONV1_PER_CHANNEL * (channels - 3)
    if name == "resnet50":
        channels = shape[-3] if len(shape) >= 3 else 1
        total = RESNET50_PARAMETERS + RESNET18_CONV1_PER_CHANNEL * (channels - 3)
        total += RESNET50_FC if params.get("fc", True) else 0
        proj = params.get("proj_dim")
        return total + (_linear(1000 if params.get("fc", True) else 2048, proj) if proj else 0)
    if name == "bert":
        return bert_parameters(bert_config(params["pretrained"]))
    if name == "token_bag":
        dim = int(params.get("dim", 128))
        return int(params.get("buckets", 30522)) * dim + _linear(dim, params.get("out_dim", 128))
    raise ValueError(f"no parameter count for encoder {name!r}")


def encoder_out_dim(name: str, params: Mapping[str, Any]) -> int:
    if name == "resnet18":
        return 512
    if name == "resnet50":
        return int(params.get("proj_dim") or (1000 if params.get("fc", True) else 2048))
    if name == "bert":
        return int(bert_config(params["pretrained"])["hidden_size"])
    return int(params.get("out_dim", 128))


def split_sizes(dataset: str, params: Mapping[str, Any], meta: Mapping[str, Any]) -> dict:
    """Samples per split: from the parameters (synthetic), the meta (files) or the constant."""
    if dataset == "synthetic":
        return {s: int(params[f"n_{s}"]) for s in ("train", "val", "test")}
    if dataset == "digits":
        return {"train": DIGITS_SAMPLES}
    return dict(meta.get("sizes") or {})


def estimate(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> Estimate:
    """The cost of a resolved spec mapping, given its dataset's meta (catalog.dataset_meta)."""
    dataset, params = spec["dataset"]["name"], spec["dataset"]["params"]
    shapes = {m: tuple(s) for m, s in meta["shapes"].items()}
    modalities = list(spec["modalities"])
    sizes = split_sizes(dataset, params, meta)
    values = sum(math.prod(shapes.get(m, (1,))) for m in modalities)
    data = sum(sizes.values()) * values * BYTES_PER_VALUE if dataset in IN_MEMORY else 0

    model = spec["model"]
    hidden, n_classes = list(model["head_hidden"]), int(meta["n_classes"])
    parameters, out_dims = 0, []
    for m in modalities:
        enc = model["encoders"][m]
        parameters += encoder_parameters(enc["name"], enc["params"], shapes.get(m, (1,)))
        out_dims.append(encoder_out_dim(enc["name"], enc["params"]))
    heads = out_dims[:1] if model.get("shared_head") else out_dims
    parameters += sum(_mlp([d, *hidden, n_classes]) for d in heads)

    schedule = spec["schedule"]
    epochs = sum(schedule.get("stage_epochs") or []) or int(schedule.get("epochs") or 1)
    train = sizes.get("train", 0)
    batches = max(1, math.ceil(train / int(spec["batch_size"])))
    # the largest step: a joint method runs every encoder at once, an alternating one (or MLA,
    # one modality per optimizer step) only one, but a bound is what a cap needs
    per_sample = sum(
        activation_values(
            model["encoders"][m]["name"], model["encoders"][m]["params"], shapes.get(m, (1,))
        )
        for m in modalities
    )
    return Estimate(
        data_bytes=data,
        parameters=parameters,
        param_bytes=parameters * BYTES_PER_PARAMETER,
        epochs=epochs,
        steps=epochs * batches,
        activation_bytes=per_sample * int(spec["batch_size"]) * BYTES_PER_VALUE,
    )


def estimate_spec(spec: Any) -> Estimate:
    """The cost of a ResolvedSpec (its dataset's meta read again: headers only)."""
    params = catalog.DATASETS.get(spec.dataset.name).params.model_validate(spec.dataset.params)
    return estimate(spec.to_dict(), catalog.dataset_meta(spec.dataset.name, params))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # the loop always returns


def check(est: Estimate, caps: Caps) -> list[tuple[str, str]]:
    """(field, message) per cap the estimate exceeds; empty when it fits."""
    out = []
    if est.data_bytes > caps.max_data_bytes:
        out.append(
            (
                "dataset.params",
                f"the data would take about {_size(est.data_bytes)} in memory; this server's "
                f"cap is {_size(caps.max_data_bytes)} (IGM_MAX_DATA_BYTES)",
            )
        )
    if est.parameters > caps.max_parameters:
        out.append(
            (
                "model",
                f"the model would have about {est.parameters:,} parameters "
                f"({_size(est.param_bytes)} with gradients and optimizer state); this server's "
                f"cap is {caps.max_parameters:,} (IGM_MAX_PARAMETERS)",
            )
        )
    if est.steps > caps.max_steps:
        out.append(
            (
                "schedule",
                f"the run would take about {est.steps:,} training steps ({est.epochs:,} epochs); "
                f"this server's cap is {caps.max_steps:,} (IGM_MAX_STEPS)",
            )
        )
    return out
