"""What every benchmark in bench/ does the same way; what each measures, reports and targets stays in its script.

- `run`: one run (`run_benchmark`, `Teardown`, `BenchError`) and its options shared by several scripts.
- `report`: progress lines, table heads, percentiles, the machine-readable RESULT lines.
- `server`: `eventlog serve` under test, its /readyz, /metrics and CPU time.
- `cpu`: CPU seconds of named processes and of the machine over a run.
- `wrk`: the Lua driver and running wrk.
- `opensearch`: the node a run uses, its CPU time, dropping a run's indices.
- `events`: plausible producer events.
"""
