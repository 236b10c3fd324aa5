"""Each of these used to end in a Python traceback or an unclear line (issue 20); now the command
prints one line naming what is wrong and exits 2."""
import numpy as np
import pytest

from factortopy.cli import main


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_layers_list_with_a_family_that_matches_nothing(capsys):
    """Reproduction: `factortopy layers --list nosuchfamily` raised TypeError in the table printer."""
    assert main(["layers", "--list", "nosuchfamily", "--threads", "1"]) == 2  # --threads: no load note
    _one_line_error(capsys, "nosuchfamily", "families:", "OpenAI CLIP")
    assert main(["layers", "--list", "clip"]) == 0  # a matching family still lists its names
    assert "clip-vit-b-16" in capsys.readouterr().out


@pytest.mark.parametrize("arrays, needles", [
    # hemispheres written as names in vertices: int() of 'lh' failed with "invalid literal for int()"
    (dict(vertices=np.array([["lh", "3"], ["lh", "4"], ["rh", "3"]])), ("vertices", "'lh'", "0 = lh")),
    # a hemi key beside vertices was silently ignored (every column read as column 0 says)
    (dict(vertices=np.array([[0, 3], [0, 4], [0, 5]]), hemi=np.array([0, 1, 1])), ("hemi disagrees", "vertices")),
    (dict(vertices=np.array([[0, 3], [0, 4], [0, 5]]), hemi=np.array(["lh", "rh", "rh"])), ("hemi", "'lh'", "0 (lh)")),
    # an object array (a list of mixed Python values) cannot be read without unpickling
    (dict(vertices=np.array([["lh", 3], ["lh", 4], ["rh", 3]], dtype=object)), ("'vertices'", "Python objects")),
], ids=["names in vertices", "hemi disagreeing", "hemi names", "object array"])
def test_a_generic_npz_whose_hemispheres_are_strings(tmp_path, capsys, arrays, needles):
    path = tmp_path / "mine.npz"
    np.savez(path, images=np.zeros((24, 8, 8, 3), np.uint8), responses=np.random.default_rng(0).normal(size=(24, 3)),
             **arrays)
    assert main(["fit", "--data", f"generic:{path}", "--backbone", "resnet18", "--random-init",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    _one_line_error(capsys, str(path), *needles)
    assert not (tmp_path / "run").exists()
