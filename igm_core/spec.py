"""The experiment spec: a pydantic model, its loading from JSON/YAML and its resolution.

`resolve_spec` validates a raw mapping and fills in every default (modalities from the dataset,
encoders from the input shapes, method and dataset parameters, the schedule), so that the result, a
`ResolvedSpec`, describes the run completely. Resolving may read a dataset's headers from disk, so
it happens once per process: the API stores the resolved mapping, and the worker rebuilds the
`ResolvedSpec` from it with `ResolvedSpec.model_validate`, which reads nothing. Errors come back as
SpecError with one "field.path: message" line per problem. Torch-free: the server validates specs
with this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from igm_core import catalog
from igm_core.errors import SpecError
from igm_core.names import ModalityName
from igm_core.sweep import apply_values

__all__ = [
    "ResolvedSpec",
    "Spec",
    "SpecError",
    "apply_overrides",
    "load_spec_file",
    "resolve_spec",
]

MAX_STAGES = 1000
MAX_EPOCHS = 10_000

# Options added after specs were first stored, with the value that behaves as before: at that
# value they are left out of the hash, so an older spec keeps its hash (a finished run is still
# found, a checkpoint still resumes) and its behaviour.
HASH_NEUTRAL: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("method", "params", "fusion_weights"), None),
    (("schedule", "stage_init"), "last"),
    (("optimizer", "lr_step_timing"), "after_epoch"),
    (("dataset", "params", "augment"), "cpu"),
    (("compile",), "off"),
)


def _hash_view(data: dict[str, Any]) -> dict[str, Any]:
    for path, default in HASH_NEUTRAL:
        node: Any = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == default:
            del node[path[-1]]
    return data


class _Strict(BaseModel):
    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)


class Component(_Strict):
    name: str = Field(..., min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class Schedule(_Strict):
    stage_epochs: list[int] | None = Field(None, min_length=1, max_length=MAX_STAGES)
    modality_order: list[ModalityName] | None = None
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    stage_init: Literal["last", "best"] = Field(
        "last",
        description="what a stage starts from: the last weights of the stage before, or the best "
        "validation-selected weights so far (the IGM authors' rule; with a modality's "
        "projection then built from those weights)",
    )


class Optimizer(_Strict):
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(1e-2, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    lr_step: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="decay the lr every lr_step epochs of a stage"
    )
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    lr_step_timing: Literal["after_epoch", "before_epoch"] = Field(
        "after_epoch",
        description="when the per-stage step decay counts an epoch: after it (PyTorch's "
        "convention: epoch e of a stage trains at lr * gamma^floor(e / lr_step)) or before it "
        "(the IGM authors' loop: lr * gamma^floor((e + 1) / lr_step), one epoch earlier)",
    )


class ModelSpec(_Strict):
    encoders: dict[ModalityName, Component] = Field(default_factory=dict)
    head_hidden: list[int] = Field([256, 64], min_length=1, max_length=8)
    shared_head: bool = False


class Spec(_Strict):
    name: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
    dataset: Component
    modalities: list[ModalityName] | None = Field(None, min_length=1, max_length=8)
    method: Component
    schedule: Schedule = Field(default_factory=Schedule)
    optimizer: Optimizer = Field(default_factory=Optimizer)
    batch_size: int = Field(64, ge=1, le=65_536)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA when supported, fp32 otherwise"
    )
    selection: Literal["acc", "macro_f1"] = Field(
        "acc", description="validation metric for model selection"
    )
    log_every: int = Field(10, ge=1, le=100_000, description="steps between gradient statistics")
    model: ModelSpec = Field(default_factory=ModelSpec)
    compile: Literal["off", "on", "graphs"] = Field(
        "off",
        description="torch.compile the encoders (on), with CUDA graphs (graphs: mode "
        "reduce-overhead); eager again, with a warning, if compiling fails",
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def hash(self) -> str:
        canonical = json.dumps(_hash_view(self.to_dict()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ResolvedSpec(Spec):
    """A spec with every default filled in: what `resolve_spec` returns and results store.

    `ResolvedSpec.model_validate(stored_mapping)` rebuilds one without touching any data file.
    """

    modalities: list[ModalityName] = Field(..., min_length=1, max_length=8)

    @property
    def used_modalities(self) -> list[str]:
        """The modalities the method trains and evaluates (all, or the unimodal one)."""
        rules = catalog.method_rules(self.method.name)
        return rules.used_modalities(self.method.params, list(self.modalities))


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _pydantic_errors(err: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for e in err.errors():
        path = _loc(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((f"{prefix}{path}" if path else prefix.rstrip("."), msg))
    return out


def resolve_spec(data: dict[str, Any] | Spec) -> ResolvedSpec:
    """Validate `data` and return the resolved spec, every default filled in."""
    if isinstance(data, ResolvedSpec):
        return data
    if isinstance(data, Spec):
        data = data.to_dict()
    if not isinstance(data, dict):
        raise SpecError([("", f"a spec is a mapping, got {type(data).__name__}")])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_pydantic_errors(err)) from None
    errors: list[tuple[str, str]] = []

    def params_of(registry: catalog.Registry, comp: Component, path: str) -> BaseModel | None:
        if comp.name not in registry:
            errors.append(
                (
                    f"{path}.name",
                    f"unknown {registry.kind} {comp.name!r}; choose one of: "
                    f"{', '.join(registry.names())}",
                )
            )
            return None
        try:
            return registry.get(comp.name).params.model_validate(comp.params)
        except ValidationError as err:
            errors.extend(_pydantic_errors(err, f"{path}.params."))
            return None

    ds_params = params_of(catalog.DATASETS, spec.dataset, "dataset")
    method_params = params_of(catalog.METHODS, spec.method, "method")
    if ds_params is None or method_params is None:
        raise SpecError(errors)
    try:
        meta = catalog.dataset_meta(spec.dataset.name, ds_params)
    except (OSError, ValueError) as err:
        raise SpecError([("dataset.params", str(err))]) from None

    available = meta["modalities"]
    modalities = spec.modalities or list(available)
    for i, m in enumerate(modalities):
        if m not in available:
            errors.append(
                (
                    f"modalities.{i}",
                    f"{m!r} is not a modality of this dataset; it has: {', '.join(available)}",
                )
            )
    if len(set(modalities)) != len(modalities):
        errors.append(("modalities", "modalities must be distinct"))

    rules = catalog.method_rules(spec.method.name)
    method_dict = rules.complete_params(method_params.model_dump(mode="json"), modalities, errors)
    schedule = _resolve_schedule(
        spec.schedule, rules.schedule_kind(method_dict), spec.method.name, modalities, errors
    )
    if rules.hint:  # say how to get the other schedule form
        errors[:] = [(p, m + rules.hint if " trains in " in m else m) for p, m in errors]
    shared_head = spec.model.shared_head
    if rules.needs_shared_head(method_dict):
        if "shared_head" in spec.model.model_fields_set and not shared_head:
            errors.append(
                (
                    "model.shared_head",
                    f"method {spec.method.name!r} with these parameters trains one head shared "
                    "by every modality; leave shared_head out or set it true",
                )
            )
        shared_head = True

    encoders: dict[str, Any] = {}
    for m in modalities:
        comp = spec.model.encoders.get(m) or Component(
            # a dataset may name its modality's default (token inputs: token_bag)
            name=(meta.get("default_encoders") or {}).get(m)
            or catalog.default_encoder(tuple(meta["shapes"].get(m, (1,))))
        )
        p = params_of(catalog.ENCODERS, comp, f"model.encoders.{m}")
        if p is not None:
            encoders[m] = {"name": comp.name, "params": p.model_dump(mode="json")}
    for m in spec.model.encoders:
        if m not in modalities:
            errors.append((f"model.encoders.{m}", "no such modality in this spec"))
    for i, h in enumerate(spec.model.head_hidden):
        if not 1 <= h <= 8192:
            errors.append((f"model.head_hidden.{i}", "must lie in [1, 8192]"))
    # encoders without an out_dim parameter (resnet, bert) are checked when the model is built
    widths = {e["params"].get("out_dim") for e in encoders.values()} - {None}
    if shared_head and len(widths) > 1:
        errors.append(
            ("model.shared_head", "a shared head needs the same encoder out_dim for every modality")
        )
    if errors:
        raise SpecError(errors)

    resolved = spec.to_dict()
    resolved.update(
        dataset={"name": spec.dataset.name, "params": ds_params.model_dump(mode="json")},
        modalities=modalities,
        method={"name": spec.method.name, "params": method_dict},
        schedule=schedule,
    )
    resolved["model"]["encoders"] = encoders
    resolved["model"]["shared_head"] = shared_head
    return ResolvedSpec.model_validate(resolved)


def _resolve_schedule(
    sched: Schedule,
    kind: str,
    method: str,
    modalities: list[str],
    errors: list[tuple[str, str]],
) -> dict[str, Any]:
    """`kind` is the method's schedule rule: "stages" or "epochs"."""
    if kind == "stages":
        if sched.epochs is not None:
            errors.append(
                (
                    "schedule.epochs",
                    f"method {method!r} trains in stages; give "
                    "schedule.stage_epochs (one entry per stage) instead",
                )
            )
        order = sched.modality_order or list(modalities)
        for i, m in enumerate(order):
            if m not in modalities:
                errors.append(
                    (
                        f"schedule.modality_order.{i}",
                        f"{m!r} is not one of the spec's modalities: {', '.join(modalities)}",
                    )
                )
        if sorted(set(order)) != sorted(modalities):
            errors.append(("schedule.modality_order", "must name every modality of the spec"))
        stage_epochs = sched.stage_epochs or [2] * (3 * len(modalities))
        for i, e in enumerate(stage_epochs):
            if not 1 <= e <= MAX_EPOCHS:
                errors.append((f"schedule.stage_epochs.{i}", f"must lie in [1, {MAX_EPOCHS}]"))
        return {
            "stage_epochs": stage_epochs,
            "modality_order": order,
            "epochs": None,
            "stage_init": sched.stage_init,
        }
    if sched.stage_init != "last":
        errors.append(
            (
                "schedule.stage_init",
                f"method {method!r} trains in one stage; stage_init applies to staged methods",
            )
        )
    for key in ("stage_epochs", "modality_order"):
        if getattr(sched, key) is not None:
            errors.append(
                (
                    f"schedule.{key}",
                    f"method {method!r} trains in one stage; give schedule.epochs instead",
                )
            )
    return {
        "stage_epochs": None,
        "modality_order": None,
        "epochs": sched.epochs or 10,
        "stage_init": sched.stage_init,
    }


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML spec file into a mapping (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError([("", f"cannot read {path}: {err.strerror or err}")]) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise SpecError(
            [("", f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {err}")]
        ) from None
    if not isinstance(data, dict):
        raise SpecError([("", f"{path} must hold a mapping at the top level")])
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (value parsed as YAML) to a raw spec mapping."""
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError([("--set", f"expected key=value, got {item!r}")])
        try:
            values[key] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise SpecError([(key, f"cannot parse value {raw!r}: {err}")]) from None
    return apply_values(data, values)
