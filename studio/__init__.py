"""Studio: fine-tune language models on your own machine and see exactly what they learn from."""

__version__ = "0.1.0"
