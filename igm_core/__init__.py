"""igm_core: imbalanced multimodal learning with IGM and the methods it is compared with."""

__version__ = "0.1.0"
