"""Analyses that need no widget: logit lens, token classes, enrichment, steering, self-explanation."""
