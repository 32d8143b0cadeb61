"""Fine-tuning a trained model on training windows in chosen masked modes: the one short loop behind
behaviour cloning on labelled videos (`imitation`) and policy extraction on a run's data
(`policy_extraction`).

UVA's AdamW settings and diffusers' cosine schedule with a 5% warm-up. No EMA: a few thousand steps
from trained weights, where an average would mostly return the starting point. The tokenizer stays
frozen (the windows hold its latents).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from uva_plan.errors import UserInputError


def check_positive_int(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UserInputError(f"{name} is {value!r}; expected an integer >= {low}")


def finetune_windows(model, dataset, modes: dict[str, float], *, steps: int, batch_size: int, lr: float,
                     seed: int = 0, weight_fn: Callable[[dict], object] | None = None,
                     mode_datasets: dict | None = None, frozen: tuple[str, ...] = (),
                     progress: Callable[[int, float], None] | None = None):
    """A copy of ``model`` fine-tuned for ``steps`` steps on ``dataset`` (a `WindowDataset` over
    latents). Each step draws one mode from ``modes`` (name -> weight) and a batch of random windows.

    ``weight_fn(batch) -> [B] weights`` (optional) weighs the items of steps whose mode has an action
    loss (advantage-weighted regression); other modes keep plain means, so the world model they train
    is not bent towards the weighted items. ``mode_datasets`` (mode -> dataset) draws that mode's windows
    from its own dataset, e.g. a policy that must not clone some episodes the world model still learns
    from. ``frozen``: name prefixes of modules whose parameters keep their values (e.g.
    ``proprio_dynamics.``). ``progress(step, loss)`` is called after each step.
    """
    import torch
    from diffusers.optimization import get_cosine_schedule_with_warmup

    from uva_plan.step_loop import run_steps
    from uva_plan.training_config import UVA_BETAS, UVA_WEIGHT_DECAY
    from uva_plan.training_data import collate
    from world_model.config import MODE_NAMES
    from world_model.modes import MODES

    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if not (isinstance(lr, (int, float)) and 0 < lr <= 1):
        raise UserInputError(f"lr is {lr!r}; expected a number in (0, 1]")
    unknown = sorted(set(modes) - set(MODE_NAMES))
    if unknown or not modes or not sum(modes.values()) > 0:
        raise UserInputError(f"fine-tuning modes {modes!r}; expected positive weights over {', '.join(MODE_NAMES)}")
    mode_datasets = dict(mode_datasets or {})
    if len(dataset) == 0 or any(len(d) == 0 for d in mode_datasets.values()):
        raise UserInputError("no training windows to fine-tune on; expected at least one episode of 1 or more steps")
    names = list(modes)
    probs = np.asarray([modes[n] for n in names], dtype=np.float64)
    probs /= probs.sum()

    if isinstance(frozen, str) or not all(isinstance(f, str) and f for f in frozen):
        raise UserInputError(f"frozen is {frozen!r}; expected a tuple of parameter-name prefixes")
    tuned = copy.deepcopy(model)
    for name, p in tuned.named_parameters():
        if name.startswith(tuple(frozen)):
            p.requires_grad_(False)  # no gradient, so AdamW's weight decay leaves it as it is too
    params = [p for p in tuned.world_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=UVA_BETAS, weight_decay=UVA_WEIGHT_DECAY)
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    device = tuned.device
    tuned.train()
    tuned.tokenizer.eval()

    def loss_of_step(step: int):
        mode = names[int(rng.choice(len(names), p=probs))]
        source = mode_datasets.get(mode, dataset)
        source.set_epoch(step * batch_size // len(source))  # new hindsight goals once per pass
        items = [source[int(i)] for i in rng.integers(len(source), size=batch_size)]
        batch = collate(items, device)
        if weight_fn is not None and MODES[mode].action_loss:
            batch["action_weights"] = weight_fn(batch)
        return tuned(batch, mode=mode, generator=gen)  # (loss, logs): a non-finite loss's error names the mode

    run_steps(loss_of_step, params, optimizer, scheduler, steps=steps, clip_norm=1.0, progress=progress)
    tuned.eval()
    return tuned
