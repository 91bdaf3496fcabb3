"""The benchmark of issue 13 (run: python3 -m bench.run_bench); one module per job."""
