"""Finding and installing what the Lean side needs: elan, the pinned toolchain, the REPL, Mathlib, data.

Three things live here:
- `resolve_repl_command`: the command that starts one REPL process for a Lake project, or
  `MissingDependency` naming what is absent and telling the user to run `prover setup`.
- The setup steps (`setup_steps`, `run_setup`): each a small object with a name, a check for
  "already done", a run, and the network address it needs. `run_setup` skips what is done, so it
  is idempotent, and stops at the first failure with a `SetupError` naming the step and its address.
- `doctor_report`: what is installed, with versions, as structured data (`DoctorItem`s). It never
  downloads anything: it reads toolchain binaries directly instead of going through elan's proxies.

Nothing here defaults to the source checkout: the default project is the package's own copy of the
miniF2F Lake project (`packaged_project()`), materialised by `prover setup` into the per-user home the
entry point resolved; the REPL is built and upstream data checked out under `lean.data_dir`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lean_env.comparator import (
    COMPARATOR_REPO_URL,
    COMPARATOR_REV,
    COMPARATOR_TOOLCHAIN,
    LANDRUN_REPO_URL,
    LANDRUN_REV,
    LEAN4EXPORT_REPO_URL,
    LEAN4EXPORT_REV,
    ComparatorSettings,
    default_tools,
    resolve_tools,
    tools_root,
)
from lean_env.errors import MissingDependency
from prover.config import LeanSettings, ModelSettings

MINIF2F_REPO_URL = "https://github.com/yangky11/miniF2F-lean4"
MINIF2F_COMMIT = "5746b7d6c47855ce1294bed87329618ff7f1bc31"
MINIF2F_FOLDER = "miniF2F-lean4"
"""Where, under the data directory, `prover setup` checks out yangky11/miniF2F-lean4 at `MINIF2F_COMMIT`."""
LLEMMA_REPO_URL = "https://github.com/rah4927/lean-dojo-mew"
LLEMMA_COMMIT = "d00c776260c77de7e70125ef0cd119de6c0ff1de"
LLEMMA_FOLDER = "lean-dojo-mew"
"""The Llemma paper's miniF2F project (LeanDojo path), checked out at `LLEMMA_COMMIT` under the data directory."""
REPL_REPO_URL = "https://github.com/leanprover-community/repl"
REPL_FOLDER = "repl"
"""The REPL is built once per Lean version, in `<data dir>/repl/<tag>` (tag = the toolchain's version)."""
PROJECT_FILES = ("lakefile.toml", "lean-toolchain", "lake-manifest.json", "MiniF2F.lean", "README.md")
"""The files of the packaged miniF2F Lake project (`prover/project/miniF2F`)."""
ELAN_INIT_URL = "https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh"
LEAN_RELEASES_URL = "https://github.com/leanprover/lean4/releases"
MATHLIB_REPO_URL = "https://github.com/leanprover-community/mathlib4"
MATHLIB_CACHE_URL = "https://lakecache.blob.core.windows.net/mathlib4"

ISABELLE_RELEASE = "Isabelle2025"
"""The pinned Isabelle release `prover setup --isabelle` installs."""
ISABELLE_URL = f"https://isabelle.in.tum.de/website-{ISABELLE_RELEASE}/dist/{ISABELLE_RELEASE}_linux.tar.gz"
"""Its Linux bundle (includes its own JDK, Scala and Poly/ML)."""
ISABELLE_HEAP = "MiniF2F_Heap"
"""The session `prover setup --isabelle` builds: HOL plus the theories miniF2F's Isabelle statements import."""
ISABELLE_HEAP_IMPORTS = (
    "Complex_Main",
    "HOL-Library.Code_Target_Numeral",
    "HOL-Library.Sum_of_Squares",
    "HOL-Computational_Algebra.Computational_Algebra",
    "HOL-Number_Theory.Number_Theory",
)

_SETUP_HINT = "Run `prover setup` (it installs elan, Lean, the REPL and Mathlib's build)."


# --- locating things -------------------------------------------------------------------------------


def packaged_project() -> Path:
    """The miniF2F Lake project shipped inside the package (read-only; `prover setup` copies it out)."""
    return Path(str(importlib.resources.files("prover") / "project" / "miniF2F"))


def minif2f_checkout(data_dir: Path) -> Path:
    """Where `prover setup` checks out the miniF2F statements under `data_dir`."""
    return Path(data_dir) / MINIF2F_FOLDER


def llemma_checkout(data_dir: Path) -> Path:
    """Where `prover setup` checks out the Llemma paper's LeanDojo project under `data_dir`."""
    return Path(data_dir) / LLEMMA_FOLDER


def repl_root(data_dir: Path) -> Path:
    """The folder holding one REPL checkout per Lean version under `data_dir`."""
    return Path(data_dir) / REPL_FOLDER


def default_elan_home() -> Path:
    """elan's default home, used when the entry point was given no `ELAN_HOME`."""
    return Path.home() / ".elan"


def find_tool(name: str, elan_home: Path | None = None, path: str | None = None) -> Path | None:
    """`name` (elan, lake, lean) on `path` (default: the process's PATH), else in `<elan_home>/bin`."""
    found = shutil.which(name, path=path)
    if found:
        return Path(found)
    candidate = (elan_home or default_elan_home()) / "bin" / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def read_toolchain(project_dir: Path) -> str:
    """The toolchain pinned in `project_dir/lean-toolchain`, e.g. `leanprover/lean4:v4.24.0`."""
    path = Path(project_dir) / "lean-toolchain"
    try:
        toolchain = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as error:
        raise MissingDependency(
            f"the Lean project {project_dir} (no lean-toolchain file)",
            "Point --project-dir (or [lean] project_dir) at a Lake project, "
            "or run `prover setup` to materialise the default miniF2F project.",
        ) from error
    if not toolchain:
        raise MissingDependency(f"a toolchain pin in {path}", "Write e.g. `leanprover/lean4:v4.24.0` into it.")
    return toolchain


def toolchain_tag(toolchain: str) -> str:
    """The Lean version of a toolchain pin (`leanprover/lean4:v4.24.0` -> `v4.24.0`), also the REPL's tag."""
    return toolchain.rsplit(":", 1)[-1]


def toolchain_dir(toolchain: str, elan_home: Path | None = None) -> Path:
    """Where elan installs `toolchain` (`leanprover/lean4:v4.24.0` -> `toolchains/leanprover--lean4---v4.24.0`)."""
    return (elan_home or default_elan_home()) / "toolchains" / toolchain.replace("/", "--").replace(":", "---")


def repl_checkout(tag: str, root: Path) -> Path:
    """The REPL's source checkout for Lean `tag` under `root` (see `repl_root`)."""
    return Path(root) / tag


def repl_binary(tag: str, root: Path) -> Path:
    """The REPL executable `prover setup` builds for Lean `tag`."""
    return repl_checkout(tag, root) / ".lake" / "build" / "bin" / "repl"


def mathlib_olean(project_dir: Path) -> Path:
    """The compiled root of Mathlib inside the project; present once the build cache is unpacked."""
    return Path(project_dir) / ".lake" / "packages" / "mathlib" / ".lake" / "build" / "lib" / "lean" / "Mathlib.olean"


def manifest_packages(project_dir: Path) -> dict[str, str]:
    """Package name -> pinned revision from the project's lake-manifest.json (empty if there is none)."""
    try:
        data = json.loads((Path(project_dir) / "lake-manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {entry.get("name", "?"): entry.get("rev", "?") for entry in data.get("packages", [])}


def needs_mathlib(project_dir: Path) -> bool:
    return "mathlib" in manifest_packages(project_dir)


def project_libraries(project_dir: Path) -> list[str]:
    """The `lean_lib` names of a lakefile.toml project (what `lake build` compiles)."""
    try:
        config = tomllib.loads((Path(project_dir) / "lakefile.toml").read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return []
    return [str(lib["name"]) for lib in config.get("lean_lib", []) if "name" in lib]


def project_built(project_dir: Path) -> bool:
    """Whether `lake build` has compiled every library of the project."""
    libraries = project_libraries(project_dir)
    build = Path(project_dir) / ".lake" / "build" / "lib" / "lean"
    if not libraries:
        return build.is_dir()
    return all((build / f"{name.replace('.', '/')}.olean").is_file() for name in libraries)


def _resolved(value: Path | None, name: str) -> Path:
    if value is None:
        raise ValueError(f"{name} is unset: settings must come from `prover.config.load_settings`, which fills it in")
    return Path(value)


def resolve_repl_command(lean: LeanSettings) -> tuple[list[str], Path | None]:
    """The argv that starts one REPL process and the directory to run it in.

    A given `lean.repl.command` is returned as is, run in `lean.repl.cwd`, else in `lean.project_dir`
    when that exists, else in the current directory (a stand-in needs no project). Otherwise the
    command is `lake env <repl>` in the project, with `<repl>` = `lean.repl_path` or the REPL
    `prover setup` built under `lean.data_dir` for the project's Lean version. Raises
    `MissingDependency` naming what is absent: the project, lake (elan), the REPL, or the project's
    Mathlib build.
    """
    project_dir = _resolved(lean.project_dir, "lean.project_dir")
    if lean.repl.command:
        cwd = lean.repl.cwd if lean.repl.cwd is not None else (project_dir if project_dir.is_dir() else None)
        return list(lean.repl.command), cwd
    toolchain = read_toolchain(project_dir)
    lake = find_tool("lake")
    if lake is None:
        raise MissingDependency("Lean's build tool `lake` (installed by elan)", _SETUP_HINT)
    tag = toolchain_tag(toolchain)
    if lean.repl_path is not None:
        repl = Path(lean.repl_path)
    else:
        repl = repl_binary(tag, repl_root(_resolved(lean.data_dir, "lean.data_dir")))
    if not repl.is_file():
        where = f"at {repl}" if lean.repl_path is not None else f"for Lean {tag} ({repl})"
        raise MissingDependency(f"the Lean REPL {where}", _SETUP_HINT)
    if needs_mathlib(project_dir) and not mathlib_olean(project_dir).is_file():
        raise MissingDependency(f"the Mathlib build of {project_dir} (its compiled .olean files)", _SETUP_HINT)
    if not project_built(project_dir):
        raise MissingDependency(f"the build of {project_dir}", f"{_SETUP_HINT} Or run `lake build` in {project_dir}.")
    return [str(lake), "env", str(repl)], project_dir  # `lake env` finds the project by its working directory


def isabelle_home(data_dir: Path) -> Path:
    """Where `prover setup --isabelle` unpacks the pinned release under `data_dir`."""
    return Path(data_dir) / "isabelle" / ISABELLE_RELEASE


def isabelle_heap_dir(data_dir: Path) -> Path:
    """The session directory holding the ROOT of `ISABELLE_HEAP` (pass it as `lean.isabelle.dirs`)."""
    return Path(data_dir) / "isabelle" / "minif2f_heap"


def heap_root_text() -> str:
    """The ROOT file of `ISABELLE_HEAP`."""
    imports = "\n".join(f'    "{name}"' for name in ISABELLE_HEAP_IMPORTS[1:])
    return (
        f'session {ISABELLE_HEAP} = "HOL-Library" +\n'
        '  sessions\n    "HOL-Computational_Algebra"\n    "HOL-Number_Theory"\n'
        f"  theories\n    Complex_Main\n{imports}\n"
    )


def find_isabelle(data_dir: Path, path: str | None = None) -> Path | None:
    """The `isabelle` executable: the one `prover setup --isabelle` installed, else `isabelle` on `path`."""
    installed = isabelle_home(data_dir) / "bin" / "isabelle"
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed
    found = shutil.which("isabelle", path=path)
    return Path(found) if found else None


# --- setup -------------------------------------------------------------------------------------------


class SetupError(Exception):
    """A setup step failed. `step` names it, `address` is the network address it needed (or None)."""

    def __init__(self, step: str, reason: str, address: str | None = None) -> None:
        self.step = step
        self.reason = reason
        self.address = address
        message = f"setup step '{step}' failed: {reason}"
        if address:
            message += (
                f"\nThis step needs the network: {address}. Check the connection (or set HTTPS_PROXY) "
                "and run `prover setup` again; finished steps are skipped."
            )
        super().__init__(message)


class CommandFailed(Exception):
    """A command run by a setup step exited with a non-zero status; `tail` is the end of its output."""

    def __init__(self, argv: Sequence[str], returncode: int, tail: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.tail = tail
        super().__init__(f"`{' '.join(argv)}` exited with status {returncode}: {tail.strip()[-800:]}")


def download(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Fetch `url` into `destination` (plain urllib; raises `urllib.error.URLError` when offline)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        destination.write_bytes(response.read())


def run_command(argv: Sequence[str], cwd: Path | None, env: dict[str, str], log: Callable[[str], None]) -> None:
    """Run `argv`, passing each output line to `log`; raises `CommandFailed` on a non-zero status."""
    tail: list[str] = []
    with subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = [*tail[-40:], line]
            log(line)
    if process.returncode != 0:
        raise CommandFailed(argv, process.returncode, "\n".join(tail))


@dataclass
class SetupContext:
    """What the steps work on. The entry point fills it from flags and the environment.

    `fetch` and `run` are the only ways steps touch the network or start programs. `template`, when
    set, is a Lake project copied into `project_dir` first (the packaged miniF2F for the default project).
    """

    project_dir: Path
    elan_home: Path
    path: str
    data_dir: Path
    repl_root: Path | None = None
    """Where REPL checkouts go; None: `<data_dir>/repl`."""
    template: Path | None = None
    skip_data: bool = False
    skip_comparator: bool = False
    """Do not build the comparator judge (`--skip-comparator`); the REPL judge stays in use."""
    base_env: dict[str, str] = field(default_factory=dict)
    fetch: Callable[[str, Path], None] = download
    run: Callable[[Sequence[str], Path | None, dict[str, str], Callable[[str], None]], None] = run_command
    log: Callable[[str], None] = lambda line: None

    @property
    def search_path(self) -> str:
        """PATH with elan's bin first, so tools installed a step ago are found."""
        return os.pathsep.join([str(self.elan_home / "bin"), self.path]) if self.path else str(self.elan_home / "bin")

    def env(self) -> dict[str, str]:
        return {**self.base_env, "PATH": self.search_path, "ELAN_HOME": str(self.elan_home)}

    def tool(self, name: str) -> Path:
        found = find_tool(name, self.elan_home, self.search_path)
        if found is None:
            raise SetupError(name, f"`{name}` was not found on PATH or in {self.elan_home / 'bin'}")
        return found

    def toolchain(self) -> str:
        return read_toolchain(self.project_dir)

    def repls(self) -> Path:
        return self.repl_root if self.repl_root is not None else repl_root(self.data_dir)


@dataclass(frozen=True)
class SetupStep:
    """One idempotent step: `is_done` says whether it can be skipped, `run` does it.

    `address` is the network address the step needs (None for offline steps); it is named in the
    error when the step fails.
    """

    name: str
    description: str
    address: str | None
    is_done: Callable[[SetupContext], bool]
    run: Callable[[SetupContext], None]
    skip_reason: Callable[[SetupContext], str | None] = lambda ctx: None
    """Why the step does not apply here (None: it does); a skipped step is reported with this reason."""


def _git_head(directory: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _install_elan(ctx: SetupContext) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "elan-init.sh"
        ctx.fetch(ELAN_INIT_URL, script)
        ctx.run(["sh", str(script), "-y", "--default-toolchain", "none", "--no-modify-path"], None, ctx.env(), ctx.log)


def _install_toolchain(ctx: SetupContext) -> None:
    ctx.run([str(ctx.tool("elan")), "toolchain", "install", ctx.toolchain()], None, ctx.env(), ctx.log)


def _build_repl(ctx: SetupContext) -> None:
    tag = toolchain_tag(ctx.toolchain())
    checkout = repl_checkout(tag, ctx.repls())
    if not (checkout / "lakefile.lean").exists() and not (checkout / "lakefile.toml").exists():
        if checkout.exists():
            shutil.rmtree(checkout)
        checkout.parent.mkdir(parents=True, exist_ok=True)
        git = ["git", "clone", "--depth", "1", "--branch", tag, REPL_REPO_URL, str(checkout)]
        ctx.run(git, None, ctx.env(), ctx.log)
    ctx.run([str(ctx.tool("lake")), "build"], checkout, ctx.env(), ctx.log)


def _project_materialised(ctx: SetupContext) -> bool:
    if ctx.template is None:
        return True
    for name in PROJECT_FILES:
        source, target = ctx.template / name, ctx.project_dir / name
        if source.is_file() and (not target.is_file() or target.read_bytes() != source.read_bytes()):
            return False
    return True


def _materialise_project(ctx: SetupContext) -> None:
    assert ctx.template is not None  # is_done is True without a template
    ctx.project_dir.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ctx.template / name
        if source.is_file():
            shutil.copyfile(source, ctx.project_dir / name)


def _fetch_mathlib(ctx: SetupContext) -> None:
    ctx.run([str(ctx.tool("lake")), "exe", "cache", "get"], ctx.project_dir, ctx.env(), ctx.log)


def _build_project(ctx: SetupContext) -> None:
    ctx.run([str(ctx.tool("lake")), "build"], ctx.project_dir, ctx.env(), ctx.log)


def _checkout_step(name: str, description: str, url: str, commit: str, folder: str) -> SetupStep:
    def target(ctx: SetupContext) -> Path:
        return ctx.data_dir / folder

    def done(ctx: SetupContext) -> bool:
        return ctx.skip_data or _git_head(target(ctx)) == commit

    def run(ctx: SetupContext) -> None:
        # Fetch exactly the pinned commit: GitHub serves a commit by its hash, so no branch can move it.
        _git_checkout(ctx, url, commit, target(ctx))

    return SetupStep(name, description, url, done, run)


def _git_checkout(ctx: SetupContext, url: str, rev: str, directory: Path) -> None:
    """`directory` checked out at `rev` (a commit, tag or branch) of `url`, fetching only that revision."""
    directory.mkdir(parents=True, exist_ok=True)
    env = ctx.env()
    if not (directory / ".git").exists():
        ctx.run(["git", "init", "-q", str(directory)], None, env, ctx.log)
    git = ["git", "-C", str(directory)]
    ctx.run([*git, "fetch", "--depth", "1", url, rev], None, env, ctx.log)
    ctx.run([*git, "checkout", "-q", "--detach", "FETCH_HEAD"], None, env, ctx.log)


def _comparator_skip_reason(ctx: SetupContext) -> str | None:
    if ctx.skip_comparator:
        return "--skip-comparator: the REPL judge stays in use"
    toolchain = ctx.toolchain()
    if toolchain != COMPARATOR_TOOLCHAIN:
        return (
            f"no comparator/lean4export pair is known for {toolchain_tag(toolchain)}; the pinned pair needs "
            f"{toolchain_tag(COMPARATOR_TOOLCHAIN)} (see README, Soundness). The REPL judge stays in use."
        )
    return None


def _comparator_built(ctx: SetupContext) -> bool:
    return not default_tools(ctx.data_dir).missing()


def _build_comparator(ctx: SetupContext) -> None:
    root = tools_root(ctx.data_dir)
    tools = default_tools(ctx.data_dir)
    go = find_tool("go", ctx.elan_home, ctx.search_path)
    if go is None and not tools.landrun.is_file():
        raise SetupError(
            "comparator",
            "Go is not installed, and landrun (comparator's sandbox) is built with `go build`. Install Go "
            "(https://go.dev/dl) and run `prover setup` again, or pass --skip-comparator to keep the REPL judge.",
        )
    lake = str(ctx.tool("lake"))
    if not tools.lean4export.is_file():
        _git_checkout(ctx, LEAN4EXPORT_REPO_URL, LEAN4EXPORT_REV, root / "lean4export")
        ctx.run([lake, "build"], root / "lean4export", ctx.env(), ctx.log)
    if not tools.comparator.is_file():
        _git_checkout(ctx, COMPARATOR_REPO_URL, COMPARATOR_REV, root / "comparator")
        ctx.run([lake, "build", "comparator"], root / "comparator", ctx.env(), ctx.log)
    if not tools.landrun.is_file():
        assert go is not None
        _git_checkout(ctx, LANDRUN_REPO_URL, LANDRUN_REV, root / "landrun")
        ctx.run([str(go), "build", "-o", "landrun", "./cmd/landrun"], root / "landrun", ctx.env(), ctx.log)


def comparator_step() -> SetupStep:
    """Build the trusted judge: lean4export and comparator at the pinned revisions, landrun with Go."""
    return SetupStep(
        "comparator",
        f"build the comparator judge (comparator @ {COMPARATOR_REV[:7]}, lean4export @ {LEAN4EXPORT_REV}, "
        f"landrun @ {LANDRUN_REV})",
        f"{COMPARATOR_REPO_URL}, {LEAN4EXPORT_REPO_URL} and {LANDRUN_REPO_URL}",
        _comparator_built,
        _build_comparator,
        _comparator_skip_reason,
    )


def _install_isabelle(ctx: SetupContext) -> None:
    import tarfile

    target = isabelle_home(ctx.data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        bundle = Path(scratch) / f"{ISABELLE_RELEASE}_linux.tar.gz"
        ctx.fetch(ISABELLE_URL, bundle)
        with tarfile.open(bundle) as archive:
            archive.extractall(scratch, filter="tar")
        unpacked = Path(scratch) / ISABELLE_RELEASE
        if not unpacked.is_dir():
            raise SetupError("isabelle", f"the bundle from {ISABELLE_URL} holds no {ISABELLE_RELEASE}/ folder")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)


def _heap_marker(ctx: SetupContext) -> Path:
    return isabelle_heap_dir(ctx.data_dir) / ".built"


def _heap_built_in(data_dir: Path) -> bool:
    """Whether the miniF2F heap under `data_dir` was built from the ROOT we write now."""
    marker = isabelle_heap_dir(data_dir) / ".built"
    return marker.is_file() and marker.read_text(encoding="utf-8") == heap_root_text()


def _heap_built(ctx: SetupContext) -> bool:
    return _heap_built_in(ctx.data_dir)


def _build_heap(ctx: SetupContext) -> None:
    isabelle = find_isabelle(ctx.data_dir, ctx.search_path)
    if isabelle is None:
        raise SetupError("isabelle-heap", "`isabelle` was not found; the isabelle step installs it")
    directory = isabelle_heap_dir(ctx.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ROOT").write_text(heap_root_text(), encoding="utf-8")
    ctx.run([str(isabelle), "build", "-b", "-d", str(directory), ISABELLE_HEAP], directory, ctx.env(), ctx.log)
    _heap_marker(ctx).write_text(heap_root_text(), encoding="utf-8")


def isabelle_steps() -> list[SetupStep]:
    """`prover setup --isabelle`: unpack the pinned release under the data directory, then build the heap."""
    return [
        SetupStep(
            "isabelle",
            f"install {ISABELLE_RELEASE} (about 1 GB, with its own JDK)",
            ISABELLE_URL,
            lambda ctx: find_isabelle(ctx.data_dir, ctx.search_path) is not None,
            _install_isabelle,
        ),
        SetupStep(
            "isabelle-heap",
            f"build the {ISABELLE_HEAP} heap (`isabelle build -b`: {', '.join(ISABELLE_HEAP_IMPORTS)})",
            None,
            _heap_built,
            _build_heap,
        ),
    ]


def setup_steps(isabelle: bool = False) -> list[SetupStep]:
    """Every setup step, in order: the project's files, elan, toolchain, REPL, Mathlib cache, project build,
    then the data; with `isabelle`, then Isabelle and its heap (`isabelle_steps`)."""
    return _lean_steps() + (isabelle_steps() if isabelle else [])


def _lean_steps() -> list[SetupStep]:
    return [
        SetupStep(
            "project",
            "write the miniF2F Lake project (lakefile, toolchain and Mathlib pins) from the package",
            None,
            _project_materialised,
            _materialise_project,
        ),
        SetupStep(
            "elan",
            "install elan (the Lean version manager)",
            ELAN_INIT_URL,
            lambda ctx: find_tool("elan", ctx.elan_home, ctx.search_path) is not None,
            _install_elan,
        ),
        SetupStep(
            "toolchain",
            "install the Lean toolchain pinned in lean-toolchain",
            LEAN_RELEASES_URL,
            lambda ctx: (toolchain_dir(ctx.toolchain(), ctx.elan_home) / "bin" / "lean").is_file(),
            _install_toolchain,
        ),
        SetupStep(
            "repl",
            "build the Lean REPL at the tag matching the toolchain",
            REPL_REPO_URL,
            lambda ctx: repl_binary(toolchain_tag(ctx.toolchain()), ctx.repls()).is_file(),
            _build_repl,
        ),
        SetupStep(
            "mathlib",
            "fetch Mathlib and its build cache (`lake exe cache get`)",
            f"{MATHLIB_REPO_URL} and {MATHLIB_CACHE_URL}",
            lambda ctx: not needs_mathlib(ctx.project_dir) or mathlib_olean(ctx.project_dir).is_file(),
            _fetch_mathlib,
        ),
        SetupStep(
            "build",
            "build the project (`lake build`)",
            None,
            lambda ctx: project_built(ctx.project_dir),
            _build_project,
        ),
        comparator_step(),
        _checkout_step(
            "minif2f-data",
            f"fetch the miniF2F statements (yangky11/miniF2F-lean4 @ {MINIF2F_COMMIT[:7]})",
            MINIF2F_REPO_URL,
            MINIF2F_COMMIT,
            MINIF2F_FOLDER,
        ),
        _checkout_step(
            "llemma-data",
            f"fetch the Llemma/LeanDojo miniF2F variant (rah4927/lean-dojo-mew @ {LLEMMA_COMMIT[:7]})",
            LLEMMA_REPO_URL,
            LLEMMA_COMMIT,
            LLEMMA_FOLDER,
        ),
    ]


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str
    """`done already`, `done`, or `skipped` (data with --skip-data, a step that does not apply)."""
    detail: str = ""
    """Why a step was skipped, when it says."""


def run_setup(
    ctx: SetupContext,
    steps: Sequence[SetupStep] | None = None,
    on_step: Callable[[int, int, SetupStep, str], None] = lambda index, total, step, status: None,
) -> list[StepResult]:
    """Run the steps in order, skipping those already done; stop at the first failure with `SetupError`.

    `on_step(index, total, step, status)` is called with status `running`, `done`, `done already`, `skipped`.
    """
    chosen = list(steps) if steps is not None else setup_steps()
    results: list[StepResult] = []
    for index, step in enumerate(chosen, start=1):
        detail = ""
        if ctx.skip_data and step.name.endswith("-data"):
            status = "skipped"
        elif (why := _skip_reason(step, ctx)) is not None:
            status, detail = "skipped", why
        else:
            try:
                already = step.is_done(ctx)
            except MissingDependency as error:
                raise SetupError(step.name, str(error)) from error
            status = "done already" if already else "running"
        if status == "running":
            on_step(index, len(chosen), step, status)
            try:
                step.run(ctx)
            except SetupError:
                raise
            except urllib.error.URLError as error:
                reason = getattr(error, "reason", error)
                raise SetupError(step.name, f"could not download: {reason}", step.address) from error
            except CommandFailed as error:
                raise SetupError(step.name, str(error), step.address) from error
            except (OSError, MissingDependency) as error:
                raise SetupError(step.name, str(error), step.address) from error
            if not step.is_done(ctx):
                raise SetupError(step.name, "the step ran but its result is still missing", step.address)
            status = "done"
        on_step(index, len(chosen), step, status)
        results.append(StepResult(step.name, status, detail))
    return results


def _skip_reason(step: SetupStep, ctx: SetupContext) -> str | None:
    try:
        return step.skip_reason(ctx)
    except MissingDependency as error:
        raise SetupError(step.name, str(error)) from error


# --- doctor ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoctorItem:
    """One line of `prover doctor`: what, whether it is usable, its version, and where or how to get it."""

    name: str
    ok: bool
    version: str = ""
    detail: str = ""
    required: bool = True
    """Whether the configured run needs it (`doctor` exits 1 when a required item is missing); optional
    pieces (LeanDojo, vLLM, Isabelle, the comparator judge, GPUs) are reported but never fail it."""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "version": self.version,
            "detail": self.detail,
            "required": self.required,
        }


def _output(argv: Sequence[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, cwd=cwd, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return (done.stdout or done.stderr).strip()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus() -> DoctorItem:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return DoctorItem("CUDA GPUs", False, detail="none found (no nvidia-smi); models run on the CPU")
    listing = _output([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    if not listing:
        return DoctorItem("CUDA GPUs", False, detail="nvidia-smi found no usable GPU")
    lines = [line.strip() for line in listing.splitlines() if line.strip()]
    driver = lines[0].rsplit(",", 1)[-1].strip()
    names = "; ".join(line.rsplit(",", 1)[0].strip() for line in lines)
    return DoctorItem("CUDA GPUs", True, f"driver {driver}", f"{len(lines)}: {names}")


def comparator_item(settings: ComparatorSettings, data_dir: Path, toolchain: str | None) -> DoctorItem:
    """The `judge` line of `prover doctor`: whether comparator is installed and which judge proofs will get."""
    tools = resolve_tools(settings, data_dir)
    missing = tools.missing()
    if settings.enabled == "off":
        return DoctorItem(
            "judge", True, "repl", "lean.comparator.enabled = 'off': proofs are judged by the REPL re-check"
        )
    if not missing:
        return DoctorItem("judge", True, "comparator", f"comparator {tools.comparator}; every proof is judged by it")
    why = f"comparator not installed ({', '.join(missing)})"
    if toolchain is not None and toolchain != COMPARATOR_TOOLCHAIN and settings.comparator_path is None:
        needed, have = toolchain_tag(COMPARATOR_TOOLCHAIN), toolchain_tag(toolchain)
        why += f"; its pinned build needs {needed}, the project is on {have}"
    if settings.enabled == "on":
        return DoctorItem("judge", False, "", f"{why}; lean.comparator.enabled = 'on' will refuse to run")
    return DoctorItem("judge", True, "repl", f"{why}: proofs are judged by the REPL re-check; run `prover setup`")


def isabelle_item(data_dir: Path, path: str | None = None) -> DoctorItem:
    """The `Isabelle` line of `prover doctor`: found or not, its version, whether the miniF2F heap is built."""
    isabelle = find_isabelle(data_dir, path)
    if isabelle is None:
        return DoctorItem("Isabelle", False, detail="not installed (optional): run `prover setup --isabelle`")
    version = _output([str(isabelle), "version"]) or ""
    heap = _heap_built_in(data_dir)
    detail = f"{isabelle}; heap {ISABELLE_HEAP} " + ("built" if heap else "not built: run `prover setup --isabelle`")
    return DoctorItem("Isabelle", True, version, detail)


def _python_package(name: str, distribution: str, extra: str, required: bool, why: str) -> DoctorItem:
    version = _package_version(distribution)
    hint = "" if version else f"pip install -e '.[{extra}]' ({why})"
    return DoctorItem(name, version is not None, version or "", hint, required=required)


def model_weights_item(model: ModelSettings) -> DoctorItem:
    """Whether the configured model's weights are on this machine: a local directory, or the Hugging Face cache."""
    name = model.name
    local = Path(name).expanduser()
    if local.is_dir():
        found = (local / "config.json").is_file()
        return DoctorItem("model weights", found, "", str(local) if found else f"{local} has no config.json")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return DoctorItem("model weights", False, "", f"cannot look up {name}: pip install -e '.[hf]'")
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return DoctorItem("model weights", True, "", f"{name} in the Hugging Face cache")
    return DoctorItem(
        "model weights", False, "", f"{name} is not in the Hugging Face cache: `huggingface-cli download {name}`"
    )


def model_items(model: ModelSettings) -> list[DoctorItem]:
    """The Python pieces and weights the configured model backend needs (the others are optional)."""
    backend = model.backend
    items = [
        _python_package("torch", "torch", "hf", backend == "hf", "the hf backend"),
        _python_package("transformers", "transformers", "hf", backend == "hf", "the hf backend"),
        _python_package("vLLM", "vllm", "vllm", backend == "vllm", "the vllm backend, GPU only"),
        _python_package("httpx", "httpx", "openai", backend == "openai", "the openai backend"),
        _python_package("matplotlib", "matplotlib", "report", False, "plots in `prover report`"),
    ]
    if backend in ("hf", "vllm"):
        items.append(model_weights_item(model))
    return items


def doctor_report(
    project_dir: Path,
    data_dir: Path,
    elan_home: Path | None = None,
    dojo_cache_dir: Path | None = None,
    comparator: ComparatorSettings | None = None,
    model: ModelSettings | None = None,
) -> list[DoctorItem]:
    """What is installed for `project_dir` (REPL and data under `data_dir`), with versions, and which
    judge will accept proofs (`comparator` settings: default `ComparatorSettings()`).

    Starts no download and imports no heavy package."""
    home = elan_home or default_elan_home()
    items: list[DoctorItem] = []
    elan = find_tool("elan", home)
    elan_version = _output([str(elan), "--version"]) if elan else None
    items.append(
        DoctorItem("elan", bool(elan_version), elan_version or "", str(elan) if elan else "missing: run `prover setup`")
    )
    try:
        toolchain: str | None = read_toolchain(project_dir)
    except MissingDependency as error:
        toolchain = None
        items.append(DoctorItem("Lean project", False, detail=str(error)))
    if toolchain is not None:
        bin_dir = toolchain_dir(toolchain, home) / "bin"
        for tool in ("lean", "lake"):
            version = _output([str(bin_dir / tool), "--version"]) if (bin_dir / tool).is_file() else None
            detail = str(bin_dir / tool) if version else f"missing {toolchain}: run `prover setup`"
            items.append(DoctorItem(tool, bool(version), version or "", detail))
        tag = toolchain_tag(toolchain)
        repl = repl_binary(tag, repl_root(data_dir))
        items.append(
            DoctorItem(
                "Lean REPL",
                repl.is_file(),
                tag if repl.is_file() else "",
                str(repl) if repl.is_file() else f"missing for {tag}: run `prover setup`",
            )
        )
        packages = manifest_packages(project_dir)
        if "mathlib" in packages:
            built = mathlib_olean(project_dir).is_file()
            detail = "build cache unpacked" if built else "not fetched: run `prover setup`"
            items.append(DoctorItem("Mathlib build", built, f"rev {packages['mathlib'][:12]}", detail))
        built_project = project_built(project_dir)
        items.append(
            DoctorItem(
                "project build",
                built_project,
                toolchain,
                str(project_dir) if built_project else f"{project_dir} not built: run `prover setup`",
            )
        )
    for label, checkout, commit in (
        ("miniF2F statements", minif2f_checkout(data_dir), MINIF2F_COMMIT),
        ("lean-dojo-mew (Llemma)", llemma_checkout(data_dir), LLEMMA_COMMIT),
    ):
        head = _git_head(checkout) if checkout.exists() else None
        ok = head == commit
        detail = str(checkout) if ok else f"missing at {commit[:7]}: run `prover setup`"
        items.append(DoctorItem(label, ok, head[:7] if head else "", detail))
    dojo = _package_version("lean-dojo")
    items.append(
        DoctorItem(
            "LeanDojo",
            dojo is not None,
            dojo or "",
            "installed" if dojo else "pip install -e '.[dojo]'",
            required=False,
        )
    )
    cache = Path(dojo_cache_dir).expanduser() if dojo_cache_dir else Path.home() / ".cache" / "lean_dojo"
    traced = (
        sorted(p.name for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")) if cache.is_dir() else []
    )
    items.append(
        DoctorItem(
            "LeanDojo cache",
            bool(traced),
            f"{len(traced)} traced repos" if cache.is_dir() else "",
            ", ".join(traced[:5]) if traced else f"{cache} has no traced repository",
            required=False,
        )
    )
    judge_settings = comparator or ComparatorSettings()
    judge = comparator_item(judge_settings, data_dir, toolchain)
    items.append(replace(judge, required=judge_settings.enabled == "on"))  # required only when asked for
    items.append(replace(_gpus(), required=False))
    items.extend(model_items(model or ModelSettings()))
    items.append(replace(isabelle_item(data_dir), required=False))
    git = _output(["git", "--version"])
    items.append(DoctorItem("git", git is not None, git or "", "" if git else "needed by setup and LeanDojo"))
    return items
