"""Task vectors and SAE task features for in-context learning (methods.md section 4; the seed:
Kharlapenko 2024, "Extracting SAE task features for ICL").

>>> prompts = sw.icl_prompts(pairs, shots=6, n=16)              # x -> y lines and a query
>>> tv = sw.task_vector(model, prompts, layer=2)                  # mean resid_pre[2] at every "->"
>>> sw.evaluate_task_vector(model, tv, sw.icl_prompts(pairs, shots=0, n=32, seed=1))
>>> sweep = sw.layer_sweep(model, sae, prompts); sweep.chart()     # the seed's chart
>>> tf = sw.task_features(model, sae, prompts, method="cleanup")  # ~10 features that do the task
"""

from .evaluate import TaskEvaluation, evaluate_task_vector
from .features import METHODS, CleanupSettings, TaskFeatures, task_features
from .prompts import ICLPrompt, icl_prompts
from .roles import feature_roles
from .sweep import SWEEP_METHODS, LayerSweep, layer_sweep
from .vector import task_vector, task_vectors

__all__ = ["METHODS", "SWEEP_METHODS", "CleanupSettings", "ICLPrompt", "LayerSweep", "TaskEvaluation", "TaskFeatures",
           "evaluate_task_vector", "feature_roles", "icl_prompts", "layer_sweep", "task_features", "task_vector",
           "task_vectors"]
