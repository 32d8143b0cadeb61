import numpy as np
import pytest

from uva_plan.errors import UserInputError
from uva_plan.goal_images import load_goal_image, to_frame


def test_layouts_and_dtypes_are_normalised():
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    assert np.array_equal(to_frame(img, 64), img)
    assert np.array_equal(to_frame(np.moveaxis(img, -1, 0), 64), img)
    assert np.array_equal(to_frame(img / 255.0, 64), img)
    rgba = np.concatenate([img, np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(to_frame(rgba, 64), img)


def test_square_images_of_another_size_are_resized():
    img = np.zeros((128, 128, 3), np.uint8)
    img[:64] = 200
    out = to_frame(img, 64)
    assert out.shape == (64, 64, 3) and out[:32].min() == 200 and out[32:].max() == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((64, 48, 3), np.uint8), "square"),
        (np.zeros((64, 64), np.uint8), "shape"),
        (np.zeros((64, 64, 2), np.uint8), "colour channels"),
        (np.full((64, 64, 3), 2.0), r"expected \[0, 1\]"),
        (np.full((64, 64, 3), np.nan), "NaN"),
        (np.zeros((64, 64, 3), np.int32), "dtype"),
    ],
)
def test_ambiguous_or_broken_images_are_rejected(bad, match):
    with pytest.raises(UserInputError, match=match):
        to_frame(bad, 64)


def test_files(tmp_path):
    import imageio.v3 as iio

    img = np.full((96, 96, 3), 77, np.uint8)
    iio.imwrite(tmp_path / "g.png", img)
    assert load_goal_image(tmp_path / "g.png", 64).shape == (64, 64, 3)
    with pytest.raises(UserInputError, match="does not exist"):
        load_goal_image(tmp_path / "missing.png", 64)
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(UserInputError, match="cannot read"):
        load_goal_image(tmp_path / "junk.png", 64)


def test_grey_transparent_and_non_image_files_are_one_clear_line(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "grey.png", np.full((64, 64), 90, np.uint8))
    with pytest.raises(UserInputError, match="greyscale; expected an RGB image"):
        load_goal_image(tmp_path / "grey.png", 64)
    rgba = np.full((64, 64, 4), 200, np.uint8)
    iio.imwrite(tmp_path / "clear.png", rgba)
    with pytest.raises(UserInputError, match="transparent pixels"):
        load_goal_image(tmp_path / "clear.png", 64)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserInputError) as info:
        load_goal_image(tmp_path / "text.png", 64)
    assert "\n" not in str(info.value) and "pip install" not in str(info.value)
