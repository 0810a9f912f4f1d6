"""The studio window: the only package that imports PySide6 and pyqtgraph.

The GUI process never imports torch, transformers, trl or peft: heavy work runs in worker
processes or in background threads over the pure core.
"""
