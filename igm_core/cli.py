"""The local `igm` commands: train, validate, compare, prepare, export-features and the
registries (methods, datasets, encoders); no server needed.

Commands that only read the registries, validate specs or compare results never import torch, so
they start fast.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from igm_core import catalog, compare, events, image_text_cli, prepare_cli
from igm_core.compare import render
from igm_core.spec import SpecError, apply_overrides, load_spec_file, resolve_spec

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)


def _fail(message: str, code: int = 2) -> int:
    console.print(Text("error: ", style="bold red") + Text(message))
    return code


def _load(args: argparse.Namespace) -> Any:
    return resolve_spec(apply_overrides(load_spec_file(args.spec), args.set or []))


def _registry_table(registry: catalog.Registry, as_json: bool) -> int:
    if as_json:
        out_console.print_json(json.dumps(registry.describe()))
        return 0
    table = Table(title=f"{registry.kind}s", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("parameters (default)")
    for entry in registry:
        fields = entry.params.model_fields
        params = "\n".join(
            f"{n} ({f.default!r})" if not f.is_required() else f"{n} (required)"
            for n, f in fields.items()
        )
        extra = f" [{entry.extra['kind']}]" if "kind" in entry.extra else ""
        table.add_row(entry.name + extra, entry.description, params or "-")
    out_console.print(table)
    return 0


def _summary(result: dict[str, Any], out: Path) -> None:
    table = Table(title=f"{result['spec']['name']}: test metrics of the selected checkpoint")
    table.add_column("")
    table.add_column("acc", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("mAP", justify="right")
    t = result["test"]
    configured = result["spec"]["method"]["params"].get("fusion")
    label = f"fused ({configured})" if configured else "fused"
    table.add_row(label, f"{t['acc']:.4f}", f"{t['macro_f1']:.4f}", f"{t['map']:.4f}")
    for name, row in (result.get("fusions") or {}).items():  # the same model, other fusions
        if name != configured:
            table.add_row(
                f"  fused ({name})",
                f"{row['test_acc']:.4f}",
                f"{row['test_macro_f1']:.4f}",
                f"{row['test_map']:.4f}",
            )
    for m, acc in t["modality_acc"].items():
        table.add_row(m, f"{acc:.4f}", "", "")
    out_console.print(table)
    b = result["best"]
    out_console.print(
        f"selected on val {b['metric']}={b['score']:.4f} at stage {b['stage'] + 1} "
        f"epoch {b['epoch'] + 1}; "
        f"{result['run']['steps']} steps in {result['run']['wall_time_s']:.1f}s on "
        f"{result['run']['device']} ({result['run']['precision']})\nresult: {out / 'result.json'}",
        highlight=False,
    )


def cmd_train(args: argparse.Namespace) -> int:
    spec = _load(args)
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"{spec.name.replace(' ', '_')}-{spec.hash()[:8]}"
    )
    if not args.seeds:
        return _train_one(args, spec, out)
    for seed, raw, seed_out in compare.seed_specs(spec.to_dict(), args.seeds, out):
        seed_spec = resolve_spec(raw)
        if not args.fresh and compare.already_done(seed_out, seed_spec.hash()):
            console.print(f"seed {seed}: done already ({seed_out / 'result.json'})")
            continue
        console.print(f"seed {seed}: {seed_out}")
        code = _train_one(args, seed_spec, seed_out)
        if code != 0:
            return code
    out_console.print(f"compare the seeds: igm compare {out}/seed-*/result.json", highlight=False)
    return 0


def _train_one(args: argparse.Namespace, spec: Any, out: Path) -> int:
    from igm_core.trainer import train

    tracker = _tracker(args, spec, out)
    with _CtrlC() as ctrl_c, _TrainDisplay(args.quiet) as display:
        res = train(
            spec,
            out_dir=out,
            tracker=tracker,
            should_stop=ctrl_c.pressed,
            on_event=display.on_event,
            resume=not args.fresh,
        )
    if res.status == "stopped":
        console.print(f"stopped; checkpoint in {res.checkpoint}. Run the same command to resume.")
        return 130
    _summary(res.result, out)
    return 0


def _tracker(args: argparse.Namespace, spec: Any, out: Path) -> Any:
    from igm_core import tracking

    if args.mlflow:
        return tracking.MlflowTracker(args.mlflow, args.mlflow_experiment, run_name=spec.name)
    if args.tracker == "jsonl":
        return tracking.JsonlTracker(out / "metrics.jsonl")
    return tracking.NullTracker()


class _CtrlC:
    """While training: the first Ctrl-C asks the trainer to stop after its step, which keeps a
    checkpoint to resume from; a second one aborts at once."""

    def __init__(self) -> None:
        self.asked = False

    def __enter__(self) -> _CtrlC:
        self.previous = signal.signal(signal.SIGINT, self.on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        console.print("stopping after this step (Ctrl-C again to abort without a checkpoint)")

    def pressed(self) -> bool:
        return self.asked


class _TrainDisplay:
    """What `igm train` shows on stderr, drawn from the trainer's events: a progress bar, a line
    per validated epoch (not with --quiet) and where a resumed run continues."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.quiet = quiet
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        self.task = self.bar.add_task("starting", total=1.0)

    def __enter__(self) -> _TrainDisplay:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def on_event(self, ev: events.Event) -> None:
        if isinstance(ev, events.Progress):
            desc = (
                f"stage {ev.stage + 1}/{ev.n_stages} {'+'.join(ev.modalities)} "
                f"epoch {ev.epoch + 1}/{ev.epochs}"
            )
            self.bar.update(self.task, completed=ev.fraction, description=desc)
        elif isinstance(ev, events.EpochEnd) and not self.quiet:
            v = ev.val
            mods = " ".join(f"{m}={a:.3f}" for m, a in v["modality_acc"].items())
            self.bar.console.print(
                f"  stage {ev.stage + 1} epoch {ev.epoch + 1}: val acc {v['acc']:.4f} ({mods})",
                highlight=False,
            )
        elif isinstance(ev, events.Resumed):
            self.bar.console.print(
                f"resuming from stage {ev.stage + 1}, epoch {ev.epoch + 1}, step {ev.step}"
            )


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load(args)
    out_console.print_json(json.dumps(spec.to_dict()))
    return 0


def cmd_export_features(args: argparse.Namespace) -> int:
    """Write a built-in dataset in the `features` layout (a template for a lab's own data)."""
    if args.dataset in image_text_cli.DATASETS:  # frozen encoders over an image-text dataset
        return image_text_cli.run_export(args)
    import numpy as np

    entry = catalog.DATASETS.get(args.dataset)
    raw = apply_overrides({}, args.param or [])
    params = entry.params.model_validate(raw).model_dump()
    data = catalog.build_dataset(args.dataset, params, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in data.splits.items():
        arrays = {m: t.numpy() for m, t in split.x.items()}
        np.savez(out / f"{name}.npz", label=split.y.numpy(), **arrays)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
    out_console.print(
        f"wrote {out}/{{train,val,test}}.npz ({sizes}; modalities {', '.join(data.modalities)})",
        highlight=False,
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`igm compare`: the report of result files; 2 with a message for an unusable file."""
    try:
        report = compare.build_report(args.results, args.metric, args.baseline)
    except (compare.CompareError, compare.BaselineError) as error:
        return _fail(str(error))
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    render.print_report(report, Console(), console)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igm", description="IGM Lab: imbalanced multimodal learning"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_validate, _add_export_features, _add_compare, _add_prepare):
        add(sub)
    for name, registry in (
        ("methods", catalog.METHODS),
        ("datasets", catalog.DATASETS),
        ("encoders", catalog.ENCODERS),
    ):
        p = sub.add_parser(name, help=f"list the registered {name}")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=lambda a, r=registry: _registry_table(r, a.json))
    return parser


Subparsers = Any  # argparse's _SubParsersAction, private


def _add_train(sub: Subparsers) -> None:
    t = sub.add_parser("train", help="train an experiment spec (YAML or JSON)")
    t.add_argument("spec")
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set method.params.tau=0.3 (repeatable)",
    )
    t.add_argument("--out", help="run directory (default: runs/<name>-<spec hash>)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    t.add_argument(
        "--tracker",
        choices=["jsonl", "none"],
        default="jsonl",
        help="jsonl: metrics to OUT/metrics.jsonl (default)",
    )
    t.add_argument("--mlflow", metavar="URI", help="log to MLflow at this tracking URI instead")
    t.add_argument("--mlflow-experiment", default="igm-lab")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--seeds",
        type=compare.parse_seeds,
        metavar="LIST",
        help="train these seeds one after another (0,1,2 or 0-4), each in OUT/seed-<k>",
    )
    t.set_defaults(func=cmd_train)


def _add_validate(sub: Subparsers) -> None:
    v = sub.add_parser("validate", help="print the resolved spec")
    v.add_argument("spec")
    v.add_argument("--set", action="append", metavar="KEY=VALUE")
    v.set_defaults(func=cmd_validate)


def _add_export_features(sub: Subparsers) -> None:
    e = sub.add_parser("export-features", help="write a built-in dataset as train/val/test.npz")
    e.add_argument("dataset", choices=[n for n in catalog.DATASETS.names() if n != "features"])
    e.add_argument("--out", required=True)
    e.add_argument("--param", action="append", metavar="KEY=VALUE", help="a dataset parameter")
    e.add_argument("--seed", type=int, default=0)
    image_text_cli.add_export_arguments(e)
    e.set_defaults(func=cmd_export_features)


def _add_compare(sub: Subparsers) -> None:
    c = sub.add_parser("compare", help="seed statistics and paired comparisons of results")
    c.add_argument("results", nargs="+", metavar="RESULT.json", help="result.json files")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    metric_help = "fused test metric of the paired comparison (default acc)"
    c.add_argument("--metric", choices=compare.METRICS, default="acc", help=metric_help)
    c.add_argument(
        "--baseline",
        metavar="LABEL",
        help="the group every other is paired with: a group label, or a method one group has "
        "(default: joint training where present, else the first group)",
    )
    c.set_defaults(func=cmd_compare)


def _add_prepare(sub: Subparsers) -> None:
    pr = sub.add_parser("prepare", help="decode a dataset once into ROOT/.igm_cache")
    prepare_cli.add_arguments(pr)
    pr.set_defaults(func=prepare_cli.run)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has printed
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    try:
        return args.func(args)
    except ValidationError as err:
        return _fail(str(err))
    except SpecError as err:
        lines = "\n".join(f"  {path or '(spec)'}: {msg}" for path, msg in err.errors)
        return _fail(f"invalid spec\n{lines}")
    except (OSError, ValueError) as err:  # data files: missing, malformed, inconsistent
        return _fail(str(err))
    except RuntimeError as err:
        return _fail(str(err), 1)


if __name__ == "__main__":
    sys.exit(main())
