"""Core: model loading and layouts, the SAE module and its loaders, model+SAE binding."""

from .binding import Binding, bind
from .layout import ModelLayout
from .model import load_model, model_layout
from .sae import SAE, HookPoint
from .sae_loading import load_sae, save_sae

__all__ = ["SAE", "Binding", "HookPoint", "ModelLayout", "bind", "load_model", "load_sae", "model_layout", "save_sae"]
