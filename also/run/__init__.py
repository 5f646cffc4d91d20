"""Layer 5: running batches: preflight, budget, worker processes and Ray, the batch runner, `also run`, benchmarks and `also doctor`. Imports only layers 0-4."""
