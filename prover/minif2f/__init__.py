"""The miniF2F benchmark and other problem sets: loading statements, filtering them, naming categories."""

from prover.minif2f.dataset import (
    SPLITS,
    Category,
    Dataset,
    DatasetError,
    category_of,
    dojo_locations,
    lean_statement_problem,
    load_dataset,
    load_problems,
)

__all__ = [
    "SPLITS",
    "Category",
    "Dataset",
    "DatasetError",
    "category_of",
    "dojo_locations",
    "lean_statement_problem",
    "load_dataset",
    "load_problems",
]
