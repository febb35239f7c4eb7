"""Informal-to-formal: draft, sketch and prove (paper §4.2), in Isabelle and in Lean 4."""
