"""The benchmark of issue 13 (run: python bench/run_bench.py); one module per job."""
