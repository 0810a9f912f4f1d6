"""Pure-Python core: configuration, data, templates, encoding, statistics, preflight, protocol, runs.

Nothing here imports Qt, and torch/transformers are imported lazily inside functions, so the
window and the CLI start at once.
"""
