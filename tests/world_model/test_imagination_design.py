"""The imagination options of the config do what their names say (issue 10's design)."""

import torch

from tests.world_model.conftest import tiny_config
from world_model.model import UVA


def _model(**overrides):
    torch.manual_seed(0)
    return UVA(tiny_config(**overrides)).eval()


def test_an_untrained_residual_model_at_temperature_zero_copies_the_current_frame():
    """The residual target's prior is "nothing moves": the zero-initialised head's sample is a zero
    change, so the future is the current frame (a frame-target model would give blank latents)."""
    history = torch.randn(2, 4, 8, 8, 4)
    actions = torch.rand(2, 16, 2) * 4 - 2
    res = _model(video_target="residual").forward_dynamics(history_latents=history, actions=actions, temperature=0.0)
    assert torch.allclose(res.latents, history[:, -1:].expand_as(res.latents), atol=1e-5)
    blank = _model(video_target="frame").forward_dynamics(history_latents=history, actions=actions, temperature=0.0)
    assert blank.latents.abs().max() < 1e-5


def _fused_inputs(model, actions):
    seen = {}

    def keep(_module, args, _out):
        seen.setdefault("x", args[0])  # returns None: the output stays as it is

    handle = model.backbone.fuse.register_forward_hook(keep)
    history = torch.zeros(1, 4, 8, 8, 4)
    model.forward_dynamics(history_latents=history, actions=actions, temperature=0.0)  # the first pass is kept
    handle.remove()
    return seen["x"]  # [B, Tf, S, fused]


def test_prefix_actions_reach_every_later_frame_and_no_earlier_one():
    model = _model(action_context="prefix")
    actions = torch.zeros(1, 16, 2)
    late = actions.clone()
    late[:, 8:12] = 1.5  # the actions of future frame 2 (0-based) only
    a, b = _fused_inputs(model, actions), _fused_inputs(model, late)
    changed = (a - b).abs().flatten(2).amax(dim=2)[0]  # per future frame
    assert changed[:2].max() == 0  # frames before it never see them
    assert (changed[2:] > 0).all()  # it and every later frame do


def test_frame_actions_reach_only_their_own_frame():
    model = _model(action_context="frame")
    actions = torch.zeros(1, 16, 2)
    late = actions.clone()
    late[:, 8:12] = 1.5
    changed = (_fused_inputs(model, actions) - _fused_inputs(model, late)).abs().flatten(2).amax(dim=2)[0]
    assert changed[2] > 0 and changed[[0, 1, 3]].max() == 0


def test_current_frame_fusion_widens_each_future_token_by_one_token():
    with_current, without = _model(fuse_current_frame=True), _model(fuse_current_frame=False)
    d = with_current.config.token_dim
    assert with_current.backbone.fuse.in_features - without.backbone.fuse.in_features == d


def test_local_mixing_starts_as_the_identity_and_learns_from_neighbours():
    model = _model(local_mixing=2)
    x = torch.randn(2, 4, model.config.tokens_per_frame, model.config.width)
    block = model.backbone.local_mixing[0]
    assert torch.equal(block(x, model.config.grid_size), x)  # zero-initialised residual
    torch.nn.init.normal_(block.conv.weight, std=0.1)
    y = x.clone()
    y[:, :, 0] += 1.0  # change one token: its grid neighbours' outputs change, far tokens' do not
    diff = (block(y, model.config.grid_size) - block(x, model.config.grid_size)).abs().amax(dim=(0, 1, 3))
    g = model.config.grid_size
    assert diff[1] > 0 and diff[g] > 0 and diff[g + 1] > 0  # right, below, diagonal neighbours
    assert diff[2 * g + 2] == 0  # two rows and columns away


def test_action_warp_starts_as_the_identity_and_can_move_the_current_frame_by_the_actions():
    """The warp's kernel starts uniform (the local mean of the current frame); a kernel that puts its
    weight on one offset moves the whole grid by that many latent cells, edge cells replicated."""
    from world_model.backbone import _ActionWarp
    from world_model.tokenizer import unpatchify

    warp = _ActionWarp(action_slot=6, radius=2, patch_size=2, channels=4)
    current = torch.randn(3, 8, 8, 4)
    moved = unpatchify(warp(torch.randn(3, 2, 6), current), 2, 4)  # [3, 2, 8, 8, 4]
    assert moved.shape == (3, 2, 8, 8, 4)
    padded = torch.nn.functional.pad(current.permute(0, 3, 1, 2), (2, 2, 2, 2), mode="replicate")
    local_mean = torch.nn.functional.avg_pool2d(padded, 5, stride=1).permute(0, 2, 3, 1)
    assert torch.allclose(moved, local_mean[:, None].expand_as(moved), atol=1e-5)
    with torch.no_grad():  # all weight on offset (dy, dx) = (0, +2) of the (5 x 5) kernel
        warp.kernel[-1].bias.fill_(-1e4)
        warp.kernel[-1].bias[2 * 5 + 4] = 0.0
    moved = unpatchify(warp(torch.zeros(3, 1, 6), current), 2, 4)[:, 0]
    assert torch.allclose(moved[:, :, :-2], current[:, :, 2:])  # reads 2 cells to the right
    assert torch.allclose(moved[:, :, -1], current[:, :, -1])  # the edge is replicated


def test_action_warp_widens_each_future_token_and_trains():
    model = _model(action_warp_radius=3).train()
    plain = _model()
    assert model.backbone.fuse.in_features == plain.backbone.fuse.in_features + model.config.token_dim
    batch = {"history_latents": torch.randn(2, 4, 8, 8, 4), "future_latents": torch.randn(2, 4, 8, 8, 4),
             "actions": torch.randn(2, 16, 2)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):  # the zero-initialised head layers pass no gradient back before their first steps
        optimizer.zero_grad()
        model(batch, mode="forward_dynamics")[0].backward()
        optimizer.step()
    assert model.backbone.warp.kernel[-1].weight.grad.abs().sum() > 0  # the video loss reaches the kernel


def test_a_gaussian_action_warp_moves_by_its_mean_and_starts_wide():
    from world_model.backbone import _ActionWarp
    from world_model.tokenizer import unpatchify

    warp = _ActionWarp(action_slot=6, radius=2, patch_size=2, channels=4, kind="gaussian")
    current = torch.randn(3, 8, 8, 4)
    start = torch.softmax(warp._logits(torch.randn(3, 1, 6)), dim=-1).reshape(3, 5, 5)
    assert start[:, 2, 2].max() < 0.2 and torch.allclose(start, start.flip(1).flip(2), atol=1e-6)  # wide, centred
    with torch.no_grad():  # mean move (dx, dy) = (+2, 0) latent cells, narrow
        warp.kernel[-1].bias.copy_(torch.tensor([2.0, 0.0, -3.0]))
    moved = unpatchify(warp(torch.zeros(3, 1, 6), current), 2, 4)[:, 0]
    assert torch.allclose(moved[:, :, :-2], current[:, :, 2:], atol=1e-4)


def test_a_local_correction_starts_as_the_gaussian_warp_and_varies_by_cell():
    from world_model.backbone import _ActionWarp

    torch.manual_seed(0)
    plain = _ActionWarp(action_slot=6, radius=2, patch_size=2, channels=4, kind="gaussian")
    local = _ActionWarp(action_slot=6, radius=2, patch_size=2, channels=4, kind="gaussian+local")
    local.kernel.load_state_dict(plain.kernel.state_dict())
    actions, current = torch.randn(3, 2, 6), torch.randn(3, 8, 8, 4)
    assert torch.allclose(local(actions, current), plain(actions, current), atol=1e-6)  # zero correction
    with torch.no_grad():  # a correction that depends on the cell's contents makes cells move differently
        local.local[-1].weight.normal_()
    moved = local(actions, current)
    assert not torch.allclose(moved, plain(actions, current), atol=1e-3)
    assert moved.shape == plain(actions, current).shape


def test_a_stepwise_warp_moves_frame_after_frame_by_each_frames_own_actions():
    """Each frame's kernel moves the previous moved grid: three one-cell steps carry the grid three
    cells with a radius of one; a frame's kernel reads its own actions, not the prefix before it."""
    from world_model.backbone import _ActionWarp
    from world_model.tokenizer import unpatchify

    warp = _ActionWarp(action_slot=9, radius=1, patch_size=2, channels=4, kind="stepwise", step_slot=3)
    current = torch.randn(2, 8, 8, 4)
    with torch.no_grad():  # mean move (dx, dy) = (+1, 0) per frame, narrow
        warp.kernel[-1].bias.copy_(torch.tensor([1.0, 0.0, -3.0]))
    moved = unpatchify(warp(torch.zeros(2, 3, 9), current), 2, 4)  # [2, 3, 8, 8, 4]
    for i in range(3):
        assert torch.allclose(moved[:, i, :, : 8 - (i + 1)], current[:, :, i + 1 :], atol=1e-4)
    with torch.no_grad():  # the move follows the frame's own actions: a kernel that reads them
        warp.kernel[-1].bias.copy_(torch.tensor([0.0, 0.0, -3.0]))
        warp.kernel[0].weight.zero_()
        warp.kernel[0].bias.zero_()
        warp.kernel[0].weight[0, 0] = 1.0  # hidden unit 0 = the first action channel
        warp.kernel[-1].weight.zero_()
        warp.kernel[-1].weight[0, 0] = 1.0 / torch.nn.functional.gelu(torch.tensor(1.0))
    prefix = torch.zeros(2, 3, 9)
    prefix[:, 2, 6] = 1.0  # only the LAST frame's own first action channel is set (prefix layout)
    moved = unpatchify(warp(prefix, current), 2, 4)
    assert torch.allclose(moved[:, 1], current, atol=1e-4)  # frames 0 and 1 stay
    assert torch.allclose(moved[:, 2, :, :-1], current[:, :, 1:], atol=1e-3)  # frame 2 moves one cell


def test_a_stepwise_warp_trains_in_the_model():
    model = _model(action_warp_radius=1, action_warp_kernel="stepwise").train()
    batch = {"history_latents": torch.randn(2, 4, 8, 8, 4), "future_latents": torch.randn(2, 4, 8, 8, 4),
             "actions": torch.randn(2, 16, 2)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        model(batch, mode="forward_dynamics")[0].backward()
        optimizer.step()
    assert model.backbone.warp.local[-1].weight.grad.abs().sum() > 0  # the per-cell correction learns
    assert model.backbone.warp.kernel[0].in_features == model.config.frame_stride * model.config.action_embed_dim


def test_a_splat_warp_keeps_what_is_pushed_past_the_edge_at_the_edge():
    """Sending, not reading: a one-cell step to the right moves an object one cell, and an object at the
    right edge stays there (gathering would lose it); a cell nothing reaches keeps its content."""
    from world_model.backbone import _ActionWarp
    from world_model.tokenizer import unpatchify

    warp = _ActionWarp(action_slot=6, radius=1, patch_size=2, channels=4, kind="splat", step_slot=3)
    with torch.no_grad():  # mean (dx, dy) = (-1, 0): as in the gathering kernels, content moves one cell right
        warp.kernel[-1].bias.copy_(torch.tensor([-1.0, 0.0, -4.0]))
    current = torch.zeros(1, 8, 8, 4)
    current[0, 3, 2] = 1.0  # an object in the middle
    current[0, 5, 7] = 2.0  # one at the right edge
    moved = unpatchify(warp(torch.zeros(1, 2, 6), current), 2, 4)[0]  # [2 frames, 8, 8, 4]
    assert moved[0, 3, 3].mean() > 0.95 and moved[1, 3, 4].mean() > 0.95  # one cell per frame
    assert moved[0, 3, 2].abs().max() < 0.05  # left behind: the background from its left arrives
    assert moved[1, 5, 7].mean() > 0.3  # still at the edge, mixed with the background that piled up there
    with torch.no_grad():  # an importance that favours objects keeps the edge object whole
        warp.importance.weight.fill_(4.0)
    moved = unpatchify(warp(torch.zeros(1, 2, 6), current), 2, 4)[0]
    assert moved[1, 5, 7].mean() > 1.9
    assert moved.shape == (2, 8, 8, 4) and torch.isfinite(moved).all()
    with torch.no_grad():  # only relative importance counts: a shift of every cell's changes nothing
        warp.importance.weight.zero_()
        low = unpatchify(warp(torch.zeros(1, 2, 6), current), 2, 4)
        warp.importance.bias.fill_(-8.0)
        assert torch.allclose(unpatchify(warp(torch.zeros(1, 2, 6), current), 2, 4), low, atol=1e-5)


def test_splat_and_gathering_kernels_mean_the_same_move():
    from world_model.backbone import _ActionWarp
    from world_model.tokenizer import unpatchify

    current = torch.zeros(1, 8, 8, 4)
    current[0, 3, 3] = 1.0
    ends = []
    for kind in ("stepwise", "splat"):
        warp = _ActionWarp(action_slot=3, radius=1, patch_size=2, channels=4, kind=kind, step_slot=3)
        with torch.no_grad():
            warp.kernel[-1].bias.copy_(torch.tensor([1.0, 0.0, -4.0]))
        moved = unpatchify(warp(torch.zeros(1, 1, 3), current), 2, 4)[0, 0].mean(-1)
        ends.append(divmod(int(moved.argmax()), 8))
    assert ends[0] == ends[1] != (3, 3)


def test_a_dynamics_prior_joins_the_forward_tokens_and_learns_the_pushed_move():
    """The prior regresses the future latents from the current one and the chunk: on a toy world where
    the actions' sign says whether a blob moves one cell right, it learns which, and its prediction is
    the extra token part only where actions are given (the current frame stands in elsewhere)."""
    torch.manual_seed(0)
    model = _model(dynamics_prior_width=16, dynamics_prior_blocks=1).train()
    assert model.backbone.fuse.in_features == _model().backbone.fuse.in_features + model.config.token_dim

    def batch_of(n):
        cur = torch.zeros(n, 8, 8, 4)
        x = torch.randint(1, 6, (n,))
        cur[torch.arange(n), 3, x] = 3.0
        move = torch.randint(0, 2, (n,))
        fut = torch.zeros(n, 4, 8, 8, 4)
        fut[torch.arange(n), :, 3, x + move] = 3.0
        actions = (move.float() * 2 - 1).view(n, 1, 1).expand(n, 16, 2).clone()
        return {"history_latents": cur.unsqueeze(1).expand(n, 4, 8, 8, 4).clone(), "future_latents": fut,
                "actions": actions}

    optimizer = torch.optim.Adam(model.dynamics_prior.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        loss, logs = model(batch_of(16), mode="forward_dynamics")
        loss.backward()
        optimizer.step()
    test = batch_of(32)
    with torch.no_grad():
        pred = model.dynamics_prior(test["history_latents"][:, -1:], test["actions"])
    right = pred[..., 3, :, 0].argmax(-1) == test["future_latents"][..., 3, :, 0].argmax(-1)
    assert right.float().mean() > 0.95 and "prior_loss" in logs
    _, logs = model(test, mode="policy")
    assert "prior_loss" not in logs  # no actions given: the prior is not run


def _learn_target_moves(coords: bool, steps: int = 200) -> float:
    """Train a prior alone on a toy world whose action is a target POSITION: a blob jumps to the cell
    the action names (PushT's kind of action). Returns the share of held-out jumps it places right."""
    from world_model.dynamics_prior import DynamicsPrior

    torch.manual_seed(0)
    prior = DynamicsPrior(4, chunk_len=16, action_dim=2, n_future=1, width=32, blocks=2, coords=coords)

    def batch_of(n):
        cur = torch.zeros(n, 8, 8, 4)
        cur[torch.arange(n), 4, torch.randint(0, 8, (n,))] = 3.0
        target = torch.randint(0, 8, (n, 2))
        fut = torch.zeros(n, 1, 8, 8, 4)
        fut[torch.arange(n), 0, target[:, 1], target[:, 0]] = 3.0
        actions = (target.float() / 7 * 2 - 1).view(n, 1, 2).expand(n, 16, 2)
        return cur, actions, fut

    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(steps):
        cur, actions, fut = batch_of(32)
        optimizer.zero_grad()
        (prior(cur[:, None], actions) - fut).pow(2).mean().backward()
        optimizer.step()
    cur, actions, fut = batch_of(64)
    with torch.no_grad():
        pred = prior(cur[:, None], actions)[:, 0, ..., 0].flatten(1)
    return (pred.argmax(-1) == fut[:, 0, ..., 0].flatten(1).argmax(-1)).float().mean().item()


def test_prior_coordinates_let_an_action_name_a_place():
    """A convolution learns where on the grid it is only slowly (from the zero padding at the edges), so a
    target-position action is learnt far sooner with each cell's (x, y) (`dynamics_prior_coords`):
    after 100 steps, 92% of the jumps land right with them and 42% without (150 steps: 100% / 81%)."""
    assert _learn_target_moves(coords=True, steps=100) > 0.85
    assert _learn_target_moves(coords=False, steps=100) < 0.6
    model = _model(dynamics_prior_width=16, dynamics_prior_blocks=1, dynamics_prior_coords=True)
    assert model.dynamics_prior.coords


def test_prior_frames_let_it_see_how_fast_the_agent_goes():
    """With the frame before the current one the prior sees a blob's speed and carries it on; with the
    current frame alone the direction is a coin toss (`dynamics_prior_frames`)."""
    from world_model.dynamics_prior import DynamicsPrior

    def batch_of(n):
        x = torch.randint(2, 6, (n,))
        v = torch.randint(0, 2, (n,)) * 2 - 1
        frames = torch.zeros(n, 2, 8, 8, 4)
        frames[torch.arange(n), 0, 4, x - v] = 3.0
        frames[torch.arange(n), 1, 4, x] = 3.0
        fut = torch.zeros(n, 1, 8, 8, 4)
        fut[torch.arange(n), 0, 4, x + v] = 3.0
        return frames, torch.zeros(n, 16, 2), fut

    right = {}
    for k in (1, 2):
        torch.manual_seed(0)
        prior = DynamicsPrior(4, chunk_len=16, action_dim=2, n_future=1, width=16, blocks=1, frames=k)
        optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
        for _ in range(150):
            frames, actions, fut = batch_of(32)
            optimizer.zero_grad()
            (prior(frames[:, -k:], actions) - fut).pow(2).mean().backward()
            optimizer.step()
        frames, actions, fut = batch_of(64)
        with torch.no_grad():
            pred = prior(frames[:, -k:], actions)[:, 0, 4, :, 0]
        right[k] = (pred.argmax(-1) == fut[:, 0, 4, :, 0].argmax(-1)).float().mean().item()
    assert right[2] > 0.95 and right[1] < 0.75, right
