"""The model organism's build (not shipped in the wheel): corpus, tokenizer, training, evaluation, report.

From a checkout: ``python -m tools.organism.build --out DIR``. The runtime part (loader, ground
truth, data) is ``saewidgets.model_organism``.
"""
