"""`prover setup`, `prover doctor` and `resolve_repl_command`, hermetic: fake elan/lake, blocked network."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lean_env.errors import MissingDependency
from lean_env.repl import ReplConfig
from prover import lean_setup
from prover.cli.main import main
from prover.config import LeanSettings
from prover.lean_setup import (
    ELAN_INIT_URL,
    PROJECT_FILES,
    SetupContext,
    SetupError,
    SetupStep,
    doctor_report,
    packaged_project,
    resolve_repl_command,
    run_setup,
    setup_steps,
)
from tests.shared_data import shared_data_file

TOOLCHAIN = "leanprover/lean4:v4.24.0"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _project(root: Path, mathlib: bool = True) -> Path:
    project = root / "project"
    project.mkdir(parents=True)
    (project / "lean-toolchain").write_text(TOOLCHAIN + "\n")
    (project / "lakefile.toml").write_text('name = "P"\n\n[[lean_lib]]\nname = "P"\n')
    packages = [{"name": "mathlib", "rev": "f897ebcf72cd16f89ab4577d0c826cd14afaafc7"}] if mathlib else []
    (project / "lake-manifest.json").write_text(json.dumps({"version": "1.1.0", "packages": packages}))
    return project


@pytest.fixture
def bare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME without elan and a PATH with only the system's basic tools (git, sh)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ELAN_HOME", str(home / ".elan"))
    for name in ("PROVER_HOME", "XDG_DATA_HOME", "CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    system_bin = tmp_path / "sysbin"
    system_bin.mkdir()
    for tool in ("git", "sh", "mkdir", "cp"):
        found = shutil.which(tool)
        assert found is not None
        (system_bin / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(system_bin))
    return home


# --- resolve_repl_command ----------------------------------------------------------------------


def test_explicit_repl_command_is_returned_as_is(tmp_path: Path) -> None:
    lean = LeanSettings(repl=ReplConfig(command=("python", "fake_repl.py")), project_dir=tmp_path)
    assert resolve_repl_command(lean) == (["python", "fake_repl.py"], tmp_path)
    # Its own working directory wins; a project that does not exist (not set up yet) is not needed.
    elsewhere = LeanSettings(repl=ReplConfig(command=("python",), cwd=tmp_path / "w"), project_dir=tmp_path)
    assert resolve_repl_command(elsewhere) == (["python"], tmp_path / "w")
    unset_up = LeanSettings(repl=ReplConfig(command=("python",)), project_dir=tmp_path / "not-yet")
    assert resolve_repl_command(unset_up) == (["python"], None)


def test_unresolved_settings_are_refused_not_defaulted_to_a_checkout() -> None:
    with pytest.raises(ValueError, match=r"lean\.project_dir is unset"):
        resolve_repl_command(LeanSettings())


def test_missing_project_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingDependency, match="no lean-toolchain"):
        resolve_repl_command(LeanSettings(project_dir=tmp_path / "nowhere"))


def test_missing_lake_points_to_setup(tmp_path: Path, bare_home: Path) -> None:
    with pytest.raises(MissingDependency) as caught:
        resolve_repl_command(LeanSettings(project_dir=_project(tmp_path)))
    assert "lake" in caught.value.what and "prover setup" in caught.value.how


def test_each_missing_piece_is_named_then_the_command_is_built(tmp_path: Path, bare_home: Path) -> None:
    project = _project(tmp_path)
    lake = _script(bare_home / ".elan" / "bin" / "lake", "")
    repl = tmp_path / "repl" / "bin" / "repl"
    lean = LeanSettings(project_dir=project, repl_path=repl)
    with pytest.raises(MissingDependency, match="REPL"):
        resolve_repl_command(lean)
    _script(repl, "")
    with pytest.raises(MissingDependency, match="Mathlib build"):
        resolve_repl_command(lean)
    olean = lean_setup.mathlib_olean(project)
    olean.parent.mkdir(parents=True)
    olean.write_bytes(b"")
    with pytest.raises(MissingDependency, match="build of"):
        resolve_repl_command(lean)
    built = project / ".lake" / "build" / "lib" / "lean" / "P.olean"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert resolve_repl_command(lean) == ([str(lake), "env", str(repl)], project)


def test_default_repl_is_the_one_setup_builds_for_the_toolchain(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path, mathlib=False)
    (project / ".lake" / "build" / "lib" / "lean").mkdir(parents=True)
    (project / ".lake" / "build" / "lib" / "lean" / "P.olean").write_bytes(b"")
    _script(bare_home / ".elan" / "bin" / "lake", "")
    lean = LeanSettings(project_dir=project, data_dir=tmp_path / "data")
    with pytest.raises(MissingDependency, match=r"v4\.24\.0"):
        resolve_repl_command(lean)
    repl = _script(tmp_path / "data" / "repl" / "v4.24.0" / ".lake" / "build" / "bin" / "repl", "")
    command, cwd = resolve_repl_command(lean)
    assert command[1:] == ["env", str(repl)] and cwd == project


# --- setup ---------------------------------------------------------------------------------------


def _blocked_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def refuse(url: object, *args: object, **kwargs: object) -> object:
        asked.append(str(getattr(url, "full_url", url)))
        raise urllib.error.URLError("network is unreachable (blocked by the test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return asked


def test_offline_setup_stops_at_the_first_network_step_naming_it(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = _blocked_network(monkeypatch)
    project = _project(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["setup", "--yes", "--project-dir", str(project)])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "setup step 'elan' failed" in error
    assert ELAN_INIT_URL in error
    assert asked == [ELAN_INIT_URL], "nothing after the failing step may run"
    assert not (bare_home / ".elan").exists()


def test_setup_without_yes_asks_before_installing_elan(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _blocked_network(monkeypatch)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    with pytest.raises(SystemExit) as exited:
        main(["setup", "--project-dir", str(_project(tmp_path))])
    assert exited.value.code != 0
    assert asked == []


def _step(
    name: str, done: list[str], address: str | None = "https://example.invalid/x", fail: bool = False
) -> SetupStep:
    def run(ctx: SetupContext) -> None:
        if fail:
            raise urllib.error.URLError("offline")
        done.append(name)

    return SetupStep(name, f"do {name}", address, lambda ctx: name in done, run)


def test_run_setup_skips_done_steps_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    ctx = SetupContext(project_dir=tmp_path, elan_home=tmp_path / "elan", path="", data_dir=tmp_path / "d")
    done = ["a"]
    seen: list[tuple[str, str]] = []
    steps = [_step("a", done), _step("b", done), _step("c", done, fail=True), _step("d", done)]
    with pytest.raises(SetupError) as caught:
        run_setup(ctx, steps, on_step=lambda i, n, step, status: seen.append((step.name, status)))
    assert caught.value.step == "c" and caught.value.address == "https://example.invalid/x"
    assert "https://example.invalid/x" in str(caught.value)
    assert done == ["a", "b"]
    assert seen == [("a", "done already"), ("b", "running"), ("b", "done"), ("c", "running")]
    results = run_setup(ctx, steps[:2])
    assert [r.status for r in results] == ["done already", "done already"]


def test_a_step_whose_result_stays_missing_fails(tmp_path: Path) -> None:
    ctx = SetupContext(project_dir=tmp_path, elan_home=tmp_path / "elan", path="", data_dir=tmp_path / "d")
    liar = SetupStep("liar", "claims success", None, lambda ctx: False, lambda ctx: None)
    with pytest.raises(SetupError, match="still missing"):
        run_setup(ctx, [liar])


FAKE_ELAN = """
import os, sys
from pathlib import Path
home = Path(os.environ["ELAN_HOME"])
if sys.argv[1:3] == ["toolchain", "install"]:
    name = sys.argv[3].replace("/", "--").replace(":", "---")
    lean = home / "toolchains" / name / "bin" / "lean"
    lean.parent.mkdir(parents=True, exist_ok=True)
    lean.write_text("#!/bin/sh\\necho 'Lean (version 4.24.0, fake)'\\n")
    lean.chmod(0o755)
    print("installed", sys.argv[3])
elif sys.argv[1:] == ["--version"]:
    print("elan 9.9.9 (fake)")
"""

FAKE_LAKE = """
import sys, tomllib
from pathlib import Path
cwd = Path.cwd()
def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
if sys.argv[1:] == ["build"] and (cwd / "lakefile.lean").exists():
    touch(cwd / ".lake" / "build" / "bin" / "repl")
elif sys.argv[1:] == ["build"]:
    for lib in tomllib.loads((cwd / "lakefile.toml").read_text())["lean_lib"]:
        touch(cwd / ".lake" / "build" / "lib" / "lean" / (lib["name"] + ".olean"))
elif sys.argv[1:] == ["exe", "cache", "get"]:
    touch(cwd / ".lake" / "packages" / "mathlib" / ".lake" / "build" / "lib" / "lean" / "Mathlib.olean")
else:
    sys.exit(f"fake lake: unexpected {sys.argv[1:]}")
print("ok", *sys.argv[1:])
"""


def test_setup_runs_every_lean_step_once_then_finds_everything_done(tmp_path: Path, bare_home: Path) -> None:
    project = _project(tmp_path)
    elan_home = bare_home / ".elan"
    repl_root = tmp_path / "repls"
    # The REPL checkout is already there (a clone is a network step; the fake lake builds it).
    (repl_root / "v4.24.0").mkdir(parents=True)
    (repl_root / "v4.24.0" / "lakefile.lean").write_text("-- fake REPL project\n")
    fetched: list[str] = []

    def fetch(url: str, destination: Path) -> None:
        fetched.append(url)
        bin_dir = elan_home / "bin"
        destination.write_text(
            f"mkdir -p {bin_dir}\n"
            f"cp {_script(tmp_path / 'fake' / 'elan', FAKE_ELAN)} {bin_dir}/elan\n"
            f"cp {_script(tmp_path / 'fake' / 'lake', FAKE_LAKE)} {bin_dir}/lake\n"
        )

    log: list[str] = []
    ctx = SetupContext(
        project_dir=project,
        elan_home=elan_home,
        path=str(tmp_path / "sysbin"),
        data_dir=tmp_path / "data",
        repl_root=repl_root,
        skip_data=True,
        fetch=fetch,
        log=log.append,
    )
    first = run_setup(ctx)
    assert [(r.name, r.status) for r in first] == [
        ("project", "done already"),  # a project of the user's own: no template to write
        ("elan", "done"),
        ("toolchain", "done"),
        ("repl", "done"),
        ("mathlib", "done"),
        ("build", "done"),
        ("comparator", "skipped"),  # no comparator pair for v4.24.0: the REPL judge stays
        ("minif2f-data", "skipped"),
        ("llemma-data", "skipped"),
    ]
    assert fetched == [ELAN_INIT_URL]
    assert "v4.30.0-rc2" in first[6].detail and "REPL judge" in first[6].detail
    assert "installed leanprover/lean4:v4.24.0" in log
    second = run_setup(ctx)
    assert [r.status for r in second][:6] == ["done already"] * 6
    report = {item.name: item for item in doctor_report(project, tmp_path / "data", elan_home)}
    assert report["elan"].ok and report["elan"].version == "elan 9.9.9 (fake)"
    assert report["lean"].ok and "4.24.0" in report["lean"].version
    assert report["Mathlib build"].ok


def _git_repo(path: Path) -> str:
    path.mkdir(parents=True)
    (path / "Stmt.lean").write_text("theorem t : True := by\n  trivial\n")
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data"],
    ):
        subprocess.run(argv, cwd=path, check=True, capture_output=True, timeout=30)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()


def test_data_checkout_fetches_the_pinned_commit_once(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    commit = _git_repo(upstream)
    step = lean_setup._checkout_step("some-data", "fetch data", f"file://{upstream}", commit, "some")
    ctx = SetupContext(project_dir=tmp_path, elan_home=tmp_path / "elan", path="/usr/bin:/bin", data_dir=tmp_path / "d")
    assert [r.status for r in run_setup(ctx, [step])] == ["done"]
    assert (tmp_path / "d" / "some" / "Stmt.lean").is_file()
    assert [r.status for r in run_setup(ctx, [step])] == ["done already"]


def test_data_steps_pin_the_upstream_commits() -> None:
    steps = {step.name: step for step in setup_steps()}
    assert steps["minif2f-data"].address == "https://github.com/yangky11/miniF2F-lean4"
    assert steps["llemma-data"].address == "https://github.com/rah4927/lean-dojo-mew"
    assert lean_setup.minif2f_checkout(Path("/d")) == Path("/d/miniF2F-lean4")
    assert lean_setup.LLEMMA_COMMIT.startswith("d00c776")
    names = [step.name for step in setup_steps()][:6]
    assert names == ["project", "elan", "toolchain", "repl", "mathlib", "build"]


def test_setup_materialises_the_packaged_project_into_the_home(tmp_path: Path) -> None:
    template = packaged_project()
    project = tmp_path / "home" / "miniF2F"
    ctx = SetupContext(project_dir=project, elan_home=tmp_path / "elan", path="", data_dir=tmp_path / "d")
    ctx.template = template
    step = setup_steps()[0]
    assert [r.status for r in run_setup(ctx, [step])] == ["done"]
    for name in PROJECT_FILES:
        assert (project / name).read_bytes() == (template / name).read_bytes()
    assert [r.status for r in run_setup(ctx, [step])] == ["done already"]
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.0.0\n")  # stale: a newer package pins another
    assert [r.status for r in run_setup(ctx, [step])] == ["done"]
    assert (project / "lean-toolchain").read_text().strip() == TOOLCHAIN


def test_no_copy_of_the_project_is_left_in_the_source_checkout() -> None:
    # The package's copy is the only one: a second would drift, and code could come to depend on it.
    assert not (REPO_ROOT / "miniF2F").exists()
    assert packaged_project().resolve().is_relative_to((REPO_ROOT / "prover").resolve())


def test_minif2f_project_is_pinned_like_upstream() -> None:
    meta_path = shared_data_file("minif2f_lean4.meta.json")
    project = packaged_project()
    assert (project / "lean-toolchain").read_text().strip() == "leanprover/lean4:v4.24.0"
    packages = lean_setup.manifest_packages(project)
    assert packages["mathlib"] == "f897ebcf72cd16f89ab4577d0c826cd14afaafc7"
    meta = json.loads(meta_path.read_text())
    assert packages == {name: entry["rev"] for name, entry in meta["lake_manifest_packages"].items()}
    assert not list(project.rglob("*Test*.lean")) and not list(project.rglob("*Valid*.lean")), "no benchmark copy"


def _exit_status(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


# --- doctor --------------------------------------------------------------------------------------


def test_doctor_on_a_bare_machine_says_what_is_missing(
    tmp_path: Path, bare_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(packaged_project(), project)
    # Lean is missing: a required piece, so doctor fails (1) while still reporting everything.
    assert _exit_status(["doctor", "--json", "--project-dir", str(project), "--dojo-cache-dir", str(tmp_path)]) == 1
    report = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert report["elan"]["required"] is True and report["vLLM"]["required"] is False
    assert report["LeanDojo"]["required"] is False and report["CUDA GPUs"]["required"] is False
    assert {"httpx", "matplotlib", "model weights", "transformers"} <= set(report)
    assert report["model weights"]["required"] is True and "EleutherAI/llemma_7b" in report["model weights"]["detail"]
    for name in (
        "elan",
        "lean",
        "lake",
        "Lean REPL",
        "Mathlib build",
        "LeanDojo",
        "LeanDojo cache",
        "CUDA GPUs",
        "vLLM",
    ):
        assert name in report
    assert report["elan"]["ok"] is False and "prover setup" in report["elan"]["detail"]
    assert report["lean"]["ok"] is False and "v4.24.0" in report["lean"]["detail"]
    assert report["CUDA GPUs"]["ok"] is False
    assert report["git"]["ok"] is True


def test_doctor_lists_gpus_from_nvidia_smi(tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "gpubin"
    _script(fake_bin / "nvidia-smi", 'print("NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15")\n')
    monkeypatch.setenv("PATH", f"{fake_bin}:{tmp_path / 'sysbin'}")
    gpus = {item.name: item for item in doctor_report(tmp_path, tmp_path / "data")}["CUDA GPUs"]
    assert gpus.ok and "H100" in gpus.detail and gpus.version == "driver 550.54.15"


def test_doctor_table_prints_without_the_json_flag(
    tmp_path: Path, bare_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_status(["doctor", "--project-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "elan" in out and "missing" in out and "absent (optional)" in out


def test_doctor_defaults_to_the_project_in_the_per_user_home(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert _exit_status(["doctor", "--json"]) == 1
    report = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert str(tmp_path / "xdg" / "llemma-prover" / "miniF2F") in report["Lean project"]["detail"]
    monkeypatch.setenv("PROVER_HOME", str(tmp_path / "ph"))
    assert _exit_status(["doctor", "--json"]) == 1
    report = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert str(tmp_path / "ph" / "miniF2F") in report["Lean project"]["detail"]


def test_setup_writes_the_packaged_project_into_the_home_before_anything_needs_the_network(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = _blocked_network(monkeypatch)
    monkeypatch.setenv("PROVER_HOME", str(tmp_path / "ph"))
    assert _exit_status(["setup", "--yes"]) == 2  # offline: stops at elan
    assert asked == [ELAN_INIT_URL]
    project = tmp_path / "ph" / "miniF2F"
    for name in PROJECT_FILES:
        assert (project / name).read_bytes() == (packaged_project() / name).read_bytes()
    assert "setup step 'elan' failed" in capsys.readouterr().err


# --- the comparator judge: setup, doctor, wiring --------------------------------------------------


def _comparator_context(tmp_path: Path, toolchain: str, with_go: bool = True) -> tuple[SetupContext, list[list[str]]]:
    from lean_env.comparator import default_tools

    project = _project(tmp_path)
    (project / "lean-toolchain").write_text(toolchain + "\n")
    elan_home = tmp_path / "elan"
    _script(elan_home / "bin" / "lake", "print('fake lake')\n")
    sysbin = tmp_path / "cbin"
    sysbin.mkdir(exist_ok=True)
    if with_go:
        _script(sysbin / "go", "print('fake go')\n")
    data_dir = tmp_path / "data"
    tools = default_tools(data_dir)
    commands: list[list[str]] = []

    def run(argv: Any, cwd: Path | None, env: dict[str, str], log: Any) -> None:
        argv = list(argv)
        commands.append(argv)
        built = {
            "lean4export": tools.lean4export,
            "comparator": tools.comparator,
            "landrun": tools.landrun,
        }
        if cwd is not None and (argv[1:2] == ["build"]) and cwd.name in built:
            target = built[cwd.name]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)

    ctx = SetupContext(
        project_dir=project, elan_home=elan_home, path=str(sysbin), data_dir=data_dir, run=run, skip_data=True
    )
    return ctx, commands


def test_comparator_step_builds_the_pinned_revisions_once(tmp_path: Path) -> None:
    from lean_env.comparator import COMPARATOR_REV, COMPARATOR_TOOLCHAIN, LANDRUN_REV, LEAN4EXPORT_REV
    from prover.lean_setup import comparator_step

    ctx, commands = _comparator_context(tmp_path, COMPARATOR_TOOLCHAIN)
    assert [(r.name, r.status) for r in run_setup(ctx, [comparator_step()])] == [("comparator", "done")]
    fetches = [argv[-1] for argv in commands if "fetch" in argv]
    assert fetches == [LEAN4EXPORT_REV, COMPARATOR_REV, LANDRUN_REV]
    builds = [argv[1:] for argv in commands if "build" in argv]
    assert builds == [["build"], ["build", "comparator"], ["build", "-o", "landrun", "./cmd/landrun"]]
    commands.clear()
    assert [r.status for r in run_setup(ctx, [comparator_step()])] == ["done already"]
    assert commands == []
    report = {item.name: item for item in doctor_report(ctx.project_dir, ctx.data_dir, ctx.elan_home)}
    assert report["judge"].ok and report["judge"].version == "comparator"


def test_comparator_step_without_go_says_so(tmp_path: Path) -> None:
    from lean_env.comparator import COMPARATOR_TOOLCHAIN
    from prover.lean_setup import comparator_step

    ctx, commands = _comparator_context(tmp_path, COMPARATOR_TOOLCHAIN, with_go=False)
    with pytest.raises(SetupError) as caught:
        run_setup(ctx, [comparator_step()])
    assert caught.value.step == "comparator"
    assert "Go is not installed" in str(caught.value) and "--skip-comparator" in str(caught.value)
    assert commands == []


def test_comparator_step_is_skipped_with_the_flag_or_an_incompatible_toolchain(tmp_path: Path) -> None:
    from lean_env.comparator import COMPARATOR_TOOLCHAIN
    from prover.lean_setup import comparator_step

    ctx, commands = _comparator_context(tmp_path, TOOLCHAIN)
    (result,) = run_setup(ctx, [comparator_step()])
    assert result.status == "skipped" and "v4.24.0" in result.detail and "v4.30.0-rc2" in result.detail
    ctx, commands = _comparator_context(tmp_path / "again", COMPARATOR_TOOLCHAIN)
    ctx.skip_comparator = True
    (result,) = run_setup(ctx, [comparator_step()])
    assert result.status == "skipped" and "--skip-comparator" in result.detail
    assert commands == []


def test_setup_command_takes_skip_comparator(tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _blocked_network(monkeypatch)
    monkeypatch.setenv("PROVER_HOME", str(tmp_path / "ph"))
    assert _exit_status(["setup", "--yes", "--skip-comparator", "--skip-data"]) == 2  # still offline at elan
    assert asked == [ELAN_INIT_URL]


def test_doctor_says_which_judge_proofs_get(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    assert _exit_status(["doctor", "--json", "--project-dir", str(project)]) == 1  # no Lean here
    judge = {item["name"]: item for item in json.loads(capsys.readouterr().out)}["judge"]
    assert judge["ok"] is True and judge["version"] == "repl" and judge["required"] is False
    assert "comparator not installed" in judge["detail"] and "v4.30.0-rc2" in judge["detail"]
    monkeypatch.setenv("PROVER_LEAN__COMPARATOR__ENABLED", "on")
    assert _exit_status(["doctor", "--json", "--project-dir", str(project)]) == 1
    judge = {item["name"]: item for item in json.loads(capsys.readouterr().out)}["judge"]
    assert judge["ok"] is False and "refuse" in judge["detail"] and judge["required"] is True


def _fake_tools(root: Path) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in ("comparator", "lean4export", "landrun"):
        paths[f"{name}_path"] = _script(root / name, "print('fake')\n")
    return paths


def test_build_final_judge_follows_enabled(tmp_path: Path) -> None:
    from lean_env.comparator import ComparatorJudge, ComparatorSettings
    from prover.wiring import build_final_judge

    project = _project(tmp_path)
    lake = _script(tmp_path / "bin" / "lake", "print('fake lake')\n")

    def lean(**comparator: Any) -> LeanSettings:
        return LeanSettings(
            project_dir=project, data_dir=tmp_path / "data", comparator=ComparatorSettings(**comparator)
        )

    assert build_final_judge(lean(enabled="off"), lake=lake) is None
    assert build_final_judge(lean(enabled="auto"), lake=lake) is None  # nothing installed: the REPL judge
    with pytest.raises(MissingDependency) as caught:
        build_final_judge(lean(enabled="on"), lake=lake)
    assert "comparator" in caught.value.what and "prover setup" in caught.value.how
    tools = _fake_tools(tmp_path / "tools")
    judge = build_final_judge(lean(enabled="auto", **tools), lake=lake)
    assert isinstance(judge, ComparatorJudge) and judge.lake == (str(lake),)


def test_build_env_wraps_the_repl_in_the_final_judge_when_installed(tmp_path: Path, bare_home: Path) -> None:
    from lean_env.comparator import ComparatorSettings
    from lean_env.judged import JudgedEnv
    from prover.wiring import build_env

    project = _project(tmp_path)
    _script(bare_home / ".elan" / "bin" / "lake", "print('fake lake')\n")
    tools = _fake_tools(tmp_path / "tools")
    base: dict[str, Any] = {
        "project_dir": project,
        "data_dir": tmp_path / "data",
        "repl": ReplConfig(command=("true",)),
    }
    plain = build_env(LeanSettings(**base, comparator=ComparatorSettings(enabled="off")))
    assert not isinstance(plain, JudgedEnv)
    judged = build_env(LeanSettings(**base, comparator=ComparatorSettings(**tools)))
    assert isinstance(judged, JudgedEnv)
    with pytest.raises(MissingDependency):
        build_env(LeanSettings(**base, backend="dojo", comparator=ComparatorSettings(enabled="on")))


# --- Isabelle (`prover setup --isabelle`) ------------------------------------------------------


def test_isabelle_steps_only_with_the_flag() -> None:
    assert "isabelle" not in [step.name for step in setup_steps()]
    assert [step.name for step in setup_steps(isabelle=True)][-2:] == ["isabelle", "isabelle-heap"]


def test_isabelle_steps_install_the_pinned_release_and_build_the_heap_once(tmp_path: Path) -> None:
    import io
    import tarfile

    fetched: list[str] = []
    commands: list[list[str]] = []

    def fetch(url: str, destination: Path) -> None:
        fetched.append(url)
        with tarfile.open(destination, "w:gz") as archive:
            body = f"#!{sys.executable}\nprint('{lean_setup.ISABELLE_RELEASE}')\n".encode()
            info = tarfile.TarInfo(f"{lean_setup.ISABELLE_RELEASE}/bin/isabelle")
            info.size, info.mode = len(body), 0o755
            archive.addfile(info, io.BytesIO(body))

    def run(argv: Any, cwd: Any, env: Any, log: Any) -> None:
        commands.append(list(argv))

    ctx = SetupContext(
        project_dir=tmp_path / "p",
        elan_home=tmp_path / "elan",
        path="",
        data_dir=tmp_path / "data",
        fetch=fetch,
        run=run,
    )
    steps = lean_setup.isabelle_steps()
    assert [r.status for r in run_setup(ctx, steps)] == ["done", "done"]
    assert fetched == [lean_setup.ISABELLE_URL] and "Isabelle2025" in fetched[0]
    assert commands[0][1:3] == ["build", "-b"] and commands[0][-1] == "MiniF2F_Heap"
    root = (lean_setup.isabelle_heap_dir(ctx.data_dir) / "ROOT").read_text()
    for name in lean_setup.ISABELLE_HEAP_IMPORTS[1:]:
        assert f'"{name}"' in root
    assert [r.status for r in run_setup(ctx, steps)] == ["done already", "done already"]
    item = lean_setup.isabelle_item(ctx.data_dir, path="")
    assert item.ok and item.version == "Isabelle2025" and "heap MiniF2F_Heap built" in item.detail


def test_doctor_reports_isabelle_missing(tmp_path: Path) -> None:
    item = lean_setup.isabelle_item(tmp_path, path="")
    assert not item.ok and "prover setup --isabelle" in item.detail


def test_setup_without_a_terminal_says_to_pass_yes(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: nobody can answer the question
    status = _exit_status(["setup", "--project-dir", str(_project(tmp_path)), "--skip-data"])
    assert status == 2
    assert "pass --yes" in capsys.readouterr().err


def test_doctor_prints_the_memory_plan_and_warns_when_it_does_not_fit(
    tmp_path: Path, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROVER_LEAN__REPL__WORKERS", "3")
    monkeypatch.setenv("PROVER_LEAN__REPL__MAX_VERIFY_WORKERS", "1")
    monkeypatch.setenv("PROVER_LEAN__REPL__MAX_WORKER_MEMORY_MB", "1024")
    _exit_status(["doctor", "--json", "--project-dir", str(tmp_path)])
    item = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}["Lean memory"]
    assert item["required"] is False and item["ok"] is True
    assert "4 Lean processes" in item["detail"] and "recycled at 1024 MiB RSS" in item["detail"]
    monkeypatch.setenv("PROVER_LEAN__REPL__WORKERS", "4000")
    monkeypatch.setenv("PROVER_LEAN__REPL__MAX_WORKER_MEMORY_MB", "10240")
    _exit_status(["doctor", "--json", "--project-dir", str(tmp_path)])
    item = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}["Lean memory"]
    assert item["ok"] is False and "does not fit" in item["detail"] and "lean.repl.workers" in item["detail"]
