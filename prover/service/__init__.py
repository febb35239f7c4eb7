"""The HTTP service (`prover serve`) and its job workers (`prover worker`); see docs/service-design.md."""
