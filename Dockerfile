# syntax=docker/dockerfile:1
# The prover image: Lean (elan, the pinned toolchain, the REPL, Mathlib's build, the miniF2F data,
# the comparator judge where one is known) and Python with vLLM, on a CUDA runtime base.
#
#   docker build -t llemma-prover .
#   docker run --gpus all llemma-prover prover eval minif2f --backend vllm ...
#   docker run -p 8000:8000 -e PROVER_SERVICE__TOKENS=... llemma-prover      # prover serve
#
# Every set-up step is a stage of docker/setup-image.sh (`--dry-run STAGE` prints what it runs),
# one RUN each, ordered so that a change to the Python code rebuilds only the Python layers: the
# Lean stages see nothing but the pins they read (the toolchain file, prover/lean_setup.py, the
# packaged Lake project, lean_env/comparator.py). The last stage runs the real `prover setup`,
# which must find everything already done.

# Ubuntu 24.04 for its Python 3.12 (the package needs >= 3.11; 22.04 ships 3.10). The CUDA version
# only sets the driver the NVIDIA runtime asks for: torch and vLLM bring their own CUDA libraries.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# --- base: OS packages, the non-root user, the folders; shared by every stage -----------------------
FROM ${CUDA_IMAGE} AS base
ENV PROVER_HOME=/opt/prover \
    ELAN_HOME=/opt/elan \
    PROVER_VENV=/opt/venv \
    PATH=/opt/venv/bin:/opt/elan/bin:${PATH} \
    PYTHONUNBUFFERED=1
COPY docker/setup-image.sh /src/docker/setup-image.sh
RUN /src/docker/setup-image.sh system

# --- lean: elan + toolchain, the REPL, the miniF2F project with Mathlib's cache, the data ----------
# Built as root in a build stage; the runtime stage copies the results in, owned by the prover user.
FROM base AS lean
COPY prover/project/miniF2F/lean-toolchain /src/prover/project/miniF2F/lean-toolchain
COPY prover/lean_setup.py /src/prover/lean_setup.py
RUN /src/docker/setup-image.sh lean
# One layer per stage on purpose: a failed or changed stage reruns alone.
# hadolint ignore=DL3059
RUN /src/docker/setup-image.sh repl
COPY prover/project/miniF2F/ /src/prover/project/miniF2F/
RUN /src/docker/setup-image.sh mathlib
# hadolint ignore=DL3059
RUN /src/docker/setup-image.sh data

# --- judge: comparator, lean4export and landrun (skipped, as by `prover setup`, when no pair is
# known for the toolchain; the REPL judge is then used)
FROM lean AS judge
COPY lean_env/comparator.py /src/lean_env/comparator.py
RUN /src/docker/setup-image.sh judge

# --- python: a virtual environment with the package and the vllm, hf, openai and service extras ----
# torch is not installed on its own: the vllm extra brings the CUDA torch build vLLM pins.
FROM base AS python
COPY pyproject.toml /src/pyproject.toml
RUN /src/docker/setup-image.sh python-deps
COPY README.md /src/README.md
COPY lean_env/ /src/lean_env/
COPY search/ /src/search/
COPY prover/ /src/prover/
RUN /src/docker/setup-image.sh python

# --- runtime ------------------------------------------------------------------------------------------
FROM base AS runtime
COPY --from=judge --chown=10001:10001 /opt/elan /opt/elan
COPY --from=judge --chown=10001:10001 /opt/prover /opt/prover
COPY --from=python /opt/venv /opt/venv
# The user docker/setup-image.sh's system stage creates (prover, uid 10001).
USER 10001:10001
WORKDIR /work
RUN /src/docker/setup-image.sh verify
EXPOSE 8000
# Asks `prover serve`'s /health on the port it listens on; a container running `prover eval` or
# `prover worker` serves no HTTP and is reported healthy while it runs (prover/service/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "prover.service.healthcheck"]
# No ENTRYPOINT: `docker run IMAGE prover eval minif2f ...` runs that command instead.
CMD ["prover", "serve", "--host", "0.0.0.0"]
