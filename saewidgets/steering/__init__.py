"""Steering: baseline and steered continuations side by side, through the engine."""

from .steer import Continuation, SteeringResult, SteeringStep, check_scale, steer, steer_variants, steering_direction

__all__ = ["Continuation", "SteeringResult", "SteeringStep", "check_scale", "steer", "steer_variants",
           "steering_direction"]
