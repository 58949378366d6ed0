"""Independent references for tests and benchmarks (plain PyTorch, no saewidgets code)."""
