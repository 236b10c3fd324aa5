"""``factortopy paint``: each map to PNG/SVG/PDF, grids, the HTML page, and clear errors."""
from __future__ import annotations

import argparse

import pytest

pytest.importorskip("nilearn")
from factortopy.cli import paint as cli_paint  # noqa: E402


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli_paint.add_arguments(parser)
    return cli_paint.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, write_run):
    base = tmp_path_factory.mktemp("runs")
    write_run(base / "a", seed=0, name="clip_vit_b16")
    write_run(base / "b", seed=1, L=8, name="dinov2_s14", full=True)
    write_run(base / "noscores", seed=2, with_scores=False)
    return base


def test_help_is_one_line():
    assert isinstance(cli_paint.HELP, str) and "\n" not in cli_paint.HELP


@pytest.mark.parametrize("what", ["layer", "space", "scale", "channel", "r"])
def test_each_map_to_png(runs, tmp_path, what):
    out = tmp_path / f"{what}.png"
    assert run_cli([str(runs / "a"), "--what", what, "--out", str(out), "--dpi", "40"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_views_hemi_and_formats(runs, tmp_path):
    svg = tmp_path / "m.svg"
    run_cli([str(runs / "a"), "--view", "flat", "ventral", "--hemi", "rh", "--out", str(svg)])
    assert b"<svg" in svg.read_bytes()[:400]
    pdf = tmp_path / "m.pdf"
    run_cli([str(runs / "a"), "--view", "dorsal", "--surface", "pial", "--out", str(pdf)])
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_several_runs_make_a_grid(runs, tmp_path):
    out = tmp_path / "grid.png"
    with pytest.warns(UserWarning, match="not drawn"):  # run b has full-fsaverage vertices
        from factortopy.surface import mesh

        mesh._NOTED_DROP = False
        run_cli([str(runs / "a"), str(runs / "b"), "--what", "layer", "--view", "lateral", "--out", str(out),
                 "--dpi", "40"])
    assert out.stat().st_size > 1000
    from factortopy.viz.paint_runs import paint

    fig = paint([runs / "a", runs / "b"], what=["layer", "r"], views="posterior")
    titles = {ax.get_title() for ax in fig.axes}
    assert {"clip_vit_b16 | planted:subj01", "dinov2_s14 | planted:subj01"} <= titles


def test_html_page(runs, tmp_path):
    pytest.importorskip("plotly")
    out = tmp_path / "m.html"
    run_cli([str(runs / "a"), "--what", "space", "--out", str(out)])
    assert "plotly" in out.read_text(encoding="utf-8")[:200000].lower()


def test_errors_are_clear(runs, tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf or \.html"):
        run_cli([str(runs / "a"), "--out", str(tmp_path / "x.jpg")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_cli([str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="scores.npz missing"):
        run_cli([str(runs / "noscores"), "--what", "r", "--out", str(tmp_path / "x.png")])
    with pytest.raises(FileNotFoundError, match="not a RUN_DIR"):
        run_cli([str(tmp_path), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit):
        run_cli([str(runs / "a"), "--view", "sideways", "--out", str(tmp_path / "x.png")])


def test_through_the_main_command_line(runs, tmp_path):
    from factortopy.cli import main

    out = tmp_path / "main.png"
    assert main(["paint", str(runs / "a"), "--what", "scale", "--view", "posterior", "--out", str(out)]) == 0
    assert out.exists()
    assert main(["paint", str(runs / "a"), "--out", str(tmp_path / "bad.gif")]) == 2
