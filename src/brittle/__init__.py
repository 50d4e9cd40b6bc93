"""brittle: measure, predict and explain how the safety alignment of chat models breaks.

Stages (each a plain Python function with a thin CLI command over it):
data -> model -> features -> selection -> fine-tune -> evaluation -> report.
"""

__version__ = "0.1.0"
