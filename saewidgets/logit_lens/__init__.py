"""The logit lens of SAE features: ``W_dec[f] @ W_U`` over the vocabulary, its statistics,
token-class enrichment and histograms."""

from .enrichment import enrichment
from .histogram import logit_histogram, logit_histogram_chart
from .lens import logit_stats, logit_weights
from .table import logit_lens_table

__all__ = [
    "enrichment", "logit_histogram", "logit_histogram_chart", "logit_lens_table", "logit_stats", "logit_weights",
]
