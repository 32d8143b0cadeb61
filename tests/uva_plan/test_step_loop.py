"""The post-training stages' shared loop: it optimises, calls its hooks, and stops on a bad loss."""

import pytest
import torch

from uva_plan.step_loop import run_steps


def test_run_steps_descends_and_calls_its_hooks_once_per_step():
    w = torch.nn.Parameter(torch.tensor(3.0))
    opt = torch.optim.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    seen, after = [], []
    run_steps(lambda step: (w - 1.0) ** 2, [w], opt, sched, steps=50, clip_norm=10.0,
              after_step=lambda: after.append(1), progress=lambda step, loss: seen.append((step, loss)))
    assert abs(float(w) - 1.0) < 1e-3 and len(after) == 50 and [s for s, _ in seen] == list(range(1, 51))
    assert seen[-1][1] < seen[0][1]


def test_a_non_finite_loss_names_the_stage_and_step_and_stops_before_the_update():
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    losses = [w * 2, w * float("nan")]
    with pytest.raises(FloatingPointError, match="distance fit loss became nan at step 2"):
        run_steps(lambda step: losses[step], [w], opt, sched, steps=2, what="distance fit")
    assert float(w) == pytest.approx(0.8)  # only the first step was taken
