"""The results file: durable appends, a torn last line tolerated and repaired, resume by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prover.evaluation.results import (
    EvalRecord,
    ResultsError,
    ResultsWriter,
    completed_names,
    read_records,
    remove_records,
)


def record(name: str, status: str = "failed", proved: bool = False) -> EvalRecord:
    return EvalRecord(name=name, status=status, proved=proved, split="test", category="amc")


def test_records_round_trip_with_unknown_fields_kept(tmp_path: Path) -> None:
    path = tmp_path / "run" / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.write(record("a"))
        writer.write({**record("b", "proved", True).model_dump(), "future_field": 7})
    loaded = read_records(path)
    assert [r.name for r in loaded] == ["a", "b"]
    assert loaded[1].proved and loaded[1].model_extra == {"future_field": 7}
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_torn_last_line_is_ignored_by_readers_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.write(record("a"))
        writer.write(record("b"))
    complete = path.read_bytes()
    line = json.dumps(record("c").model_dump())
    path.write_bytes(complete + line[: len(line) // 2].encode())  # a kill in the middle of a write
    assert completed_names(path) == {"a", "b"}
    with ResultsWriter(path) as writer:
        writer.write(record("c"))
    assert (
        path.read_bytes()
        == complete
        + (json.dumps(record("c").model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    )
    assert [r.name for r in read_records(path)] == ["a", "b", "c"]


def test_damage_before_the_last_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.write(record("a"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("garbage\n")
        handle.write(json.dumps(record("b").model_dump()) + "\n")
    with pytest.raises(ResultsError, match=r"results\.jsonl:2"):
        read_records(path)


def test_duplicate_names_keep_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.write(record("a", "proved", True))
        writer.write(record("a", "failed", False))
    assert [(r.name, r.proved) for r in read_records(path)] == [("a", True)]


def test_remove_records_rewrites_without_the_dropped_ones(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        for name, status in [("a", "proved"), ("b", "env_error"), ("c", "failed"), ("d", "env_error")]:
            writer.write(record(name, status, status == "proved"))
    assert remove_records(path, lambda r: r.status == "env_error") == ["b", "d"]
    assert [r.name for r in read_records(path)] == ["a", "c"]
    assert remove_records(path, lambda r: r.status == "env_error") == []
    assert not path.with_name("results.jsonl.tmp").exists()


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_records(tmp_path / "nope.jsonl") == []
