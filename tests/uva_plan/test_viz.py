import numpy as np

from uva_plan.viz import cost_plot, planning_gif, side_by_side_gif


def test_planning_gif_has_three_panels_per_step(tmp_path):
    import imageio.v3 as iio

    real = np.stack([np.full((16, 16, 3), 10 * t, np.uint8) for t in range(9)])  # distinct, so no frame is merged
    imagined = [(0, np.full((2, 16, 16, 3), 100, np.uint8)), (4, np.full((2, 16, 16, 3), 200, np.uint8))]
    path = planning_gif(tmp_path / "ep.gif", real, imagined, np.full((16, 16, 3), 50, np.uint8), frame_stride=4, scale=2)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 9
    assert frames.shape[2] == 3 * 32  # three panels of 16 px upscaled by 2
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_side_by_side_and_cost_plot(tmp_path):
    import imageio.v3 as iio

    ramp = np.stack([np.full((8, 8, 3), 40 * t, np.uint8) for t in range(5)])
    side_by_side_gif(tmp_path / "s.gif", ramp[:3], ramp, scale=1)
    assert iio.imread(tmp_path / "s.gif", index=None).shape[0] == 5
    cost_plot(tmp_path / "c.png", [{"best": [3, 2, 1], "mean": [4, 3, 2]}, {"best": [2, 1], "mean": [3, 2]}])
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_pictures_respect_the_umask(tmp_path):
    """GIFs, plots and sheets are for colleagues too: not the private 0600 of a temp file."""
    import os

    from uva_plan.viz import cost_plot, save_image_grid, write_gif

    old = os.umask(0o022)
    try:
        frame = np.zeros((8, 8, 3), np.uint8)
        paths = [write_gif(tmp_path / "a.gif", [frame, frame]),
                 cost_plot(tmp_path / "c.png", [{"best": [2.0, 1.0], "mean": [3.0, 2.0]}]),
                 save_image_grid([[frame, frame]], tmp_path / "s.png", column_titles=["a", "b"])]
    finally:
        os.umask(old)
    for p in paths:
        assert (p.stat().st_mode & 0o777) == 0o644, p
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
