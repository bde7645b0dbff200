"""Whether each encoder fits its input and its weights: one check, for the API and the worker.

The API runs `spec_errors` on a resolved spec before anything queues; the worker runs the same
rules as it builds the model (igm_core.models.ConvEncoder and igm_core.resnet.ResNet18Encoder call
`check_input`, ResNet18Encoder.load_pretrained calls `check_weights` before torch.load). Rules:
- inputs: an encoder in INPUTS takes only the inputs its rule accepts (conv, resnet18 and
  resnet50: C x H x W, or T x C x H x W frames; bert and token_bag: 2 x L token ids and
  attention mask); mlp flattens any shape;
- weights: an encoder in STATE_SHAPES names the tensors a weights file must hold and their
  shapes (ResNet-18: its trunk, from RESNET18_LAYERS and RESNET18_WIDTHS, which igm_core.resnet
  builds from too). The file is read by igm_core.weights_file, without torch and without running
  it. As at loading, a "module." prefix (a DataParallel checkpoint) and the classifier ("fc.*")
  are dropped, num_batches_tracked may be missing, and conv1's input channels may differ (an RGB
  checkpoint on a 1-channel spectrogram: its filters are averaged).
Messages name the expected tensors and never quote the file. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from igm_core.weights_file import WeightsError, read_tensors

RESNET18_LAYERS = (2, 2, 2, 2)  # basic blocks per stage
RESNET18_WIDTHS = (64, 128, 256, 512)
IMAGE_LIKE = ("C x H x W or T x C x H x W", lambda shape: len(shape) in (3, 4))
TOKENS = ("2 x L token (ids and attention mask)", lambda shape: len(shape) == 2 and shape[0] == 2)
ANY_SHAPE = ("mlp",)  # flattens whatever it is given
INPUTS = {
    "conv": IMAGE_LIKE,
    "resnet18": IMAGE_LIKE,
    "resnet50": IMAGE_LIKE,
    "bert": TOKENS,
    "token_bag": TOKENS,
}
OPTIONAL = ("num_batches_tracked",)  # BatchNorm fills it in when a plain dict lacks it
DROPPED = ("fc.",)  # the classifier: the encoders have none
MAX_NAMED = 3


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) if shape else "a scalar"


def takes(encoder: str, shape: tuple[int, ...]) -> bool:
    rule = INPUTS.get(encoder)
    return rule is None or rule[1](shape)


def input_error(encoder: str, shape: tuple[int, ...]) -> str | None:
    """Why `encoder` cannot take inputs of `shape`, or None when it can."""
    if takes(encoder, shape):
        return None
    others = [name for name in (*ANY_SHAPE, *INPUTS) if takes(name, shape)]
    return (
        f"encoder {encoder!r} needs {INPUTS[encoder][0]} inputs, got {_dims(shape)} "
        f"({len(shape)} dimension{'s' if len(shape) != 1 else ''}); "
        f"encoders that take these inputs: {', '.join(others) or 'none'}"
    )


def check_input(encoder: str, shape: tuple[int, ...]) -> None:
    """ValueError when `encoder` cannot take inputs of `shape` (the encoders call it)."""
    if (error := input_error(encoder, tuple(shape))) is not None:
        raise ValueError(error)


def _batch_norm(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    stats = ("weight", "bias", "running_mean", "running_var")
    return {**{f"{prefix}.{s}": (width,) for s in stats}, f"{prefix}.num_batches_tracked": ()}


def resnet18_state(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The state dict shapes of igm_core.resnet.ResNet18Encoder on inputs of `shape`."""
    state = {"conv1.weight": (64, shape[-3], 7, 7), **_batch_norm("bn1", 64)}
    c_in = RESNET18_WIDTHS[0]
    for stage, (blocks, width) in enumerate(zip(RESNET18_LAYERS, RESNET18_WIDTHS, strict=True)):
        for block in range(blocks):
            name, c = f"layer{stage + 1}.{block}", c_in if block == 0 else width
            state[f"{name}.conv1.weight"] = (width, c, 3, 3)
            state |= _batch_norm(f"{name}.bn1", width)
            state[f"{name}.conv2.weight"] = (width, width, 3, 3)
            state |= _batch_norm(f"{name}.bn2", width)
            if block == 0 and c != width:  # stride 2 and more channels: a 1x1 projection
                state[f"{name}.downsample.0.weight"] = (width, c, 1, 1)
                state |= _batch_norm(f"{name}.downsample.1", width)
        c_in = width
    return state


STATE_SHAPES = {"resnet18": resnet18_state}


def loadable(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state dict's entries as the encoders load them: no "module." prefix, no classifier."""
    out = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in out.items() if not k.startswith(DROPPED)}


def _named(keys: list[str]) -> str:
    more = f" and {len(keys) - MAX_NAMED} more" if len(keys) > MAX_NAMED else ""
    return ", ".join(keys[:MAX_NAMED]) + more


def state_error(encoder: str, shape: tuple[int, ...], have: Mapping[str, tuple[int, ...]]) -> str:
    """What keeps tensors of shapes `have` from loading into `encoder` ("" when they fit)."""
    want = STATE_SHAPES[encoder](shape)
    have = loadable(have)
    missing = [k for k in want if k not in have and not k.endswith(OPTIONAL)]
    extra = [k for k in have if k not in want]
    wrong = [
        k
        for k in want
        if k in have
        and tuple(have[k]) != want[k]
        and not (k == "conv1.weight" and len(have[k]) == 4 and have[k][0::2] == want[k][0::2])
    ]
    problems = []
    if missing:
        problems.append(f"missing {_named(missing)}")
    if wrong:
        first = f"{wrong[0]} must be {_dims(want[wrong[0]])}"
        problems.append(f"wrong shape{'s' if len(wrong) > 1 else ''} for {_named(wrong)} ({first})")
    if extra:
        problems.append(f"{len(extra)} tensor{'s' if len(extra) != 1 else ''} {encoder} has not")
    return "; ".join(problems)


def weights_error(encoder: str, shape: tuple[int, ...], path: str | Path) -> str | None:
    """Why the weights file at `path` does not fit `encoder` on inputs of `shape`, or None.
    Encoders without a STATE_SHAPES entry are not checked here."""
    if encoder not in STATE_SHAPES:
        return None
    what = f"not a {encoder} state dict for inputs of {_dims(shape)}"
    try:
        tensors = read_tensors(path)
    except WeightsError as err:
        return f"{what}: {err}"
    problem = state_error(encoder, shape, {k: t.shape for k, t in tensors.items()})
    return f"{what}: {problem}" if problem else None


def check_weights(encoder: str, shape: tuple[int, ...], path: str | Path) -> None:
    """ValueError naming the file when its weights do not fit (the encoders call it)."""
    if (error := weights_error(encoder, tuple(shape), path)) is not None:
        raise ValueError(f"{path}: {error}")


def spec_errors(spec: Mapping[str, Any], shapes: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) per encoder of a resolved spec mapping that does not fit its modality's
    input `shapes` (catalog.dataset_meta) or its weights file."""
    errors = []
    for modality in spec["modalities"]:
        enc = spec["model"]["encoders"][modality]
        shape = tuple(shapes.get(modality, ()))
        where = f"model.encoders.{modality}"
        if (error := input_error(enc["name"], shape)) is not None:
            errors.append((f"{where}.name", f"modality {modality!r}: {error}"))
            continue
        weights = (enc.get("params") or {}).get("pretrained")
        if isinstance(weights, str) and (error := weights_error(enc["name"], shape, weights)):
            errors.append((f"{where}.params.pretrained", error))
    return errors
