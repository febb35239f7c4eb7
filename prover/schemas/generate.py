"""Writes the JSON Schemas of `prover.schemas` from the code: `python -m prover.schemas.generate`.

`results.jsonl` lines come from `EvalRecord` (pydantic's own schema), tightened where the model is
loose on purpose (it keeps unknown fields and takes `status`, `stats` and `rejected_proofs` as plain
values so old files load): `status` is a `SearchStatus` value, `stats` a `SearchStats` snapshot and
each rejected proof `{proof, status, reason}`. `prove --json` is `SearchResult.to_dict()`, described
by a pydantic model mirroring it field for field (its test compares the keys with real output).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from lean_env.types import VerifyStatus
from prover.evaluation.results import EvalRecord
from prover.schemas import PROVE_RESULT, RESULT_RECORD, SCHEMA_DIR
from search.types import SearchStats, SearchStatus

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class RejectedProofRecord(BaseModel):
    """A proof that closed every goal step by step and failed the whole-file re-check."""

    model_config = ConfigDict(extra="forbid")

    proof: str
    status: VerifyStatus
    reason: str | None
    judge: str = "repl"
    """The judge that refused it (`repl`, `comparator`, `isabelle`); absent in records written before it was kept."""


class ProveResult(BaseModel):
    """What `prover prove --json` prints: `SearchResult.to_dict()`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: SearchStatus
    proved: bool
    verified: bool
    proof: str | None
    tactics: list[str]
    failure_reason: str | None
    stats: SearchStats
    rejected_proofs: list[RejectedProofRecord]
    judge: str | None


def _shared_defs() -> dict[str, Any]:
    schema = ProveResult.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema["$defs"]
    return defs


def prove_result_schema() -> dict[str, Any]:
    schema = ProveResult.model_json_schema(ref_template="#/$defs/{model}")
    return {"$schema": DIALECT, "$id": PROVE_RESULT, **schema}


def result_record_schema() -> dict[str, Any]:
    schema = EvalRecord.model_json_schema(ref_template="#/$defs/{model}")
    defs = _shared_defs()
    properties = schema["properties"]
    properties["status"] = {"$ref": "#/$defs/SearchStatus", "title": "Status"}
    properties["stats"] = {"$ref": "#/$defs/SearchStats", "title": "Stats"}
    properties["rejected_proofs"] = {
        "items": {"$ref": "#/$defs/RejectedProofRecord"},
        "title": "Rejected Proofs",
        "type": "array",
    }
    schema["$defs"] = {**schema.get("$defs", {}), **defs}
    return {"$schema": DIALECT, "$id": RESULT_RECORD, **schema}


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, as the code defines them now."""
    return {RESULT_RECORD: result_record_schema(), PROVE_RESULT: prove_result_schema()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(directory: Path = SCHEMA_DIR) -> int:
    for name, schema in schemas().items():
        (directory / name).write_text(render(schema), encoding="utf-8")
        print(directory / name)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
