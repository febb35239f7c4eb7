"""The miniF2F benchmark: loading its statements, filtering them, and naming their categories."""

from prover.minif2f.dataset import (
    SPLITS,
    Category,
    Dataset,
    DatasetError,
    Problem,
    category_of,
    load_dataset,
    with_dojo_locations,
)

__all__ = [
    "SPLITS",
    "Category",
    "Dataset",
    "DatasetError",
    "Problem",
    "category_of",
    "load_dataset",
    "with_dojo_locations",
]
