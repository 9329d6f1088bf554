"""Distillation of the aligned teacher into small streaming students (``python -m distill``)."""
