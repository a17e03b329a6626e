"""Benchmarks: one module per capability, each figure next to the raw client in the same run.

`measure` holds the plumbing (scratch hub, timing, percentiles, /proc, the plot); the others
measure one capability each (`bus`, `pipeline`, `scale`, `schema`, `compat`, `audit`,
`documents` with its child process `documents_proc`, `federation`, `directory`, `approval`,
`adapters`). Only `hub.cli` imports this package (`govhub bench ...`, declared in
hub/cli/bench.py); no domain package depends on it, which `make lint` checks.
"""
