"""The studio window: the only package that imports PySide6 and pyqtgraph.

The GUI process never imports torch, transformers, trl or peft: heavy work runs in worker
processes or in background threads over the pure core.
"""

# Must run before any signal is emitted: see studio/gui/qt_compat.py (PySide6 6.12.0 emit bug).
from studio.gui import qt_compat as _qt_compat

_qt_compat.install()
