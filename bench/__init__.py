"""Benchmarks, run by hand or by ``make bench``; never part of the test suite (speed is measured, not asserted).

``python -m bench.http_bench`` loads the FHIR server and a bare ASGI baseline with wrk and prints
a Markdown table; see docs/benchmarks.md for what it measures and the latest results.
"""
