"""``uva-plan train --init-from RUN``: a run that starts from another run's weights (and its frozen
tokenizer), so a design can be grown in stages without training what it already has again."""

from __future__ import annotations

import json

from uva_plan.errors import UserInputError


def start_from(model, source: str, overrides: dict) -> dict[str, list[str]]:
    """``--init-from``: copy a trained run's weights into ``model``, whose design may ADD parts (e.g. a
    warp's per-cell correction) that then start at their initial values. Anything else that differs
    from the source (a setting not named in ``overrides``, a part the new design would drop) is refused,
    so a run never silently trains a different model than the one it starts from. Returns the modules
    that are new."""
    from world_model import load
    from world_model.errors import CheckpointError

    try:
        src = load(source)
    except CheckpointError as exc:
        raise UserInputError(f"--init-from {source}: {exc}") from None
    if src.config.tokenizer != model.config.tokenizer:
        raise UserInputError(f"--init-from {source} has a different frame tokenizer; expected a run of the same --config and image size")

    def action_range(config):
        return [float(v) for v in config.action_low], [float(v) for v in config.action_high]

    if action_range(src.config) != action_range(model.config):
        raise UserInputError(f"--init-from {source} normalises actions to {src.config.action_low}..{src.config.action_high} but "
                             f"--data gives {model.config.action_low}..{model.config.action_high}; expected data of the same action range")
    theirs, ours = src.config.to_dict(), model.config.to_dict()
    if bool(theirs.get("proprio_dim", 0)) != bool(ours.get("proprio_dim", 0)):
        # proprioception reshapes the dynamics prior's input, so no run grows into or out of it
        have = "was trained with --proprio" if theirs.get("proprio_dim", 0) else "was trained without --proprio"
        raise UserInputError(f"--init-from {source} {have}, and --proprio changes the dynamics prior's input; expected "
                             "the same --proprio setting as the source (or a new run without --init-from)")
    differ = sorted(k for k in ours if k not in ("tokenizer", "env_name") and k not in overrides and theirs.get(k) != ours[k])
    if differ:
        shown = ", ".join(f"{k}={json.dumps(theirs.get(k))}" for k in differ)
        raise UserInputError(f"--init-from {source} was made with {shown}, which these options would change; expected "
                             f"--model-option for each ({' '.join(f'--model-option {k}=...' for k in differ)})")
    try:
        missing, dropped = model.load_state_dict(src.state_dict(), strict=False)
    except RuntimeError as exc:
        first = next(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        raise UserInputError(f"--init-from {source} does not fit the model these options build ({first}); "
                             "expected the same sizes, with options that only add parts") from None

    def modules(names):
        return sorted({name.rsplit(".", 1)[0] for name in names})

    if dropped:
        raise UserInputError(f"--init-from {source} has parts these options would drop ({', '.join(modules(dropped))}); "
                             "expected options that keep every part of the source and only add new ones")
    return {"source": str(source), "new": modules(missing)}
