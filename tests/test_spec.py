"""Experiment spec: resolution, defaults, error messages, files and overrides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from igm_core.spec import SpecError, apply_overrides, load_spec_file, resolve_spec

BASE = {"name": "t", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        resolve_spec(data)
    return dict(info.value.errors)


def test_resolution_fills_every_default() -> None:
    spec = resolve_spec(BASE)
    assert spec.modalities == ["strong", "weak"]
    assert spec.method.params["tau"] == 0.4 and spec.method.params["sam"] == "standard"
    assert spec.dataset.params["n_classes"] == 4
    assert spec.schedule.modality_order == ["strong", "weak"]
    assert spec.schedule.stage_epochs == [2] * 6 and spec.schedule.epochs is None
    assert spec.model.encoders["weak"].name == "mlp"
    assert spec.model.encoders["weak"].params == {"hidden": [256], "out_dim": 128}
    assert resolve_spec(spec.to_dict()) == spec  # idempotent
    assert resolve_spec(spec.to_dict()).hash() == spec.hash()


def test_joint_methods_get_epochs_and_image_data_a_conv_encoder() -> None:
    spec = resolve_spec({"name": "d", "dataset": {"name": "digits"}, "method": {"name": "joint"}})
    assert spec.schedule.epochs == 10 and spec.schedule.stage_epochs is None
    assert spec.modalities == ["top", "bottom"]
    assert spec.model.encoders["top"].name == "conv"


def test_unimodal_modality_defaults_to_first_and_is_checked() -> None:
    spec = resolve_spec({**BASE, "method": {"name": "unimodal"}})
    assert spec.method.params["modality"] == "strong"
    errs = errors_of({**BASE, "method": {"name": "unimodal", "params": {"modality": "audio"}}})
    assert "not one of the spec's modalities" in errs["method.params.modality"]


def test_unknown_keys_are_errors_naming_the_field() -> None:
    errs = errors_of({**BASE, "epochs": 3})
    assert errs == {"epochs": "unknown key"}
    errs = errors_of({**BASE, "method": {"name": "igm", "params": {"tua": 0.3}}})
    assert errs == {"method.params.tua": "unknown key"}


def test_unknown_names_list_the_choices() -> None:
    errs = errors_of({**BASE, "method": {"name": "foo"}})
    assert errs["method.name"].startswith("unknown method 'foo'; choose one of: joint, unimodal")
    errs = errors_of({**BASE, "dataset": {"name": "cifar"}})
    assert "choose one of: synthetic, digits, features" in errs["dataset.name"]
    errs = errors_of({**BASE, "optimizer": {"name": "rmsprop"}})
    assert errs["optimizer.name"] == "Input should be 'sgd' or 'adam'"
    errs = errors_of({**BASE, "method": {"name": "igm", "params": {"sam": "fast"}}})
    assert errs["method.params.sam"] == "Input should be 'standard', 'reference' or 'none'"


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 10**9}, "batch_size"),
        ({"schedule": {"stage_epochs": [2, -1]}}, "schedule.stage_epochs.1"),
        ({"schedule": {"stage_epochs": [10**7]}}, "schedule.stage_epochs.0"),
        ({"optimizer": {"lr": -1}}, "optimizer.lr"),
        ({"seed": -3}, "seed"),
        ({"name": "../../etc"}, "name"),
        ({"method": {"name": "igm", "params": {"tau": -1}}}, "method.params.tau"),
        ({"method": {"name": "igm", "params": {"gm_scope": "half"}}}, "method.params.gm_scope"),
        ({"method": {"name": "igm", "params": {"gm_scope": 1.5}}}, "method.params.gm_scope"),
        (
            {"dataset": {"name": "synthetic", "params": {"n_train": 10**8}}},
            "dataset.params.n_train",
        ),
        ({"modalities": ["strong", "audio"]}, "modalities.1"),
        ({"schedule": {"epochs": 5}}, "schedule.epochs"),
        ({"schedule": {"modality_order": ["weak"]}}, "schedule.modality_order"),
        ({"model": {"head_hidden": [0]}}, "model.head_hidden.0"),
        ({"model": {"encoders": {"video": {"name": "mlp"}}}}, "model.encoders.video"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_values_name_their_field(patch: dict, field: str) -> None:
    assert field in errors_of({**BASE, **patch})


def test_joint_rejects_stage_schedule() -> None:
    errs = errors_of({**BASE, "method": {"name": "joint"}, "schedule": {"stage_epochs": [1]}})
    assert "trains in one stage" in errs["schedule.stage_epochs"]


def test_a_schedule_of_the_other_form_names_the_methods_form() -> None:
    errs = errors_of({**BASE, "method": {"name": "joint"}, "schedule": {"stage_epochs": [1]}})
    assert errs == {
        "schedule.stage_epochs": "method 'joint' trains in one stage; give schedule.epochs instead"
    }
    errs = errors_of({**BASE, "schedule": {"epochs": 3}})
    assert errs == {
        "schedule.epochs": "method 'igm' trains in stages; give schedule.stage_epochs "
        "(one entry per stage) instead"
    }


MLA_HINT = " (method.params.alternation: stage trains in stages)"


def test_a_method_whose_parameter_chooses_the_form_says_how_to_get_the_other() -> None:
    # MLA trains in one stage by default, in stages with alternation: stage; its rules' hint
    # ends every schedule-form message, and no other
    errs = errors_of(
        {**BASE, "method": {"name": "mla"}, "schedule": {"stage_epochs": [1], "stage_init": "best"}}
    )
    assert list(errs) == ["schedule.stage_init", "schedule.stage_epochs"]
    assert errs["schedule.stage_init"] == (
        "method 'mla' trains in one stage; stage_init applies to staged methods" + MLA_HINT
    )
    assert errs["schedule.stage_epochs"] == (
        "method 'mla' trains in one stage; give schedule.epochs instead" + MLA_HINT
    )
    staged = {"name": "mla", "params": {"alternation": "stage"}}
    errs = errors_of({**BASE, "method": staged, "schedule": {"epochs": 3}})
    assert errs == {
        "schedule.epochs": "method 'mla' trains in stages; give schedule.stage_epochs "
        "(one entry per stage) instead" + MLA_HINT
    }
    errs = errors_of(
        {
            **BASE,
            "method": {
                "name": "mla",
                "params": {"fusion": "geometric", "fusion_weights": {"a": 1}},
            },
            "model": {"shared_head": False},
        }
    )
    assert errs == {
        "method.params.fusion_weights.a": "'a' is not one of the spec's modalities: strong, weak",
        "model.shared_head": "method 'mla' with these parameters trains one head shared by "
        "every modality; leave shared_head out or set it true",
    }


def test_every_problem_is_reported_at_once_in_the_order_of_the_steps() -> None:
    with pytest.raises(SpecError) as info:
        resolve_spec(
            {
                **BASE,
                "modalities": ["strong", "weak", "audio"],
                "schedule": {"epochs": 2, "stage_epochs": [0]},
                "model": {
                    "head_hidden": [0, 64],
                    "encoders": {
                        "strong": {"name": "nope"},
                        "weak": {"name": "mlp", "params": {"out_dim": 0}},
                        "video": {"name": "mlp"},
                    },
                },
            }
        )
    assert str(info.value).splitlines() == [
        "modalities.2: 'audio' is not a modality of this dataset; it has: strong, weak",
        "schedule.epochs: method 'igm' trains in stages; give schedule.stage_epochs "
        "(one entry per stage) instead",
        "schedule.stage_epochs.0: must lie in [1, 10000]",
        "model.encoders.strong.name: unknown encoder 'nope'; choose one of: mlp, conv, resnet18, "
        "resnet50, bert, token_bag",
        "model.encoders.weak.params.out_dim: Input should be greater than or equal to 1",
        "model.encoders.video: no such modality in this spec",
        "model.head_hidden.0: must lie in [1, 8192]",
    ]


def test_an_unknown_dataset_and_method_stop_resolution_both_reported() -> None:
    # the later steps need the dataset's modalities and the method's rules: nothing after them
    errs = errors_of(
        {"name": "t", "dataset": {"name": "cifar"}, "method": {"name": "nope"},
         "model": {"head_hidden": [0]}}
    )  # fmt: skip
    assert list(errs) == ["dataset.name", "method.name"]


NAME_WORDS = (
    "must be letters, digits, spaces and _ . - only, starting with a letter or digit "
    "(like igm-tau0.4); got 'my run!'"
)
MODALITY_WORDS = (
    "must be 1-32 lower-case letters, digits or _, starting with a letter (like audio or rgb_2)"
)


def test_a_field_that_fails_is_left_out_so_every_later_step_still_reports() -> None:
    # one round trip for what took one per layer: the spec's own fields, the method's
    # parameters, the modalities and the model
    with pytest.raises(SpecError) as info:
        resolve_spec(
            {
                **BASE,
                "name": "my run!",
                "epochs": 3,
                "batch_size": 0,
                "method": {"name": "igm", "params": {"tau": "x"}},
                "modalities": ["strong", "audio"],
                "model": {"head_hidden": [0], "encoders": {"video": {"name": "mlp"}}},
            }
        )
    assert info.value.errors == [
        ("name", NAME_WORDS),
        ("batch_size", "Input should be greater than or equal to 1"),
        ("epochs", "unknown key"),
        ("method.params.tau", "Input should be a valid number"),
        ("modalities.1", "'audio' is not a modality of this dataset; it has: strong, weak"),
        ("model.encoders.video", "no such modality in this spec"),
        ("model.head_hidden.0", "must lie in [1, 8192]"),
    ]


def test_patterns_are_explained_in_words_never_as_a_regex() -> None:
    errs = errors_of(
        {
            **BASE,
            "name": "my run!",
            "modalities": ["Strong"],
            "model": {"encoders": {"Bad Key": {"name": "mlp"}}},
        }
    )
    assert errs["name"] == NAME_WORDS
    assert errs["modalities.0"] == f"{MODALITY_WORDS}; got 'Strong'"
    assert errs["model.encoders.Bad Key"] == f"{MODALITY_WORDS}; got 'Bad Key'"
    assert not any("^" in msg or "[a-z" in msg for msg in errs.values())


def test_a_method_that_fails_skips_only_what_depends_on_it() -> None:
    # the schedule's form and the shared head depend on the method; the encoders do not
    errs = errors_of(
        {
            **BASE,
            "method": {"name": "nope"},
            "schedule": {"epochs": 2},
            "model": {"encoders": {"video": {"name": "mlp"}}},
        }
    )
    assert list(errs) == ["method.name", "model.encoders.video"]


def test_modalities_that_fail_stop_before_the_steps_that_compare_with_them() -> None:
    # the order names the modalities meant; checked against the dataset's, it would be wrong
    errs = errors_of({**BASE, "modalities": ["Strong"], "schedule": {"modality_order": ["weak"]}})
    assert list(errs) == ["modalities.0"]


def test_problems_found_first_lead_and_keep_the_dataset_files_closed(tmp_path) -> None:
    refused = ("dataset.params.root", "'/x' is not a folder inside the allowed data roots")
    with pytest.raises(SpecError) as info:
        resolve_spec(
            {
                "name": "a b!",
                "dataset": {"name": "features", "params": {"root": str(tmp_path / "none")}},
                "method": {"name": "igm", "params": {"rho": "x"}},
            },
            found=[refused],
        )
    # no "cannot read" from the dataset's files: they are never opened
    assert [path for path, _ in info.value.errors] == [
        "dataset.params.root",
        "name",
        "method.params.rho",
    ]


def test_shared_head_needs_equal_dims() -> None:
    errs = errors_of(
        {
            **BASE,
            "model": {
                "shared_head": True,
                "encoders": {"strong": {"name": "mlp", "params": {"out_dim": 64}}},
            },
        }
    )
    assert "same encoder out_dim" in errs["model.shared_head"]


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="a spec is a mapping"):
        resolve_spec([1, 2])  # type: ignore[arg-type]


def test_yaml_and_json_files(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text("name: y\ndataset: {name: synthetic}\nmethod: {name: mla}\n")
    (tmp_path / "s.json").write_text(json.dumps(BASE))
    assert resolve_spec(load_spec_file(tmp_path / "s.yaml")).method.name == "mla"
    assert resolve_spec(load_spec_file(tmp_path / "s.json")).method.name == "igm"
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid yaml"):
        load_spec_file(tmp_path / "bad.yaml")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yaml")


def test_overrides() -> None:
    data = apply_overrides(
        BASE, ["method.params.tau=0.25", "schedule.stage_epochs=[1, 1]", "seed=4"]
    )
    spec = resolve_spec(data)
    assert spec.method.params["tau"] == 0.25 and spec.schedule.stage_epochs == [1, 1]
    assert spec.seed == 4 and BASE.get("seed") is None  # the input is not modified
    with pytest.raises(SpecError, match="expected key=value"):
        apply_overrides(BASE, ["seed"])


def test_spec_validation_does_not_import_torch() -> None:
    code = (
        "import sys, igm_core.spec as s, igm_core.catalog as c;"
        "s.resolve_spec({'name': 'x', 'dataset': {'name': 'digits'}, 'method': {'name': 'igm'}});"
        "[e.describe() for r in (c.DATASETS, c.METHODS, c.ENCODERS) for e in r];"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
