"""autolabel: turn sparsely labeled videos into densely labeled ones (Warp-Refine propagation)."""
__version__ = "0.1.0"

from .core.pipeline import Settings, propagate  # noqa: E402
from .errors import InputError  # noqa: E402

__all__ = ["Settings", "propagate", "InputError", "__version__"]
