"""Plain-Python sessions behind the widgets: bindings, caches, runners and payloads."""
