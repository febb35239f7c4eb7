"""The shipped JSON Schemas are up to date with the code, and real output validates against them."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema
import pytest

from prover.cli.main import main
from prover.demo import CHEAT, STATEMENTS, build_demo_generator, write_world
from prover.schemas import PROVE_RESULT, RESULT_RECORD, SCHEMA_DIR, load_schema
from prover.schemas.generate import ProveResult, render, schemas
from prover.wiring import Backends


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", [RESULT_RECORD, PROVE_RESULT])
def test_shipped_schema_is_up_to_date(name: str) -> None:
    shipped = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert shipped == render(schemas()[name]), f"run `python -m prover.schemas.generate` to update {name}"


def test_results_jsonl_of_a_real_run_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"])
    lines = (tmp_path / "demo" / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {record["name"] for record in records} == set(STATEMENTS)
    validator = _validator(RESULT_RECORD)
    for record in records:
        validator.validate(record)
    assert any(record["rejected_proofs"] for record in records if record["name"] == CHEAT)
    broken = dict(records[0], status="maybe")
    assert not validator.is_valid(broken)


def test_prove_json_validates_and_has_exactly_the_schema_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world = write_world(tmp_path / "world")
    backends = Backends(build_generator=functools.partial(build_demo_generator, str(world.table)))
    argv = ["prove", "--json", "--repl-command", world.repl_command(), "--workers", "2", "--samples", "4"]
    argv += ["--temperature", "1.0", "--expansions", "8", "--timeout", "60"]
    outputs = []
    for name, status in (("mathd_algebra_1", 0), (CHEAT, 1)):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--statement", STATEMENTS[name]], backends=backends)
        assert exited.value.code == status
        outputs.append(json.loads(capsys.readouterr().out))
    proved, cheat = outputs
    assert proved["proved"] and proved["tactics"] == ["field_simp at h₀", "linarith"]
    assert cheat["rejected_proofs"][0]["status"] == "nonstandard_axioms"
    validator = _validator(PROVE_RESULT)
    for output in outputs:
        validator.validate(output)
        assert set(output) == set(ProveResult.model_fields)
        ProveResult.model_validate(output)


def test_example_config_loads() -> None:
    from prover.config import load_settings

    example = Path(__file__).resolve().parents[2] / "docs" / "prover.example.toml"
    settings = load_settings(example, {})
    assert settings.lean.repl.workers == 8 and settings.search.samples == 32
    assert settings.model.name == "EleutherAI/llemma_7b" and settings.eval.concurrency == 32
