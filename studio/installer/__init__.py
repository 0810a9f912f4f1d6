"""Studio's own installer: a managed Python, the right PyTorch, repair, update and uninstall.

Standard library only (it runs before Studio's environment exists); see ``__main__``.
"""
