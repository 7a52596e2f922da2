"""One set of defaults: a flag left out, a keyword left out and the demo mean the values of
grandtour.defaults, and every module that has a default reads it from there."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import types

import pytest

from grandtour import defaults
from grandtour.cli import build_parser, main


def _kwdefaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


def test_defaults_import_nothing_heavy():
    code = ("import sys, grandtour.defaults; "
            "print(sorted(m for m in ('torch', 'zarr', 'fastapi', 'matplotlib', 'scipy', 'sklearn')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_flags_left_out_are_the_defaults():
    parse = build_parser().parse_args
    demo = parse(["demo"])
    assert (demo.out, demo.epochs, demo.seed, demo.frames) == \
        (defaults.DEMO_OUT, defaults.DEMO_EPOCHS, defaults.SEED, defaults.FRAMES)
    train = parse(["train", "--out", "r"])
    assert train.device == defaults.DEVICE
    adv = parse(["adversarial", "r"])
    assert (adv.source, adv.target, adv.steps, adv.eps, adv.device) == \
        (str(defaults.FGSM_SOURCE), str(defaults.FGSM_TARGET), defaults.FGSM_STEPS,
         defaults.FGSM_EPS, defaults.DEVICE)
    assert parse(["align", "r"]).threshold == defaults.ALIGN_THRESHOLD
    assert parse(["serve", "r"]).host == defaults.HOST


def test_cli_help_states_the_defaults_of_flags_resolved_later(capsys):
    """Flags whose default depends on the dataset or the run parse to None; their help
    must state the values train_command then uses."""
    text = _help(capsys, "train")
    for expected in (f"default: {defaults.ARTICLE_EPOCHS} as in the article",
                     f"{defaults.EPOCHS['digits']} for digits",
                     f"default: {defaults.PROBE_SIZE}", f"random seed (default: {defaults.SEED})",
                     f"default: {defaults.BATCH_SIZE}", f"default: {defaults.LR}",
                     f"{defaults.DATASET_TRAINING['digits']['lr']} for digits",
                     f"default: {defaults.MOMENTUM}", f"default: {defaults.DATASET}"):
        assert expected in text, expected
    assert f"default: {defaults.PORT}" in _help(capsys, "serve")
    assert f"default: {defaults.PORT}" in _help(capsys, "demo")


@pytest.mark.parametrize("name", defaults.DATASETS)
def test_train_command_without_flags_trains_with_the_datasets_defaults(monkeypatch, name):
    import grandtour.train.command as command

    calls = {}
    monkeypatch.setattr(command, "load_dataset",
                        lambda n, root=None, download=False: types.SimpleNamespace(name=n))
    monkeypatch.setattr(command, "train", lambda dataset, out, **kw: calls.update(kw) or "run")
    monkeypatch.setattr(command, "training_summary", lambda run, **kw: "summary")
    args = argparse.Namespace(dataset=name, data_dir=None, download=False, out="r", epochs=None,
                              probe_size=None, seed=None, device="cpu", batch_size=None, lr=None,
                              momentum=None, logit_relu=None, resume=False, overwrite=False,
                              align=False)
    assert command.train_command(args) == 0
    expected = defaults.training_defaults(name)
    assert {k: calls[k] for k in expected} == expected
    assert expected["lr"] == (0.05 if name == "digits" else defaults.LR)  # the table is read


def test_library_keywords_are_the_defaults():
    from grandtour.demo import DEMO_ADVERSARIAL, DEMO_TRAINING, render_softmax_tour
    from grandtour.render import render_frames, render_tour
    from grandtour.train import train

    kw = _kwdefaults(train)
    assert {k: kw[k] for k in ("probe_size", "seed", "device", "batch_size", "lr", "momentum",
                               "logit_relu")} == \
        {"probe_size": defaults.PROBE_SIZE, "seed": defaults.SEED, "device": defaults.DEVICE,
         "batch_size": defaults.BATCH_SIZE, "lr": defaults.LR, "momentum": defaults.MOMENTUM,
         "logit_relu": defaults.LOGIT_RELU}
    for fn in (render_tour, render_frames, render_softmax_tour):
        kw = _kwdefaults(fn)
        assert kw["frames"] == defaults.FRAMES and kw["seed"] == defaults.SEED
    assert _kwdefaults(render_tour)["fps"] == defaults.FPS
    # The demo trains the digits network as `grandtour train --dataset digits` does.
    digits = defaults.training_defaults("digits")
    assert {k: digits[k] for k in DEMO_TRAINING} == DEMO_TRAINING
    assert DEMO_ADVERSARIAL == {"source": defaults.FGSM_SOURCE, "target": defaults.FGSM_TARGET,
                                "steps": defaults.FGSM_STEPS, "eps": defaults.FGSM_EPS}


def test_datasets_are_listed_once():
    from grandtour import cli, data

    assert cli.DATASETS == data.DATASETS == defaults.DATASETS
    assert set(defaults.EPOCHS) == set(defaults.DATASETS)


def test_the_other_modules_defaults_equal_these():
    """align, server, store, adversarial and record state the same values."""
    from grandtour import adversarial, align, record, server, store

    assert align.DEFAULT_THRESHOLD == defaults.ALIGN_THRESHOLD
    assert (server.DEFAULT_HOST, server.DEFAULT_PORT) == (defaults.HOST, defaults.PORT)
    assert store.CHUNK_BYTES == defaults.CHUNK_BYTES
    kw = _kwdefaults(adversarial.run_adversarial)
    assert (kw["source"], kw["target"], kw["steps"], kw["eps"], kw["device"]) == \
        (defaults.FGSM_SOURCE, defaults.FGSM_TARGET, defaults.FGSM_STEPS, defaults.FGSM_EPS,
         defaults.DEVICE)
    assert _kwdefaults(record.select_probes)["size"] == defaults.PROBE_SIZE
    assert _kwdefaults(record.Recorder)["batch_size"] == defaults.FORWARD_BATCH


def test_every_default_is_exported():
    """`from grandtour.defaults import *` and the API docs see every default the module defines."""
    defined = {name for name, value in vars(defaults).items()
               if name.isupper() and not isinstance(value, types.ModuleType)}
    assert defined <= set(defaults.__all__), sorted(defined - set(defaults.__all__))
    assert all(hasattr(defaults, name) for name in defaults.__all__)
