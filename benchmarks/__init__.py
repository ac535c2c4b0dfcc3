"""Benchmarks of airflow-provider-dpc: import cost, cost per call, triggerer scale and token reuse.

Run them all with ``make bench`` (or ``python -m benchmarks``); ``python -m benchmarks --help`` lists
the sizes. Each comparison is measured side by side in the same run, against servers in other
processes, and the figures are printed as one table and written as JSON.
"""
