"""The intervention engine: the one place that runs the model through nnsight."""
