"""`grandtour demo`: the warm-up GIFs, the run, and the figures drawn from it."""

import numpy as np
import pytest
from PIL import Image

from grandtour import demo
from grandtour.cli import main

WARM_UP = ("tesseract.gif", "softmax-cloud.gif")
FROM_RUN = ("softmax-tour.gif", "training-dynamics.gif", "adversarial-dynamics.gif")


def _n_frames(path):
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.n_frames


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "tmp"
    rc = main(["demo", "--no-serve", "--out", str(out), "--epochs", "2", "--frames", "4"])
    assert rc == 0
    return out


def test_demo_writes_every_figure_with_the_requested_frames(demo_out, capsys):
    for name in WARM_UP + FROM_RUN:
        assert _n_frames(demo_out / name) == 4, name
    with Image.open(demo_out / "class-loss.png") as im:
        assert im.format == "PNG"
    written = {p.name for p in demo_out.iterdir()}
    assert written == set(WARM_UP + FROM_RUN) | {"class-loss.png", "run"}


def test_demo_run_has_epochs_0_to_2_and_the_adversarial_steps(demo_out):
    from grandtour.store import Run

    run = Run.open(demo_out / "run")
    assert run.epochs == [0, 1, 2]
    assert run.dataset == "digits"
    assert set(run.splits) == {"train", "test"}
    adv = run.adversarial()
    assert (adv.source, adv.target) == (8, 0)
    assert adv.steps == demo.DEMO_ADVERSARIAL["steps"]
    # The adversarial examples are the attacked split's probes of the source class.
    assert np.all(run.labels(adv.split)[adv.example_index] == 8)
    m = run.metrics("test")
    assert m["class_loss"].shape == (3, 10)


def test_demo_refuses_to_replace_a_run_without_overwrite(demo_out, capsys):
    before = sorted(p.name for p in (demo_out / "run").iterdir())
    rc = main(["demo", "--no-serve", "--out", str(demo_out), "--epochs", "1", "--frames", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--overwrite" in err and "run" in err
    assert sorted(p.name for p in (demo_out / "run").iterdir()) == before
    assert _n_frames(demo_out / "tesseract.gif") == 4  # nothing was redrawn either


def test_demo_overwrite_replaces_the_run(demo_out, capsys):
    from grandtour.store import Run

    rc = main(["demo", "--no-serve", "--out", str(demo_out), "--epochs", "1", "--frames", "2", "--overwrite"])
    assert rc == 0
    assert Run.open(demo_out / "run").epochs == [0, 1]
    assert _n_frames(demo_out / "training-dynamics.gif") == 2
    out = capsys.readouterr().out
    for name in WARM_UP + FROM_RUN + ("class-loss.png",):
        assert str(demo_out / name) in out  # the summary says where every output went


def test_demo_without_the_training_extras_draws_the_warm_up_and_says_how(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(demo, "_missing_pipeline", lambda: ["torch"])
    rc = main(["demo", "--no-serve", "--out", str(tmp_path / "d"), "--frames", "3"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(WARM_UP)
    assert all(_n_frames(tmp_path / "d" / n) == 3 for n in WARM_UP)
    out = capsys.readouterr().out
    assert "torch" in out and "pip install" in out


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--frames", "0"), ("--seed", "-1")])
def test_demo_rejects_bad_numbers(tmp_path, capsys, flag, value):
    rc = main(["demo", "--no-serve", "--out", str(tmp_path / "d"), flag, value])
    assert rc == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("n", [3, 4, 10, 17])
def test_polygon_frame_is_orthonormal_with_axes_equally_spaced(n):
    F = demo.polygon_frame(n)
    np.testing.assert_allclose(F.T @ F, np.eye(2), atol=1e-12)
    radii = np.linalg.norm(F, axis=1)
    np.testing.assert_allclose(radii, np.sqrt(2 / n))
    gaps = np.linalg.norm(F - np.roll(F, 1, axis=0), axis=1)
    np.testing.assert_allclose(gaps, gaps[0])
