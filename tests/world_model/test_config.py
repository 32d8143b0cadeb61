import json

import pytest

from world_model.config import CONFIGS, MODE_NAMES, TokenizerConfig, UVAConfig, make_config
from world_model.errors import WorldModelError
from world_model.model import UVA


def test_presets_round_trip_through_json():
    for name in CONFIGS:
        cfg = make_config(name, [0.0, 0.0], [512.0, 512.0], env_name="pusht")
        again = UVAConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
        assert again.chunk_len == cfg.n_future * cfg.frame_stride == 16
        assert again.tokens_per_frame == 16 and again.token_dim == 16


def test_preset_sizes_are_ordered_and_tiny_is_under_a_million():
    counts = {}
    for name in ("tiny", "small", "base"):
        model = UVA(make_config(name, [-1.0], [1.0]))
        counts[name] = sum(p.numel() for p in model.parameters())
    assert counts["tiny"] < 1_000_000
    assert counts["tiny"] < counts["small"] < counts["base"]


def test_overrides_reach_model_and_tokenizer():
    cfg = make_config("tiny", [-1.0, -1.0], [1.0, 1.0], width=32, tokenizer={"channels": [4, 8, 8]})
    assert cfg.width == 32 and cfg.tokenizer.channels == (4, 8, 8)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"n_history": 3}, "n_history=3"),
        ({"action_low": [1.0, 0.0]}, "low < high"),
        ({"action_dim": 3}, "action_dim=3"),
        ({"prediction_type": "epsilon"}, "prediction_type"),
        ({"goal_dropout": 1.5}, "goal_dropout"),
        ({"mode_weights": {"policy": 1.0}}, "mode_weights"),
        ({"mode_weights": {name: 0.0 for name in MODE_NAMES}}, "all zero"),
        ({"width": 100, "heads": 3}, "divisible by heads"),
        ({"mask_ratio_min": 0.9, "mask_ratio_max": 0.8}, "min < max"),
        ({"depth": 0}, "depth"),
        ({"sample_steps": 2000}, "sample_steps"),
        ({"action_warp_radius": 9}, "action_warp_radius"),
        ({"action_warp_kernel": "bilinear"}, "action_warp_kernel"),
        ({"dynamics_prior_width": -1}, r"dynamics_prior_width is -1; expected an integer in \[0, 1024\]"),
        ({"dynamics_prior_blocks": 2.5}, "dynamics_prior_blocks"),
        ({"dynamics_prior_loss_weight": float("nan")}, "dynamics_prior_loss_weight"),
        ({"dynamics_prior_frames": 0}, r"dynamics_prior_frames is 0; expected an integer in \[1, n_history"),
        ({"dynamics_prior_coords": "yes"}, "dynamics_prior_coords is 'yes'; expected true or false"),
        ({"video_foreground_weight": -1.0}, "video_foreground_weight"),
    ],
)
def test_bad_values_raise_one_clear_error(change, fragment):
    data = make_config("tiny", [-1.0, -1.0], [1.0, 1.0]).to_dict()
    data.update(change)
    with pytest.raises(WorldModelError, match=fragment):
        UVAConfig.from_dict(data)


def test_from_dict_rejects_unknown_keys_and_non_dicts():
    data = make_config("tiny", [-1.0], [1.0]).to_dict()
    data["colour"] = "blue"
    with pytest.raises(WorldModelError, match="unknown keys \\['colour'\\]"):
        UVAConfig.from_dict(data)
    with pytest.raises(WorldModelError, match="expected a JSON object"):
        UVAConfig.from_dict([1, 2])
    with pytest.raises(WorldModelError, match="divisible"):
        TokenizerConfig(image_size=60)


def test_unknown_preset():
    with pytest.raises(WorldModelError, match="unknown config 'huge'"):
        make_config("huge", [-1.0], [1.0])


def test_unknown_preset_overrides_are_named():
    with pytest.raises(WorldModelError, match=r"unknown model option\(s\) \['colour'\]"):
        make_config("tiny", [-1.0], [1.0], colour="blue")
    with pytest.raises(WorldModelError, match="distance_expectile"):
        make_config("tiny", [-1.0], [1.0], distance_expectile=1.0)
