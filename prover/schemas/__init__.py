"""JSON Schemas of the files and outputs other programs read (draft 2020-12).

- `result_record.schema.json`: one line of an evaluation's `results.jsonl` (`EvalRecord`).
- `prove_result.schema.json`: what `prover prove --json` prints (`SearchResult.to_dict()`).

Both are generated from the code by `python -m prover.schemas.generate`; a test checks that the
shipped files are up to date and validates real output against them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
RESULT_RECORD = "result_record.schema.json"
PROVE_RESULT = "prove_result.schema.json"


def load_schema(name: str) -> dict[str, Any]:
    """The shipped schema `name` (`RESULT_RECORD` or `PROVE_RESULT`) as a dict."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema
