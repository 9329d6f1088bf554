"""acula-edge: clinically aware cardio-respiratory audio screening on small devices."""

import logging as _logging

__version__ = "0.1.0"

# torchao (pulled in by the TFLite and Neural Compressor extras, and imported by transformers when
# present) warns about each CUDA kernel library it cannot load, and torch about its Enum registration:
# noise on every command of a CPU machine, not a problem
_logging.getLogger("torchao").setLevel(_logging.ERROR)
_logging.getLogger("torch.utils._pytree").setLevel(_logging.ERROR)
