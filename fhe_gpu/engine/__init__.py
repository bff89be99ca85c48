"""Proxy-facing building blocks: batched encrypted linear layers and activations."""
from .layers import matvec, matvec_rotations, polyval, polyval_depth, replicate

__all__ = ["matvec", "matvec_rotations", "polyval", "polyval_depth", "replicate"]
