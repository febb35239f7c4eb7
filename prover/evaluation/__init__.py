"""Batch evaluation: the runner every executor shares, the durable results file, the run manifest,
problem-level events and summaries.

Importing this package is cheap (no torch, no ray, no matplotlib).
"""

from prover.evaluation.events import (
    EvaluationEvent,
    EvaluationFinished,
    EvaluationStarted,
    ProblemFinished,
    ProblemStarted,
    WorkerLost,
)
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
    AttemptProblem,
    ErrorStreak,
    EvalAborted,
    EvalOutcome,
    env_error_record,
    local_attempt,
    make_record,
    prove_problem,
    run_evaluation,
    run_problems,
)
from prover.evaluation.summary import Summary, Tally, format_summary, summarize, summary_markdown

__all__ = [
    "MANIFEST_FILE",
    "RESULTS_FILE",
    "AttemptProblem",
    "ErrorStreak",
    "EvalAborted",
    "EvalOutcome",
    "EvalRecord",
    "EvaluationEvent",
    "EvaluationFinished",
    "EvaluationStarted",
    "ProblemFinished",
    "ProblemStarted",
    "ResultsError",
    "ResultsWriter",
    "ResumeMismatch",
    "Summary",
    "Tally",
    "WorkerLost",
    "build_manifest",
    "check_resume",
    "completed_names",
    "env_error_record",
    "format_summary",
    "local_attempt",
    "make_record",
    "prove_problem",
    "read_manifest",
    "read_records",
    "remove_records",
    "repair_torn_tail",
    "resumed_manifest",
    "run_evaluation",
    "run_problems",
    "summarize",
    "summary_markdown",
    "write_manifest",
]
