"""Self-explanation: the model describes a direction patched into a prompt (SelfIE, Patchscopes).

(The subpackage is ``self_explanation``: a subpackage named ``self_explain`` would shadow the
function ``sw.self_explain`` on the package.)
"""

from .explain import best_explanations, explanation_at, self_explain, self_explanation_chart
from .layer_map import LayerMap, fit_layer_map

__all__ = ["LayerMap", "best_explanations", "explanation_at", "fit_layer_map", "self_explain", "self_explanation_chart"]
