"""igm_core.parsing: JSON and YAML whose mappings name a key twice are refused, naming the key
by its path; everything else parses as json.loads and yaml.safe_load do."""

from __future__ import annotations

import json

import pytest
import yaml

from igm_core.parsing import DuplicateKey, loads_json, loads_yaml

JSON_CASES = [
    ('{"a": 1, "a": 2}', "a"),
    ('{"optimizer": {"lr": 0.1, "name": "sgd", "lr": 0.01}}', "optimizer.lr"),
    ('{"grid": {"seed": [1], "seed": [2]}}', "grid.seed"),
    ('[{"x": 1}, {"y": {"z": 1, "z": 1}}]', "1.y.z"),
    ('{"a": [[{"b": {}}, {"c": 1, "c": 2}]]}', "a.0.1.c"),
]


@pytest.mark.parametrize(("text", "loc"), JSON_CASES)
def test_json_duplicates_name_their_path(text: str, loc: str) -> None:
    with pytest.raises(DuplicateKey) as err:
        loads_json(text)
    assert err.value.loc == loc
    assert err.value.message.startswith(f"duplicate key {loc.rsplit('.', 1)[-1]!r}: ")


def test_json_first_duplicate_in_document_order() -> None:
    with pytest.raises(DuplicateKey) as err:
        loads_json('{"a": {"x": 1, "x": 2}, "b": {"y": 1, "y": 2}}')
    assert err.value.loc == "a.x"
    with pytest.raises(DuplicateKey) as err:
        loads_json('{"a": {"x": 1, "x": 2}, "a": 3}')
    assert err.value.loc == "a"  # the outer twin: the inner object is what it would drop


def test_json_without_duplicates_is_json() -> None:
    text = '{"a": [1, 2.5, null, true, {"b": "c"}], "d": {}, "e": {"a": 1}}'
    assert loads_json(text) == json.loads(text)
    assert type(loads_json(text)["e"]) is dict
    with pytest.raises(json.JSONDecodeError):
        loads_json("{not json")


YAML_CASES = [
    ("a: 1\na: 2\n", "a", 2),
    ("optimizer:\n  lr: 0.1\n  name: sgd\n  lr: 0.01\n", "optimizer.lr", 4),
    ("grid: {seed: [1], seed: [2]}\n", "grid.seed", 1),
    ("stages:\n- {x: 1}\n- y: 1\n  y: 2\n", "stages.1.y", 4),
    ("yes: 1\ntrue: 2\n", "true", 2),  # YAML 1.1: both are True
    ("1: a\n1.0: b\n", "1.0", 2),
]


@pytest.mark.parametrize(("text", "loc", "line"), YAML_CASES)
def test_yaml_duplicates_name_their_path_and_line(text: str, loc: str, line: int) -> None:
    for aliases in (True, False):
        with pytest.raises(DuplicateKey) as err:
            loads_yaml(text, aliases=aliases)
        assert err.value.loc == loc and err.value.line == line
        assert f"(line {line}): each key may appear only once" in err.value.message


def test_yaml_without_duplicates_is_safe_load() -> None:
    text = "a: [1, 2.5, null, true, {b: c}]\nd: {}\ne: {a: 1}\n'1': x\n1: y\n"
    assert loads_yaml(text) == yaml.safe_load(text)
    merged = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n"  # an override, not a twin
    assert loads_yaml(merged) == yaml.safe_load(merged)
    with pytest.raises(yaml.YAMLError):
        loads_yaml("a: !!python/object:os.system x\n")


def test_yaml_aliases_are_walked_once() -> None:
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    data = loads_yaml("\n".join(laughs))  # 10^30 leaves if walked by path; linear here
    assert len(data) == 30
    assert loads_yaml("a: &a [*a]\n")["a"][0] is not None  # a cycle ends too
    with pytest.raises(yaml.YAMLError, match="YAML aliases are not accepted"):
        loads_yaml("a: &x 1\nb: *x\n", aliases=False)
    with pytest.raises(DuplicateKey) as err:
        loads_yaml("a: &m {k: 1, k: 2}\nb: *m\n")
    assert err.value.loc == "a.k"


def test_long_keys_are_shortened_in_messages() -> None:
    key = "k" * 10_000
    with pytest.raises(DuplicateKey) as err:
        loads_json(json.dumps({"a": 1}).replace('"a"', f'"{key}": 1, "{key}"'))
    assert len(err.value.loc) == 80 and len(err.value.message) < 200


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dup.yaml", "name: a\noptimizer:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr' (line 4)"),
        ("dup.json", '{"name": "a", "method": {"name": "igm", "name": "joint"}}', "'name'"),
    ],
)
def test_the_client_refuses_duplicate_keys_in_spec_files(
    tmp_path, name: str, text: str, message: str
) -> None:
    # the remote `igm submit` / `igm sweep` read the file on the laptop: a key lost there never
    # reaches the server's check
    from igm_client.client import read_spec

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="duplicate key") as err:
        read_spec(path)
    assert message in str(err.value) and str(path) in str(err.value)
    path.write_text(text.replace("lr: 0.2", "momentum: 0.2").replace('"name": "joint"', '"x": 1'))
    assert read_spec(path)["name"] == "a"
