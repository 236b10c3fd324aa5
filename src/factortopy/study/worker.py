"""One fit of a study as a job: what :func:`factortopy.fitting.distributed.run_sweep` starts as a
process per GPU (``python -m factortopy.study.worker JOB.json``) and what a cluster job runs
(:mod:`factortopy.study.launch`). JOB.json holds ``data`` (a data spec), ``spec`` (the backbone's
spec fields), ``fit`` (FitConfig fields), ``out`` (the RUN_DIR) and ``cache_dir`` (the study's
feature cache)."""
from __future__ import annotations

import os
import sys


def job_for(pair, out: str, device: str) -> dict:
    """The job of a study's (subject, backbone, seed) pair (:class:`factortopy.study.config.Pair`):
    every choice its fit needs, as plain JSON types (the pair's own spec: a generated null's carries
    its seed)."""
    return dict(data=pair.data, spec=pair.spec.to_dict(), fit={**pair.fit, "device": device},
                out=pair.run_dir, cache_dir=os.path.join(out, "features"))


def run_job(job: dict) -> None:
    """Fit one job (a dict as :func:`job_for` makes): an interrupted fit of the same settings in its
    RUN_DIR resumes from its checkpoint."""
    from factortopy.backbones.spec import as_spec
    from factortopy.data import load_subject
    from factortopy.fitting.fit import fit

    fit(load_subject(job["data"]), backbone=as_spec(job["spec"]), out=job["out"], data_spec=job["data"],
        cache_dir=job["cache_dir"], progress=False, **job["fit"])


def main(argv=None) -> int:
    from factortopy.runs import read_json

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m factortopy.study.worker JOB.json", file=sys.stderr)
        return 2
    run_job(read_json(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
