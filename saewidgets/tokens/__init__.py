"""Token strings decoded from any tokenizer, and token classes over them."""

from .classes import TokenClasses, token_classes

__all__ = ["TokenClasses", "token_classes"]
