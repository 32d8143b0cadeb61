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
    assert abs(float(w.detach()) - 1.0) < 1e-3 and len(after) == 50 and [s for s, _ in seen] == list(range(1, 51))
    assert seen[-1][1] < seen[0][1]


def test_a_non_finite_loss_names_the_stage_and_step_and_stops_before_the_update():
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    losses = [w * 2, w * float("nan")]
    with pytest.raises(FloatingPointError, match="distance fit loss became nan at step 2"):
        run_steps(lambda step: losses[step], [w], opt, sched, steps=2, what="distance fit")
    assert float(w.detach()) == pytest.approx(0.8)  # only the first step was taken


def test_run_steps_starts_where_told_passes_logs_and_grad_norms_and_names_the_mode():
    """The training stages' use: resume at a step, losses with their terms, accelerate's backward."""
    w = torch.nn.Parameter(torch.tensor(3.0))
    opt = torch.optim.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    reports, backwards = [], []

    def backward(loss):
        backwards.append(1)
        loss.backward()

    run_steps(lambda step: ((w - 1.0) ** 2, {"mode": "policy", "step": step}), [w], opt, sched, steps=5, start=2,
              clip_norm=100.0, backward=backward, report=reports.append)
    assert [r.done for r in reports] == [3, 4, 5] and [r.logs["step"] for r in reports] == [2, 3, 4]
    assert len(backwards) == 3
    assert reports[0].grad_norm == pytest.approx(4.0)  # |d/dw (w - 1)^2| at w = 3, before clipping
    assert all(r.seconds > 0 for r in reports)
    with pytest.raises(FloatingPointError, match=r"training loss became nan at step 1 \(policy\)"):
        run_steps(lambda step: (w * float("nan"), {"mode": "policy"}), [w], opt, sched, steps=1, what="training")


def test_a_parameter_the_loss_leaves_out_still_takes_its_adamw_step():
    """A world-model mode trains some heads only; the others keep decaying and moving on their momentum,
    as they did when the model's loss touched every parameter with a zero weight."""
    used, left_out = torch.nn.Parameter(torch.tensor(3.0)), torch.nn.Parameter(torch.tensor(2.0))
    opt = torch.optim.AdamW([used, left_out], lr=0.1, weight_decay=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    losses = [lambda: (used - 1.0) ** 2 + (left_out - 1.0) ** 2, lambda: (used - 1.0) ** 2]
    run_steps(lambda step: losses[step](), [used, left_out], opt, sched, steps=2)
    after_first = 2.0 * (1 - 0.1 * 0.5) - 0.1  # decay, then Adam's first step is lr * sign(grad)
    # second step: decayed again, and still moved by the first step's momentum (zero new gradient)
    assert float(left_out.detach()) < after_first * (1 - 0.1 * 0.5) - 0.01
    assert "exp_avg" in opt.state[left_out]
