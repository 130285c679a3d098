"""Exact rank dynamics of matrix functions: certified generic ranks and claims."""
from .engine import Certificate, CertificationError, generic_rank
from ._convert import RationalMatrix
__all__ = ["Certificate", "CertificationError", "generic_rank", "RationalMatrix"]
