"""Benchmarks of the platform, each against a baseline measured side by side in the same run.

`python -m bench [deploy|gateway|logs|api|scale|all]` (default all; `make bench`)
starts a real platform per part with `tests.stack.Stack`, measures, and prints
one table: measure | ours | baseline | ratio | target | met?. Results are
figures, never test failures; docs/BENCHMARKS.md explains each measure. This
package must not change platform code or state outside the stacks it starts,
and removes every container, image and process it started.
"""
