"""The commands of `neuron-calls`: one module per command, and what a person sees of them.

Each command's module (`sync`, `demo`, `status`, `audit`, `recordings`, `sql`, `report`,
`forget`, `sandbox`) has `add_arguments(parser)` and `run(args) -> exit code`; `pipelines/cli.py`
imports it only when that command runs. `options.py` holds the options they share (`--duckdb`,
`--destination`, `--format`); `console.py` (progress, summary, the one-line error) and
`display.py` (tables, CSV, JSON) the output they share.
"""
