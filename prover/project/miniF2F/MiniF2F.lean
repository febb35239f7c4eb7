/-
The root of the miniF2F checking project. Building it checks that Mathlib's compiled files are in
place, so `import Mathlib` (every miniF2F header) loads without recompiling Mathlib.
-/
import Mathlib
