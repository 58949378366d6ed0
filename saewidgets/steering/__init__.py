"""Steering: baseline and steered continuations side by side, through the engine."""

from .steer import Continuation, SteeringResult, SteeringStep, steer

__all__ = ["Continuation", "SteeringResult", "SteeringStep", "steer"]
