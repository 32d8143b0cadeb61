"""Action labels the world model's own body agrees with: UVA's inverse-dynamics labels refined, one env
step at a time, by the stepwise body model (`world_model.proprio.StepwiseBodyDynamics`).

Why: the inverse-dynamics mode reads a video's frames ``frame_stride`` steps apart and answers a whole
chunk through a diffusion head, so it sees only each stride's summed motion and adds its sampling
noise (labels R^2 0.87 on 48 held-out expert Wall demos; refined 0.98, README "Imitation"). The video itself shows the
agent at EVERY step, and the body model says where an action takes it in one step (the free move is
solved exactly; a gate read from the frame stops it at a wall). Each step's label becomes the maximum a
posteriori action of two Gaussians:

    prior       a ~ N(inverse-mode mean, its spread over samples and windows, floored at PRIOR_FLOOR)
    likelihood  located agent at t+1 ~ N(body(located agent at t, a, frame t), track_noise)

the agent located in the frames by the env's pixel reader (`uva_plan.envs.wall_locate`; 0.03 px off on
true frames). Where a wall stops the agent the likelihood is flat along it and the prior decides; the
returned spread is the posterior's (Gauss-Newton at the solution). A step whose agent is not found in
both its frames keeps its inverse-mode label and spread.

Models: a stepwise-body model whose proprio is the agent's image position (the shipped Wall
checkpoint). Others are left as they are, with the reason (``why_not_refined``).
"""

from __future__ import annotations

import numpy as np

from uva_plan.action_labels import Labels
from uva_plan.errors import UserInputError

# The located agent's scatter about where the body model puts it after one step, in env units (Wall:
# pixels of a 64-pixel frame). The locator alone is 0.03 px off; the body model's own error adds the
# rest. Measured on 16 held-out expert demos of 64 steps, the Wall checkpoint shipped before the current
# one, floor 0.05 (labels R^2 by this noise): 0.1: 0.981, 0.2: 0.982, 0.4: 0.970, 0.8: 0.931; the inverse
# mode alone 0.846.
TRACK_NOISE = 0.2
# The least prior spread of a label, in normalised action units: a few agreeing diffusion samples
# must not make the prior overrule what the video shows. 48 held-out expert demos, the same checkpoint,
# labels R^2 by floor (track noise 0.2): 0.05: 0.9905, 0.25: 0.9937, 0.5: 0.9940, 1.0: 0.9928.
PRIOR_FLOOR = 0.5


def why_not_refined(model, env_name: str) -> str | None:
    """None where ``refine_labels`` applies to ``model`` on ``env_name``, else why not (one line)."""
    from uva_plan.envs import env_name as canonical

    cfg = model.config
    if canonical(env_name) != "wall":
        return f"labels are refined only on the Wall (its agent is located from pixels); got {env_name!r}"
    if not getattr(cfg, "proprio_body_stepwise", False):
        return "the model has no stepwise body (a model trained with --proprio and proprio_body_stepwise=true has)"
    if list(cfg.proprio_image_xy or []) != [0, 1] or int(cfg.proprio_dim) != 2:
        return "the model's proprio is not exactly the agent's image position"
    return None


def refine_labels(model, env_name: str, frames, labels: Labels, *, track_noise: float = TRACK_NOISE,
                  prior_floor: float = PRIOR_FLOOR, iterations: int = 100) -> Labels:
    """``labels`` of ``frames uint8 [T, S, S, 3]`` (or ``[B, T, S, S, 3]``) refined as the module
    docstring says; same shapes, env units. Gradients are needed (it runs under ``torch.no_grad``, not
    under ``torch.inference_mode``); the model's weights get none."""
    import torch

    from uva_plan.envs.wall_locate import locate_agent
    from world_model.model import ENCODE_BATCH

    reason = why_not_refined(model, env_name)
    if reason is not None:
        raise UserInputError(f"labels cannot be refined by the body model: {reason}")
    for name, value in (("track_noise", track_noise), ("prior_floor", prior_floor)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise UserInputError(f"{name} is {value!r}; expected a number > 0")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserInputError(f"iterations is {iterations!r}; expected an integer >= 1")
    video = np.asarray(frames)
    single = video.ndim == 4
    if single:
        video = video[None]
    cfg, body = model.config, model.proprio_dynamics
    mean, spread = np.asarray(labels.actions, dtype=np.float32), np.asarray(labels.std, dtype=np.float32)
    expected = (video.shape[0], video.shape[1] - 1, cfg.action_dim)
    if single:
        mean, spread = mean[None], spread[None]
    if video.ndim != 5 or mean.shape != expected or spread.shape != expected:
        raise UserInputError(f"labels {tuple(np.shape(labels.actions))} and spreads {tuple(np.shape(labels.std))} for "
                             f"a video {tuple(np.shape(frames))}; expected one per step: {expected[1:] if single else expected}")
    if not (np.isfinite(mean).all() and np.isfinite(spread).all()):
        raise UserInputError("labels or spreads contain NaN or infinite values; expected finite inverse-dynamics labels")

    xy, _, _ = locate_agent(video)  # [B, T, 2] env units, NaN where the agent is not found
    with torch.no_grad():
        located = model.proprio_normalizer.normalize(torch.as_tensor(xy, dtype=torch.float32, device=model.device))
        now, after = located[:, :-1].reshape(-1, 2), located[:, 1:].reshape(-1, 2)
        seen_both = torch.isfinite(now).all(1) & torch.isfinite(after).all(1)
        now, after = now.nan_to_num(0.0), after.nan_to_num(0.0)
        latents = model.encode(torch.as_tensor(video[:, :-1], device=model.device))
        latents = latents.reshape(-1, 1, *latents.shape[2:])
        # every frame differs here, so the decoded views go in batches (a planner's few shared ones do not)
        seen = [body.sense(model.body_view(latents[i:i + ENCODE_BATCH], now[i:i + ENCODE_BATCH, None]),
                           now[i:i + ENCODE_BATCH]) for i in range(0, len(now), ENCODE_BATCH)]
        seen = None if seen[0] is None else torch.cat(seen)
    half = torch.as_tensor((np.asarray(cfg.action_high) - np.asarray(cfg.action_low)) / 2.0, dtype=torch.float32)
    prior = model.normalizer.normalize(torch.as_tensor(mean.reshape(-1, cfg.action_dim))).float().to(now.device)
    prior_sd = (torch.as_tensor(spread.reshape(-1, cfg.action_dim)) / half).clamp(min=prior_floor).to(now.device)
    # env units -> normalised proprio units, per axis
    noise = torch.as_tensor(track_noise * 2.0 / (np.asarray(cfg.proprio_high) - np.asarray(cfg.proprio_low)),
                            dtype=torch.float32, device=now.device)

    with torch.enable_grad():
        action = prior.clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS([action], max_iter=iterations, line_search_fn="strong_wolfe")

        def objective():
            optimiser.zero_grad()
            moved, _ = body.advance(now, action, seen)
            misfit = (((moved - after) / noise) ** 2).sum(1) * seen_both
            loss = misfit.sum() + (((action - prior) / prior_sd) ** 2).sum()
            (action.grad,) = torch.autograd.grad(loss, action)  # not backward(): the model's weights get no .grad
            return loss

        optimiser.step(objective)
        refined = action.detach().clamp(-1.0, 1.0)
        posterior_sd = _posterior_spread(body, now, refined, seen, seen_both, noise, prior_sd)
    kept = ~seen_both.cpu().numpy().reshape(*mean.shape[:2], 1)  # steps the video does not show: untouched
    out = model.normalizer.unnormalize(refined).cpu().numpy().reshape(mean.shape).astype(np.float32)
    out = np.where(kept, mean, out)
    sd = np.where(kept, spread, (posterior_sd.cpu() * half).numpy().reshape(mean.shape).astype(np.float32))
    return Labels(out[0], sd[0]) if single else Labels(out, sd)


def _posterior_spread(body, now, action, seen, seen_both, noise, prior_sd):
    """Per-entry posterior spread ``[N, A]`` of the refined actions (normalised units): the Gauss-Newton
    precision J^T J / noise^2 + 1 / prior^2 of each step, inverted. J, the body's one-step Jacobian in
    the action, comes from one backward pass per proprio entry (the steps are independent)."""
    import torch

    a = action.clone().requires_grad_(True)
    moved, _ = body.advance(now, a, seen)
    rows = []
    for k in range(moved.shape[1]):
        (grad,) = torch.autograd.grad(moved[:, k].sum(), a, retain_graph=k + 1 < moved.shape[1])
        rows.append(grad / noise[k])
    jac = torch.stack(rows, dim=1) * seen_both[:, None, None]  # [N, P, A]
    precision = jac.transpose(1, 2) @ jac + torch.diag_embed(prior_sd.pow(-2))
    return torch.linalg.inv(precision).diagonal(dim1=1, dim2=2).clamp(min=0).sqrt()
