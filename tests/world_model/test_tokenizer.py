import numpy as np
import pytest
import torch

from tests.world_model.conftest import square_video
from world_model.config import TokenizerConfig
from world_model.errors import WorldModelError
from world_model.tokenizer import FrameTokenizer


@pytest.fixture
def tokenizer():
    torch.manual_seed(0)
    return FrameTokenizer(TokenizerConfig(channels=(8, 16, 16)), patch_size=2)


def _frames(n=12, seed=0):
    """A square crossing the frame diagonally, so it never lingers long enough to enter the median."""
    rng = np.random.default_rng(seed)
    video = square_video(n - 1, rng.uniform(0, 4, size=2), np.full((n - 1, 2), 48.0 / n))
    return torch.from_numpy(video)


def test_encode_decode_shapes_and_range(tokenizer):
    frames = _frames()
    lat = tokenizer.encode(frames)
    assert lat.shape == (12, 8, 8, 4)
    out = tokenizer.decode(lat)
    assert out.shape == (12, 64, 64, 3) and out.min() >= 0 and out.max() <= 1


def test_patchify_round_trip_and_token_layout(tokenizer):
    lat = torch.randn(2, 3, 8, 8, 4)
    tokens = tokenizer.patchify(lat)
    assert tokens.shape == (2, 3, 16, 16)
    assert torch.equal(tokenizer.unpatchify(tokens), lat)
    # token 1 is the patch at grid row 0, column 1: latent rows 0-1, columns 2-3
    assert torch.equal(tokens[0, 0, 1].reshape(2, 2, 4), lat[0, 0, 0:2, 2:4])


def test_fit_scale_gives_zero_mean_unit_variance(tokenizer):
    raw = tokenizer.encode_raw(_frames(24)) * 7.0 + 3.0
    tokenizer.fit_scale(raw)
    scaled = (raw - tokenizer.shift_factor) * tokenizer.scale_factor
    assert abs(float(scaled.mean())) < 1e-4
    assert abs(float(scaled.std()) - 1.0) < 1e-3
    with pytest.raises(WorldModelError, match="std"):
        tokenizer.fit_scale(torch.zeros(4, 8, 8, 4))


def test_foreground_weights_follow_the_median_background(tokenizer):
    frames = _frames(20)
    assert torch.equal(tokenizer.foreground_weights(frames.float() / 255), torch.ones(20, 64, 64))
    tokenizer.fit_background(frames)
    bg = tokenizer.background
    assert torch.allclose(bg[0, 0], torch.full((3,), 20 / 255))
    w = tokenizer.foreground_weights(frames.float() / 255)
    square = frames[..., 0] > 128
    assert torch.all(w[square] == 1 + tokenizer.config.foreground_weight)
    assert torch.all(w[~square] == 1)
    empty = tokenizer.empty_frame()  # the median background back as a frame
    assert empty.dtype == torch.uint8 and empty.shape == (64, 64, 3) and int(empty[0, 0, 0]) == 20


def test_a_few_steps_lower_the_loss(tokenizer):
    frames = _frames(16)
    tokenizer.fit_background(frames)
    opt = torch.optim.Adam(tokenizer.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(40):
        loss, logs = tokenizer(frames, generator=g)
        first = first if first is not None else logs["recon"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["recon"] < 0.5 * first
    assert set(logs) == {"tokenizer_loss", "recon", "kl", "mse"}


def test_bad_images_raise(tokenizer):
    with pytest.raises(WorldModelError, match=r"expected \[N, 64, 64, 3\]"):
        tokenizer.encode(torch.zeros(2, 32, 32, 3))
    with pytest.raises(WorldModelError, match="dtype"):
        tokenizer.encode(torch.zeros(2, 64, 64, 3, dtype=torch.int32))
    with pytest.raises(WorldModelError, match=r"expected \[N, 8, 8, 4\]"):
        tokenizer.decode(torch.zeros(2, 8, 8, 3))
