"""Batch evaluation: the concurrent runner, the durable results file, the run manifest and summaries.

Importing this package is cheap (no torch, no ray, no matplotlib).
"""

from prover.evaluation.manifest import (
    MANIFEST_FILE,
    ResumeMismatch,
    build_manifest,
    check_resume,
    read_manifest,
    resumed_manifest,
    write_manifest,
)
from prover.evaluation.results import (
    RESULTS_FILE,
    EvalRecord,
    ResultsError,
    ResultsWriter,
    completed_names,
    read_records,
    remove_records,
    repair_torn_tail,
)
from prover.evaluation.runner import (
    EvalAborted,
    EvalObserver,
    EvalOutcome,
    as_problem,
    env_error_record,
    make_record,
    prove_problem,
    run_evaluation,
)
from prover.evaluation.summary import Summary, Tally, format_summary, summarize, summary_markdown

__all__ = [
    "MANIFEST_FILE",
    "RESULTS_FILE",
    "EvalAborted",
    "EvalObserver",
    "EvalOutcome",
    "EvalRecord",
    "ResultsError",
    "ResultsWriter",
    "ResumeMismatch",
    "Summary",
    "Tally",
    "as_problem",
    "build_manifest",
    "check_resume",
    "completed_names",
    "env_error_record",
    "format_summary",
    "make_record",
    "prove_problem",
    "read_manifest",
    "read_records",
    "remove_records",
    "repair_torn_tail",
    "resumed_manifest",
    "run_evaluation",
    "summarize",
    "summary_markdown",
    "write_manifest",
]
