#!/usr/bin/env bash
# Sets up the Docker image, one stage at a time, so each stage is its own cached layer:
#
#   system       OS packages (git, curl, a C compiler, Python), the non-root user, the folders
#   lean         elan and the Lean toolchain pinned in prover/project/miniF2F/lean-toolchain
#   repl         the Lean REPL at the tag of that toolchain, built with lake
#   mathlib      the miniF2F Lake project written to $PROVER_HOME/miniF2F, Mathlib's build cache
#                (`lake exe cache get`) and `lake build`
#   data         the miniF2F statements and the Llemma/LeanDojo variant at their pinned commits
#   judge        comparator, lean4export and landrun, when a pair is known for the toolchain
#   python-deps  a virtual environment with the dependencies of the extras (pyproject.toml only)
#   python       the package itself with its extras ($PROVER_EXTRAS)
#   verify       `prover setup --yes`, which must find every step above already done
#
# Usage: docker/setup-image.sh [--dry-run] STAGE...
#   --dry-run (or SETUP_IMAGE_DRY_RUN=1) checks the inputs (files exist, pins parse) and prints
#   every command a stage would run, the programs it needs and the ones it provides; it downloads
#   nothing and changes nothing.
#
# Why not just `prover setup` in every stage: it has no way to run one step, and running it needs the
# package installed, so every change to the Python code would throw away the Lean layers (Mathlib's
# cache is gigabytes). So the Lean stages run the same commands as prover/lean_setup.py's steps, with
# every URL, commit and folder read from that file (and lean_env/comparator.py) rather than copied
# here; the `verify` stage then runs the real `prover setup`, and fails if it had anything left to do,
# so a divergence between this script and lean_setup.py breaks the build instead of going unnoticed.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAGES=(system lean repl mathlib data judge python-deps python verify)
DRY_RUN="${SETUP_IMAGE_DRY_RUN:-0}"
PYTHON="${SETUP_IMAGE_PYTHON:-python3}"
PROVER_HOME="${PROVER_HOME:-/opt/prover}"
ELAN_HOME="${ELAN_HOME:-/opt/elan}"
PROVER_VENV="${PROVER_VENV:-/opt/venv}"
PROVER_EXTRAS="${PROVER_EXTRAS:-vllm,hf,openai,service}"
PROVER_USER="${PROVER_USER:-prover}"
PROVER_UID="${PROVER_UID:-10001}"
PROVER_WORKDIR="${PROVER_WORKDIR:-/work}"
# The layout prover/config.py resolves by default under the home (PROJECT_FOLDER, DATA_FOLDER);
# checked against config.py whenever it is present (see check_layout).
PROJECT_DIR="$PROVER_HOME/miniF2F"
DATA_DIR="$PROVER_HOME/data"
# Debian/Ubuntu packages. gcc and python3-dev: Triton (under vLLM) compiles a small C helper at run time.
SYSTEM_PACKAGES=(ca-certificates curl git gcc libc6-dev python3 python3-dev python3-venv zstd)

die() {
  echo "setup-image.sh: error: $*" >&2
  exit 2
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

is_dry() { [ "$DRY_RUN" = "1" ] || [ "$DRY_RUN" = "true" ]; }

# Print a command, shell-quoted, then run it (unless dry).
step() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  is_dry || "$@"
}

# step, in a directory.
step_in() {
  local dir="$1"
  shift
  printf '+ (cd %q &&' "$dir"
  printf ' %q' "$@"
  printf ')\n'
  is_dry || (cd "$dir" && "$@")
}

# The programs a stage runs: named in a dry run, required otherwise.
needs() {
  echo "needs: $*"
  is_dry && return 0
  local program
  for program in "$@"; do
    command -v "$program" > /dev/null || die "stage needs \`$program\`, which is not on PATH ($PATH)"
  done
}

# The programs a stage leaves behind, in DIR: named in a dry run, checked after a real run.
provides() {
  local dir="$1" program
  shift
  for program in "$@"; do
    echo "provides: $dir/$program"
    is_dry && continue
    [ -x "$dir/$program" ] || die "the stage ran but $dir/$program is missing or not executable"
  done
}

require_file() {
  [ -f "$SRC/$1" ] || die "missing input file $1 (under $SRC)"
}

# Pins, read from the Python sources with `ast` (no import, so no dependency is needed): prints
# NAME=value lines, shell-quoted, for `eval`. Each argument is FILE:NAME[,NAME...].
read_pins() {
  "$PYTHON" - "$SRC" "$@" << 'PY'
import ast
import shlex
import sys
from pathlib import Path

src = Path(sys.argv[1])
for spec in sys.argv[2:]:
    file, names = spec.split(":", 1)
    tree = ast.parse((src / file).read_text(encoding="utf-8"), filename=file)
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    for name in names.split(","):
        value = values.get(name)
        if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
            value = " ".join(value)
        if not isinstance(value, str) or not value:
            sys.exit(f"setup-image.sh: error: {file} defines no string constant {name}")
        print(f"{name}={shlex.quote(value)}")
PY
}

pins() {
  local out
  out="$(read_pins "$@")" || die "could not read the pins ($*)"
  eval "$out"
}

check_commit() {
  [[ "$2" =~ ^[0-9a-f]{40}$ ]] || die "$1 is not a 40-digit commit hash: '$2'"
}

check_url() {
  [[ "$2" =~ ^https://[^[:space:]]+$ ]] || die "$1 is not an https URL: '$2'"
}

# The toolchain pin of the packaged project, e.g. leanprover/lean4:v4.24.0, and its tag v4.24.0.
read_toolchain() {
  require_file prover/project/miniF2F/lean-toolchain
  TOOLCHAIN="$(tr -d '[:space:]' < "$SRC/prover/project/miniF2F/lean-toolchain")"
  [[ "$TOOLCHAIN" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:v[0-9][A-Za-z0-9_.-]*$ ]] ||
    die "prover/project/miniF2F/lean-toolchain does not hold a pin like leanprover/lean4:v4.24.0: '$TOOLCHAIN'"
  TAG="${TOOLCHAIN##*:}"
  echo "toolchain: $TOOLCHAIN (tag $TAG)"
}

check_layout() {
  [ -f "$SRC/prover/config.py" ] || return 0
  pins prover/config.py:PROJECT_FOLDER,DATA_FOLDER
  [ "$PROVER_HOME/$PROJECT_FOLDER" = "$PROJECT_DIR" ] && [ "$PROVER_HOME/$DATA_FOLDER" = "$DATA_DIR" ] ||
    die "prover/config.py puts the project in <home>/$PROJECT_FOLDER and the data in <home>/$DATA_FOLDER;" \
      "this script uses $PROJECT_DIR and $DATA_DIR"
}

# `git init`, fetch exactly REV, check it out: lean_setup._git_checkout.
git_checkout() {
  local url="$1" rev="$2" dir="$3"
  step mkdir -p "$dir"
  step git init -q "$dir"
  step git -C "$dir" fetch --depth 1 "$url" "$rev"
  step git -C "$dir" checkout -q --detach FETCH_HEAD
}

stage_system() {
  needs apt-get useradd
  export DEBIAN_FRONTEND=noninteractive
  step apt-get update
  step apt-get install -y --no-install-recommends "${SYSTEM_PACKAGES[@]}"
  step sh -c 'rm -rf /var/lib/apt/lists/*'
  # The data checkouts are read by `git rev-parse` (prover doctor/setup) as whichever user runs the image.
  step git config --system --add safe.directory '*'
  step useradd --create-home --uid "$PROVER_UID" --user-group --shell /bin/bash "$PROVER_USER"
  step mkdir -p "$PROVER_HOME" "$ELAN_HOME" "$PROVER_WORKDIR"
  step chown "$PROVER_USER:$PROVER_USER" "$PROVER_HOME" "$ELAN_HOME" "$PROVER_WORKDIR"
  provides /usr/bin git curl python3
}

stage_lean() {
  read_toolchain
  require_file prover/lean_setup.py
  pins prover/lean_setup.py:ELAN_INIT_URL
  check_url ELAN_INIT_URL "$ELAN_INIT_URL"
  needs curl sh
  export ELAN_HOME
  # lean_setup._install_elan, then _install_toolchain
  step curl -sSfL --retry 3 -o /tmp/elan-init.sh "$ELAN_INIT_URL"
  step sh /tmp/elan-init.sh -y --default-toolchain none --no-modify-path
  step rm -f /tmp/elan-init.sh
  step "$ELAN_HOME/bin/elan" toolchain install "$TOOLCHAIN"
  provides "$ELAN_HOME/bin" elan lake lean
}

stage_repl() {
  read_toolchain
  require_file prover/lean_setup.py
  check_layout
  pins prover/lean_setup.py:REPL_REPO_URL,REPL_FOLDER
  check_url REPL_REPO_URL "$REPL_REPO_URL"
  needs git "$ELAN_HOME/bin/lake"
  export ELAN_HOME PATH="$ELAN_HOME/bin:$PATH"
  local checkout="$DATA_DIR/$REPL_FOLDER/$TAG"
  # lean_setup._build_repl
  step mkdir -p "$DATA_DIR/$REPL_FOLDER"
  step git clone --depth 1 --branch "$TAG" "$REPL_REPO_URL" "$checkout"
  step_in "$checkout" lake build
  provides "$checkout/.lake/build/bin" repl
}

stage_mathlib() {
  read_toolchain
  require_file prover/lean_setup.py
  check_layout
  pins prover/lean_setup.py:PROJECT_FILES
  local name
  for name in $PROJECT_FILES; do
    require_file "prover/project/miniF2F/$name"
  done
  needs git "$ELAN_HOME/bin/lake"
  export ELAN_HOME PATH="$ELAN_HOME/bin:$PATH"
  # Mathlib's cache tool keeps the downloaded archives under $XDG_CACHE_HOME/mathlib; they are
  # unpacked into the project, so the archives go in a scratch folder that is removed afterwards.
  export XDG_CACHE_HOME=/tmp/setup-image-cache
  # lean_setup._materialise_project, _fetch_mathlib, _build_project
  step mkdir -p "$PROJECT_DIR"
  for name in $PROJECT_FILES; do
    step cp "$SRC/prover/project/miniF2F/$name" "$PROJECT_DIR/$name"
  done
  step_in "$PROJECT_DIR" lake exe cache get
  step_in "$PROJECT_DIR" lake build
  step rm -rf "$XDG_CACHE_HOME"
}

stage_data() {
  require_file prover/lean_setup.py
  check_layout
  pins prover/lean_setup.py:MINIF2F_REPO_URL,MINIF2F_COMMIT,MINIF2F_FOLDER,LLEMMA_REPO_URL,LLEMMA_COMMIT,LLEMMA_FOLDER
  check_url MINIF2F_REPO_URL "$MINIF2F_REPO_URL"
  check_url LLEMMA_REPO_URL "$LLEMMA_REPO_URL"
  check_commit MINIF2F_COMMIT "$MINIF2F_COMMIT"
  check_commit LLEMMA_COMMIT "$LLEMMA_COMMIT"
  needs git
  # lean_setup's minif2f-data and llemma-data steps
  git_checkout "$MINIF2F_REPO_URL" "$MINIF2F_COMMIT" "$DATA_DIR/$MINIF2F_FOLDER"
  git_checkout "$LLEMMA_REPO_URL" "$LLEMMA_COMMIT" "$DATA_DIR/$LLEMMA_FOLDER"
}

stage_judge() {
  read_toolchain
  require_file lean_env/comparator.py
  check_layout
  pins lean_env/comparator.py:COMPARATOR_TOOLCHAIN,COMPARATOR_REPO_URL,COMPARATOR_REV,LEAN4EXPORT_REPO_URL,LEAN4EXPORT_REV,LANDRUN_REPO_URL,LANDRUN_REV,COMPARATOR_FOLDER
  check_url COMPARATOR_REPO_URL "$COMPARATOR_REPO_URL"
  check_url LEAN4EXPORT_REPO_URL "$LEAN4EXPORT_REPO_URL"
  check_url LANDRUN_REPO_URL "$LANDRUN_REPO_URL"
  check_commit COMPARATOR_REV "$COMPARATOR_REV"
  # lean_setup._comparator_skip_reason: the pinned comparator/lean4export pair reads one export format,
  # so it is built only for the toolchain it was pinned with; otherwise the REPL judge stays in use.
  if [ "$TOOLCHAIN" != "$COMPARATOR_TOOLCHAIN" ]; then
    echo "skip: no comparator/lean4export pair is known for $TAG (the pinned pair needs" \
      "${COMPARATOR_TOOLCHAIN##*:}); the REPL judge stays in use, as \`prover setup\` does"
    return 0
  fi
  needs git apt-get "$ELAN_HOME/bin/lake"
  export ELAN_HOME PATH="$ELAN_HOME/bin:$PATH"
  local root="$DATA_DIR/$COMPARATOR_FOLDER"
  # landrun is built with Go, needed only here (this stage is a build stage; Go is not shipped).
  export DEBIAN_FRONTEND=noninteractive
  step apt-get update
  step apt-get install -y --no-install-recommends golang-go
  # lean_setup._build_comparator
  git_checkout "$LEAN4EXPORT_REPO_URL" "$LEAN4EXPORT_REV" "$root/lean4export"
  step_in "$root/lean4export" lake build
  git_checkout "$COMPARATOR_REPO_URL" "$COMPARATOR_REV" "$root/comparator"
  step_in "$root/comparator" lake build comparator
  git_checkout "$LANDRUN_REPO_URL" "$LANDRUN_REV" "$root/landrun"
  step_in "$root/landrun" go build -o landrun ./cmd/landrun
  provides "$root/comparator/.lake/build/bin" comparator
  provides "$root/lean4export/.lake/build/bin" lean4export
  provides "$root/landrun" landrun
}

# The requirements of the package and of the extras, from pyproject.toml, one per line.
extra_requirements() {
  "$PYTHON" - "$SRC/pyproject.toml" "$PROVER_EXTRAS" << 'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)["project"]
extras = [name.strip() for name in sys.argv[2].split(",") if name.strip()]
known = project.get("optional-dependencies", {})
unknown = [name for name in extras if name not in known]
if unknown:
    sys.exit(f"setup-image.sh: error: pyproject.toml has no extra {', '.join(unknown)} (it has {', '.join(known)})")
for requirement in [*project.get("dependencies", []), *(r for name in extras for r in known[name])]:
    print(requirement)
PY
}

stage_python_deps() {
  require_file pyproject.toml
  local requirements=()
  local listing
  listing="$(extra_requirements)" || die "could not read the extras $PROVER_EXTRAS from pyproject.toml"
  mapfile -t requirements <<< "$listing"
  needs python3
  # torch is not named here: the vllm extra brings the CUDA build of torch that vLLM pins (the
  # Makefile's CPU torch pin is for the test environment and cannot share an environment with vLLM).
  step python3 -m venv "$PROVER_VENV"
  step "$PROVER_VENV/bin/pip" install --no-cache-dir --upgrade pip
  step "$PROVER_VENV/bin/pip" install --no-cache-dir "${requirements[@]}"
  provides "$PROVER_VENV/bin" python pip
}

stage_python() {
  local name
  for name in pyproject.toml README.md; do
    require_file "$name"
  done
  for name in lean_env search prover; do
    [ -f "$SRC/$name/__init__.py" ] || die "missing the package $name (no $name/__init__.py under $SRC)"
  done
  extra_requirements > /dev/null || die "could not read the extras $PROVER_EXTRAS from pyproject.toml"
  needs "$PROVER_VENV/bin/pip"
  step "$PROVER_VENV/bin/pip" install --no-cache-dir "$SRC[$PROVER_EXTRAS]"
  provides "$PROVER_VENV/bin" python prover
}

stage_verify() {
  needs prover
  echo "+ prover setup --yes  (must report every step as already done or skipped)"
  is_dry && return 0
  local log
  # COLUMNS: rich wraps at 80 columns off a terminal, which would split the status from its step.
  log="$(COLUMNS=1000 prover setup --yes 2>&1)" || {
    echo "$log" >&2
    die "\`prover setup\` failed in the image"
  }
  echo "$log"
  # Lines look like `[3/9] toolchain: install ... ... done`; `done` without `already` means the step
  # had work left, so this script and prover/lean_setup.py no longer agree on that step.
  if grep -E '\.\.\. done$' <<< "$log" > /dev/null; then
    die "\`prover setup\` had to redo steps the image stages should have done:" \
      "$(grep -E '\.\.\. done$' <<< "$log" | tr '\n' ' ')"
  fi
  step prover --version
}

main() {
  local chosen=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -h | --help)
        usage
        return 0
        ;;
      -*) die "unknown option $1 (try --help)" ;;
      *) chosen+=("$1") ;;
    esac
    shift
  done
  [ ${#chosen[@]} -gt 0 ] || die "name at least one stage: ${STAGES[*]}"
  local stage known
  for stage in "${chosen[@]}"; do
    known=0
    for name in "${STAGES[@]}"; do
      [ "$stage" = "$name" ] && known=1
    done
    [ "$known" = 1 ] || die "unknown stage '$stage'; the stages are: ${STAGES[*]}"
  done
  for stage in "${chosen[@]}"; do
    echo "== stage $stage$(is_dry && echo ' (dry run: nothing is downloaded or changed)')"
    "stage_${stage//-/_}"
  done
}

main "$@"
