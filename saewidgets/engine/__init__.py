"""The intervention engine: the one place that runs the model through nnsight.

>>> from saewidgets.engine import Decoding, Edit, Read, Row, generate, trace
>>> rows = [Row("The word"), Row("The word", (Edit(2, 8.0 * sae.W_dec[3]),))]   # baseline, steered
>>> out = generate(model, rows, Decoding(max_new_tokens=12, prepend_bos=True))

``trace`` runs one forward pass (optionally with gradients), ``generate`` token by token; both
take rows of (prompt, edits) and reads, and share one ``Decoding`` with one set of limits.
"""

from .decoding import LIMITS, Decoding, check_context, context_length
from .edits import Edit, Read, Row
from .run import Generation, NonFiniteError, Step, Trace, cut_at_stop, eos_ids, generate, trace

__all__ = ["LIMITS", "Decoding", "Edit", "Generation", "NonFiniteError", "Read", "Row", "Step", "Trace",
           "check_context", "context_length", "cut_at_stop", "eos_ids", "generate", "trace"]
