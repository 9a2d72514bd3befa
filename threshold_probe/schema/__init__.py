"""Shipped data files: the JSON Schema of the run summary (regenerate with
`python -m threshold_probe.schema`)."""
