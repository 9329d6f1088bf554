"""acula-edge: clinically aware cardio-respiratory audio screening on small devices."""

import logging as _logging
import os as _os

__version__ = "0.1.0"

# torchao (pulled in by the TFLite and Neural Compressor extras, and imported by transformers when
# present) warns about each CUDA kernel library it cannot load, and torch about its Enum registration:
# noise on every command of a CPU machine, not a problem
_logging.getLogger("torchao").setLevel(_logging.ERROR)
_logging.getLogger("torch.utils._pytree").setLevel(_logging.ERROR)

# OpenMP threads (torch's) that wait for work sleep instead of spinning. On a shared machine spinning
# threads fight the other job for its cores: 10 training steps took 48 s instead of 2-4 s. Set before
# torch loads; an explicit OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
