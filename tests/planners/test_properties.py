"""Property tests: for arbitrary boxes and sizes every candidate the objective sees, and every plan
returned, lies in the box and has the promised shape."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.planners.conftest import small_planners

PLANNERS = small_planners()


@st.composite
def problems(draw):
    batch = draw(st.integers(1, 3))
    horizon = draw(st.integers(1, 5))
    action_dim = draw(st.integers(1, 3))
    lows, highs = [], []
    for _ in range(action_dim):
        low = draw(st.floats(-600.0, 600.0, allow_nan=False, allow_infinity=False))
        width = draw(st.floats(1e-3, 600.0, allow_nan=False, allow_infinity=False))
        lows.append(low)
        highs.append(low + width)
    scalar_bounds = draw(st.booleans()) and action_dim == 1
    low = lows[0] if scalar_bounds else torch.tensor(lows, dtype=torch.float64)
    high = highs[0] if scalar_bounds else torch.tensor(highs, dtype=torch.float64)
    name = draw(st.sampled_from(sorted(PLANNERS)))
    seed = draw(st.integers(0, 2**31 - 1))
    use_init = draw(st.booleans())
    return batch, horizon, action_dim, low, high, name, seed, use_init


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_bounds_and_shapes_hold(problem):
    batch, horizon, action_dim, low, high, name, seed, use_init = problem
    low_t = torch.as_tensor(low, dtype=torch.float64).expand(action_dim)
    high_t = torch.as_tensor(high, dtype=torch.float64).expand(action_dim)
    seen = []

    def objective(actions):
        seen.append(actions.detach().clone())
        # a cost with its optimum partly outside the box, differentiable for the gradient planner
        centre = (low_t + high_t) / 2
        scale = (high_t - low_t).clamp(min=1e-9)
        return (((actions - centre - 0.7 * scale) / scale) ** 2).sum(dim=(-1, -2))

    init = None
    if use_init:  # a warm start partly outside the box: it must be clamped
        init = (
            low_t + 1.5 * (high_t - low_t) * torch.rand(batch, horizon, action_dim, dtype=torch.float64)
        ).to(torch.float32)

    sizes = dict(batch_size=batch, horizon=horizon, action_dim=action_dim, low=low, high=high)
    result = PLANNERS[name].plan(objective, **sizes, init=init, seed=seed)
    assert result.actions.shape == (batch, horizon, action_dim)
    assert result.costs.shape == (batch,)
    assert torch.isfinite(result.costs).all()
    for actions in [*seen, result.actions[:, None]]:
        assert actions.shape[0] == batch and actions.shape[2:] == (horizon, action_dim)
        a = actions.to(torch.float64)
        # compare in the planner's own dtype: float32 rounding of the bounds is allowed
        tol = 1e-6 * (1 + high_t.abs().max())
        assert torch.all(a >= low_t - tol) and torch.all(a <= high_t + tol)
    if result.mean is not None:
        assert result.mean.shape == (batch, horizon, action_dim)
    if result.elites is not None:
        assert result.elites.shape[0] == batch and result.elites.shape[2:] == (horizon, action_dim)
