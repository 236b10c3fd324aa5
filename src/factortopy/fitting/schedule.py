"""The loss and the regulariser's fade (method.md, "Training")."""
from __future__ import annotations

REFERENCE_FADE_STEPS = 2000


def regularizer_weight(step: int, total_steps: int, weight: float = 0.1, fade: str = "fraction",
                       fade_value: float = 0.3) -> float:
    """weight * max(0, 1 - step / fade_steps).

    fade='fraction': fade_steps = fade_value x total_steps (reaches zero on any data size);
    fade='steps': fade_steps = fade_value (the reference recipe: 2,000 steps, which a small data set
    never reaches).
    """
    if fade == "fraction":
        fade_steps = max(1.0, fade_value * total_steps)
    elif fade == "steps":
        fade_steps = max(1.0, float(fade_value))
    else:
        raise ValueError(f"unknown fade {fade!r}; choose 'fraction' or 'steps'")
    return weight * max(0.0, 1.0 - step / fade_steps)
