"""Jupyter widgets (anywidget); the front end is bundled from js/ into saewidgets/static/."""
