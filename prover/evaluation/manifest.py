"""`manifest.json`: what a run was (settings, versions, git revision, dataset hash, toolchain, model).

Written when a run starts (atomically, by rename) and extended with one `sessions` entry per resume.
A resume is refused when the mode (formal, or informal with its language and attempts), the search
budget or the model differs from the recorded one, since the results would then mix two experiments;
`force=True` overrides that.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lean_env.gitinfo import git_dirty, git_head, is_checkout_root
from prover.config import ProverSettings
from prover.minif2f.dataset import Dataset

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1

PACKAGES: tuple[str, ...] = (
    "llemma-prover",
    "torch",
    "transformers",
    "vllm",
    "lean-dojo",
    "ray",
    "pydantic",
)
"""Distributions whose versions a manifest records (absent ones are recorded as null)."""


class ResumeMismatch(ValueError):
    """`--resume` was asked for a run directory recorded with different settings; the message lists them."""


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _package_root() -> Path:
    """The directory the `prover` package was imported from sits in (a checkout, or site-packages)."""
    return Path(__file__).resolve().parents[2]


def git_revision(repo_root: Path | None = None) -> tuple[str, bool | None]:
    """(commit, has uncommitted changes) of `repo_root`; ("unknown", None) when it is not a git checkout.

    By default `repo_root` is where the installed package lives, and it counts only when it is the top
    of a git checkout (an editable install), not a site-packages that happens to sit inside one.
    """
    if repo_root is None:
        repo_root = _package_root()
        if not is_checkout_root(repo_root):
            return "unknown", None
    head = git_head(repo_root)
    if head is None:
        return "unknown", None
    return head, git_dirty(repo_root)


def lean_toolchain(project_dir: Path | None) -> str | None:
    """The content of the project's `lean-toolchain` file (e.g. `leanprover/lean4:v4.24.0`), if present."""
    if project_dir is None:
        return None
    try:
        return (Path(project_dir) / "lean-toolchain").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _redacted_settings(settings: ProverSettings) -> dict[str, Any]:
    data = settings.model_dump(mode="json")
    if data.get("model", {}).get("api_key"):
        data["model"]["api_key"] = "<redacted>"
    return data


def build_manifest(
    settings: ProverSettings,
    dataset: Dataset,
    *,
    selection: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The manifest of a run about to start. `selection` records the dataset filters as given.

    A `mode` entry of `selection` (`{"mode": "informal", "lang": ..., "attempts": ...}`, from
    `prover eval --mode`) is recorded as the manifest's own `mode`; without one the run is formal.
    An `export_trees` entry (the `--export-trees` directory) is recorded as `trees`, in the manifest
    and in its session (a resume may export elsewhere). `seed` is `model.seed`, which seeds every
    random source of the run (sampling, the server's `seed`, retry jitter).
    """
    selection = dict(selection or {})
    mode = dict(selection.pop("mode", None) or {"mode": "formal"})
    trees = selection.pop("export_trees", None)
    trees = str(trees) if trees is not None else None
    revision, dirty = git_revision()
    now = time.time()
    session = {
        "started_at": now,
        "git_revision": revision,
        "git_dirty": dirty,
        "command": list(command) if command is not None else None,
        "host": platform.node(),
        "trees": trees,
    }
    return {
        "format": FORMAT_VERSION,
        "created_at": now,
        "settings": _redacted_settings(settings),
        "search_budget": settings.search.model_dump(mode="json"),
        "model": {"backend": settings.model.backend, "name": settings.model.name},
        "seed": settings.model.seed,
        "mode": mode,
        "trees": trees,
        "lean": {
            "backend": settings.lean.backend,
            "project_dir": str(settings.lean.project_dir),
            "toolchain": lean_toolchain(settings.lean.project_dir),
        },
        "dataset": {
            "source": dataset.source,
            "kind": dataset.kind,
            "sha256": dataset.sha256,
            "selection_sha256": dataset.selection_sha256,
            "selection": selection,
            "count": len(dataset),
            "theorems": dataset.names,
        },
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": revision,
        "git_dirty": dirty,
        "sessions": [session],
    }


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a run directory, or None when there is none."""
    path = Path(out_dir) / MANIFEST_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise ResumeMismatch(f"{path} is not valid JSON ({error}); move it away to start a new run") from error
    return data


def write_manifest(out_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Write `manifest.json` atomically (temporary file, fsync, rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST_FILE
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def check_resume(previous: Mapping[str, Any], current: Mapping[str, Any], *, force: bool = False) -> list[str]:
    """Compare a recorded manifest with the one of the run resuming it.

    Raises `ResumeMismatch` listing every differing budget field (and the model) unless `force`;
    returns warnings about differences that do not invalidate the results (dataset, versions).
    """
    problems: list[str] = []
    old_budget = previous.get("search_budget", {})
    new_budget = current.get("search_budget", {})
    for key in sorted(set(old_budget) | set(new_budget)):
        if old_budget.get(key) != new_budget.get(key):
            problems.append(f"search.{key}: recorded {old_budget.get(key)!r}, now {new_budget.get(key)!r}")
    old_model = previous.get("model", {})
    new_model = current.get("model", {})
    if old_model.get("name") != new_model.get("name"):
        problems.append(f"model.name: recorded {old_model.get('name')!r}, now {new_model.get('name')!r}")
    old_mode = previous.get("mode") or {"mode": "formal"}
    new_mode = current.get("mode") or {"mode": "formal"}
    for key in sorted(set(old_mode) | set(new_mode)):
        if old_mode.get(key) != new_mode.get(key):
            problems.append(f"mode.{key}: recorded {old_mode.get(key)!r}, now {new_mode.get(key)!r}")
    warnings: list[str] = []
    old_data = previous.get("dataset", {})
    new_data = current.get("dataset", {})
    if old_data.get("sha256") != new_data.get("sha256"):
        warnings.append(
            f"the dataset differs from the recorded one ({old_data.get('source')} sha256 "
            f"{str(old_data.get('sha256'))[:12]}, now {new_data.get('source')} {str(new_data.get('sha256'))[:12]})"
        )
    if previous.get("git_revision") != current.get("git_revision"):
        warnings.append(f"code revision changed: {previous.get('git_revision')} -> {current.get('git_revision')}")
    if problems and not force:
        raise ResumeMismatch(
            "cannot resume: this run directory was recorded with different settings:\n  "
            + "\n  ".join(problems)
            + "\nuse the recorded settings, choose another --out, or pass --force to mix them anyway"
        )
    if problems:
        warnings.extend(f"resuming with a different setting (--force): {problem}" for problem in problems)
    return warnings


def resumed_manifest(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded manifest with the resuming session appended (and any newly selected theorems)."""
    merged = dict(previous)
    session = dict(current.get("sessions", [{}])[-1])
    session["versions"] = current.get("versions")
    session["settings"] = current.get("settings")
    merged["sessions"] = [*previous.get("sessions", []), session]
    old_names = list(previous.get("dataset", {}).get("theorems", []))
    known = set(old_names)
    new_names = [name for name in current.get("dataset", {}).get("theorems", []) if name not in known]
    if new_names:
        dataset = dict(previous.get("dataset", {}))
        dataset["theorems"] = old_names + new_names
        dataset["count"] = len(dataset["theorems"])
        merged["dataset"] = dataset
    return merged
