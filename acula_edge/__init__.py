"""acula-edge: clinically aware cardio-respiratory audio screening on small devices."""

__version__ = "0.1.0"
