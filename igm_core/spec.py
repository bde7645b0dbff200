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

from igm_core import catalog, parsing
from igm_core.errors import Problems, SpecError, without_invalid
from igm_core.names import SPEC_NAME, ModalityName
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
    (("dataset", "params", "frame_train"), "random"),
    (("dataset", "params", "frame_eval"), "centre"),
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
    # [] gives a head of one Linear layer (the MLA release's shared head)
    head_hidden: list[int] = Field([256, 64], min_length=0, max_length=8)
    shared_head: bool = False


class Spec(_Strict):
    name: str = Field(..., min_length=1, max_length=128, pattern=SPEC_NAME)
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


def resolve_spec(
    data: dict[str, Any] | Spec, *, found: list[tuple[str, str]] | None = None
) -> ResolvedSpec:
    """Validate `data` and return the resolved spec, every default filled in.

    Seven steps, in order. Each adds what it finds wrong to one collector (which starts with
    `found`: problems a caller found first, such as refused paths); resolution stops, with
    every problem found so far, only where the next step needs what failed: a field of the spec
    that fails is left out for the later steps (they check the rest with its default), a method
    that fails skips only what depends on the method, and the dataset's files are not read
    when its parameters (or paths) have a problem.
    """
    if isinstance(data, ResolvedSpec) and not found:
        return data
    problems = Problems(found)
    # 1. the spec's own fields: types, bounds, unknown keys
    spec, dropped = _fields(data, problems)
    # 2. the dataset's and the method's names and parameters
    ds_params = _params(catalog.DATASETS, spec.dataset, "dataset", problems)
    method_params = _params(catalog.METHODS, spec.method, "method", problems)
    if ds_params is None or problems.has("dataset.params") or "modalities" in dropped:
        problems.stop()  # steps 3 to 6 need the dataset's files, or the modalities asked for
    # 3. the dataset's modalities and input shapes (may read its files' headers)
    meta = _dataset_meta(spec.dataset.name, ds_params, problems)
    # 4. the modalities trained: the dataset's, or those the spec names
    modalities = _modalities(spec.modalities, meta["modalities"], problems)
    # 5. the method's parameters completed for them, and the schedule in the method's form
    method_dict, schedule, shared_head = None, None, spec.model.shared_head
    if method_params is not None:
        rules = catalog.method_rules(spec.method.name)
        method_dict = rules.complete_params(
            method_params.model_dump(mode="json"), modalities, problems.found
        )
        kind = rules.schedule_kind(method_dict)
        schedule = _schedule(spec, kind, rules.hint, modalities, problems)
        # 6. the model: a shared head where the method needs one, an encoder per modality
        shared_head = _shared_head(spec, rules.needs_shared_head(method_dict), problems)
    encoders = _encoders(spec.model, modalities, meta, problems)
    _check_head(spec.model, shared_head, encoders, problems)
    problems.stop_if_any()
    # 7. the spec as given, with every default written in
    resolved = spec.to_dict()
    resolved.update(
        dataset={"name": spec.dataset.name, "params": ds_params.model_dump(mode="json")},
        modalities=modalities,
        method={"name": spec.method.name, "params": method_dict},
        schedule=schedule,
    )
    resolved["model"].update(encoders=encoders, shared_head=shared_head)
    return ResolvedSpec.model_validate(resolved)


def _fields(data: Any, problems: Problems) -> tuple[Spec, set[str]]:
    """1. The spec's own fields, and the fields left out because they failed: the later steps
    check the rest with their defaults (a placeholder for a name). A dataset or method that is
    not a {name, params} mapping stops here: every later step reads them."""
    if isinstance(data, Spec):
        data = data.to_dict()
    if not isinstance(data, dict):
        problems.add("", f"a spec is a mapping, got {type(data).__name__}")
        problems.stop()
    try:
        return Spec.model_validate(data), set()
    except ValidationError as err:
        problems.add_invalid(err)
        rest = without_invalid(data, err, Spec.model_validate, keep={"name": "spec"})
    if rest is None:
        problems.stop()
    return rest


def _params(
    registry: catalog.Registry, comp: Component, path: str, problems: Problems
) -> BaseModel | None:
    """A component's parameters as its registry entry validates them; None for a problem."""
    if comp.name not in registry:
        problems.add(
            f"{path}.name",
            f"unknown {registry.kind} {comp.name!r}; choose one of: {', '.join(registry.names())}",
        )
        return None
    try:
        return registry.get(comp.name).params.model_validate(comp.params)
    except ValidationError as err:
        problems.add_invalid(err, f"{path}.params.")
        return None


def _dataset_meta(name: str, params: BaseModel, problems: Problems) -> dict[str, Any]:
    """3. The dataset's modalities and shapes; files that cannot be read stop resolution."""
    try:
        return catalog.dataset_meta(name, params)
    except (OSError, ValueError) as err:
        problems.add("dataset.params", str(err))
        problems.stop()


def _modalities(named: list[str] | None, available: list[str], problems: Problems) -> list[str]:
    """4. The modalities the spec names (each one the dataset's, none twice), else all."""
    modalities = named or list(available)
    problems.add_outside(
        "modalities", modalities, available, "is not a modality of this dataset; it has"
    )
    if len(set(modalities)) != len(modalities):
        problems.add("modalities", "modalities must be distinct")
    return modalities


# The schedule fields of the other form, per form: (key, its value when left out, what to do).
OTHER_FORM: dict[str, tuple[tuple[str, Any, str], ...]] = {
    "stages": (("epochs", None, "give schedule.stage_epochs (one entry per stage) instead"),),
    "epochs": (
        ("stage_init", "last", "stage_init applies to staged methods"),
        ("stage_epochs", None, "give schedule.epochs instead"),
        ("modality_order", None, "give schedule.epochs instead"),
    ),
}


def _schedule(
    spec: Spec, kind: str, hint: str, modalities: list[str], problems: Problems
) -> dict[str, Any]:
    """5. The schedule in the method's form: `stages` (one entry per stage, in a modality order)
    or `epochs` (one stage of every modality). A field of the other form is a problem that says
    the method's form, and (`hint`, from the method's rules) how to choose the other one."""
    sched, method = spec.schedule, spec.method.name
    trains_in = "stages" if kind == "stages" else "one stage"
    for key, left_out, instead in OTHER_FORM[kind]:
        if getattr(sched, key) != left_out:
            problems.add(
                f"schedule.{key}", f"method {method!r} trains in {trains_in}; {instead}{hint}"
            )
    if kind == "epochs":
        return {
            "stage_epochs": None,
            "modality_order": None,
            "epochs": sched.epochs or 10,
            "stage_init": sched.stage_init,
        }
    order = sched.modality_order or list(modalities)
    problems.add_outside(
        "schedule.modality_order", order, modalities, "is not one of the spec's modalities"
    )
    if sorted(set(order)) != sorted(modalities):
        problems.add("schedule.modality_order", "must name every modality of the spec")
    stage_epochs = sched.stage_epochs or [2] * (3 * len(modalities))  # 3 rounds of 2 epochs
    for i, e in enumerate(stage_epochs):
        if not 1 <= e <= MAX_EPOCHS:
            problems.add(f"schedule.stage_epochs.{i}", f"must lie in [1, {MAX_EPOCHS}]")
    return {
        "stage_epochs": stage_epochs,
        "modality_order": order,
        "epochs": None,
        "stage_init": sched.stage_init,
    }


def _shared_head(spec: Spec, needed: bool, problems: Problems) -> bool:
    """6. One head shared by every modality: as the spec says, unless the method needs one."""
    if not needed:
        return spec.model.shared_head
    if "shared_head" in spec.model.model_fields_set and not spec.model.shared_head:
        problems.add(
            "model.shared_head",
            f"method {spec.method.name!r} with these parameters trains one head shared by every "
            "modality; leave shared_head out or set it true",
        )
    return True


def _encoders(
    model: ModelSpec, modalities: list[str], meta: dict[str, Any], problems: Problems
) -> dict[str, Any]:
    """6. An encoder per modality: the spec's, the dataset's default for it (token inputs:
    token_bag), or the default for the modality's input shape."""
    encoders: dict[str, Any] = {}
    defaults = meta.get("default_encoders") or {}
    for m in modalities:
        comp = model.encoders.get(m) or Component(
            name=defaults.get(m) or catalog.default_encoder(tuple(meta["shapes"].get(m, (1,))))
        )
        params = _params(catalog.ENCODERS, comp, f"model.encoders.{m}", problems)
        if params is not None:
            encoders[m] = {"name": comp.name, "params": params.model_dump(mode="json")}
    for m in model.encoders:
        if m not in modalities:
            problems.add(f"model.encoders.{m}", "no such modality in this spec")
    return encoders


def _check_head(
    model: ModelSpec, shared_head: bool, encoders: dict[str, Any], problems: Problems
) -> None:
    """6. The head's layer widths, and equal encoder outputs for a shared head."""
    for i, h in enumerate(model.head_hidden):
        if not 1 <= h <= 8192:
            problems.add(f"model.head_hidden.{i}", "must lie in [1, 8192]")
    # encoders without an out_dim parameter (resnet, bert) are checked when the model is built
    widths = {e["params"].get("out_dim") for e in encoders.values()} - {None}
    if shared_head and len(widths) > 1:
        problems.add(
            "model.shared_head", "a shared head needs the same encoder out_dim for every modality"
        )


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML spec file into a mapping (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError([("", f"cannot read {path}: {err.strerror or err}")]) from None
    try:
        data = parsing.loads_json(text) if path.suffix == ".json" else parsing.loads_yaml(text)
    except parsing.DuplicateKey as err:
        raise SpecError([(err.loc, f"{path}: {err.message}")]) from None
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
            values[key] = parsing.loads_yaml(raw)
        except (yaml.YAMLError, parsing.DuplicateKey) as err:
            raise SpecError([(key, f"cannot parse value {raw!r}: {err}")]) from None
    return apply_values(data, values)
