"""Stage 8: plotting -- figures of fitted models (``pl``, also ``vgfm_bayes.pl``) and the demo
report's files. matplotlib is imported only when a figure is drawn, and its backend is never
set here."""

from . import pl
from .report import FIGURES, write_figures

__all__ = ["FIGURES", "pl", "write_figures"]
