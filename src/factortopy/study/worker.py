"""One fit of a study, as its own process (``python -m factortopy.study.worker JOB.json``): what
:func:`factortopy.fitting.distributed.run_sweep` starts, one per GPU. JOB.json holds ``data`` (a
data spec), ``spec`` (the backbone's spec fields), ``fit`` (FitConfig fields), ``out`` (the RUN_DIR)
and ``cache_dir`` (the study's feature cache)."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    from factortopy.backbones.spec import as_spec
    from factortopy.data import load_subject
    from factortopy.fitting.fit import fit
    from factortopy.runs import read_json

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m factortopy.study.worker JOB.json", file=sys.stderr)
        return 2
    job = read_json(argv[0])
    fit(load_subject(job["data"]), backbone=as_spec(job["spec"]), out=job["out"], data_spec=job["data"],
        cache_dir=job["cache_dir"], progress=False, **job["fit"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
