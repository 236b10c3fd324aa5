"""--threads on every command, its default, the oversubscription note, and threads= in Python."""
import argparse
import os

import numpy as np
import pytest
import torch

import factortopy.cli.layers as layers_cmd
from factortopy.cli import COMMANDS, build_parser, main
from factortopy.cli.options import MAX_DEFAULT_THREADS, apply_threads, default_threads


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _machine(monkeypatch, cpus_available, cpus, load):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the machine decides, not the environment
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus_available)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def test_every_command_has_the_threads_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS) and "predict" in sub.choices
    for name, p in sub.choices.items():
        assert "--threads" in p._option_string_actions, name
        assert "--threads N" in p.format_help(), name
    with pytest.raises(SystemExit):
        parser.parse_args(["layers", "--threads", "0"])


def test_the_threads_value_reaches_torch_before_the_work(monkeypatch):
    seen = []
    monkeypatch.setattr(layers_cmd, "run", lambda args: seen.append(torch.get_num_threads()) or 0)
    start = torch.get_num_threads()
    other = 3 if start != 3 else 2
    assert main(["layers", "--list", "--threads", str(other)]) == 0
    assert seen == [other]
    _machine(monkeypatch, 4, 4, 0.0)  # an idle 4-CPU machine: the default is 4
    assert main(["layers", "--list"]) == 0
    assert seen[-1] == 4


@pytest.mark.parametrize("available, cpus, load, expected", [
    (4, 4, 0.0, 4),  # idle: every available CPU
    (2, 2, 3.2, 1),  # oversubscribed: one thread
    (8, 8, 3.0, 5),  # the CPUs the load leaves idle
    (64, 64, 0.0, MAX_DEFAULT_THREADS),  # capped
    (2, 64, 0.0, 2),  # the affinity mask, not the machine's count
])
def test_default_threads(monkeypatch, available, cpus, load, expected):
    _machine(monkeypatch, available, cpus, load)
    assert default_threads() == expected


def test_omp_num_threads_in_the_environment_is_the_default(monkeypatch):
    _machine(monkeypatch, 8, 8, 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # e.g. torchrun's one thread per process
    assert default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert default_threads() == 8


def test_a_note_when_the_machine_is_oversubscribed(monkeypatch, capsys):
    monkeypatch.setattr(layers_cmd, "run", lambda args: 0)
    _machine(monkeypatch, 2, 2, 5.0)
    assert main(["layers", "--list"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "oversubscribed (load average 5.0 on 2 CPUs): using 1 torch thread" in err[0]
    assert main(["layers", "--list", "--threads", "2"]) == 0  # the user chose: no note (issue 20)
    assert capsys.readouterr().err == ""
    assert apply_threads(argparse.Namespace(threads=2, quiet=True)) == 2  # --quiet: no note
    assert capsys.readouterr().err == ""
    _machine(monkeypatch, 2, 2, 1.5)  # busy but not oversubscribed
    assert main(["layers", "--list"]) == 0
    assert capsys.readouterr().err == ""


def test_python_threads_argument_holds_during_the_call_and_is_restored(monkeypatch, tmp_path):
    import factortopy
    from factortopy.estimator import FactorTopyEncoder, torch_threads
    from factortopy.fitting import fit as fit_module

    seen = []
    real_fit = fit_module.fit

    def spy_fit(*args, **kw):
        seen.append(("fit", torch.get_num_threads()))
        return real_fit(*args, **kw)

    monkeypatch.setattr(fit_module, "fit", spy_fit)
    start = torch.get_num_threads()
    other = 3 if start != 3 else 2
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)  # 4 validation and 4 held-out images
    responses = rng.standard_normal((40, 5)).astype(np.float32)
    enc = FactorTopyEncoder("resnet18", random_init=True, img_size=32, epochs=1, dim=4, threads=other)
    enc.fit(images, responses, vertices=np.arange(5), hemi="lh")
    assert seen == [("fit", other)] and torch.get_num_threads() == start

    from factortopy.runs import Run

    real_predict = type(enc.run_).predict

    def spy_predict(self, *args, **kw):
        seen.append(("predict", torch.get_num_threads()))
        return real_predict(self, *args, **kw)

    monkeypatch.setattr(type(enc.run_), "predict", spy_predict)
    enc.predict(images[:2])
    factortopy.predict(enc.run_, images[:2], threads=1)
    assert seen[1:] == [("predict", other), ("predict", 1)] and torch.get_num_threads() == start
    assert issubclass(type(enc.run_), Run)
    with pytest.raises(ValueError, match="positive whole number"):
        with torch_threads(0):
            pass


def test_fit_takes_threads_and_names_unknown_settings(monkeypatch):
    """factortopy.fit(..., threads=N) holds N torch threads while it trains (issue 20: it was a
    TypeError from FitConfig); any other unknown keyword is a TypeError listing the settings."""
    import factortopy
    from factortopy.fitting import fit as fit_module
    from factortopy.estimator import FactorTopyEncoder

    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['thread'\]: settings are the FitConfig fields "
                                        r"\(epochs, batch_size"):
        factortopy.fit(None, "resnet18", thread=1)
    seen = []
    real_train = fit_module.train

    def spy_train(*args, **kw):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kw)

    monkeypatch.setattr(fit_module, "train", spy_train)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    subject = FactorTopyEncoder()._subject(images, rng.standard_normal((40, 5)).astype(np.float32), np.arange(5),
                                           "lh", None, None, "toy")
    start = torch.get_num_threads()
    other = 3 if start != 3 else 2
    factortopy.fit(subject, "resnet18", random_init=True, img_size=32, epochs=1, dim=4, progress=False,
                   threads=other)
    assert seen == [other] and torch.get_num_threads() == start
