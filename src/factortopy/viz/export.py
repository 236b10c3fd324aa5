"""Maps that open in every neuroimaging tool: a run's maps as GIfTI, FreeSurfer and nilearn files.

:func:`export_run` (``factortopy export RUN --out DIR``) writes every single-number map of a run
(:mod:`factortopy.viz.vertex_maps`: expected and most probable layer, space x / y, scale,
receptive-field size, channel clusters, the held-out r and R^2, ``factortopy evaluate``'s r, R^2
and noise-normalised score, ...) for both hemispheres:

- GIfTI: ``DIR/{lh,rh}.<map>.func.gii`` (continuous; one data array per frame for ``layer_probs``) or
  ``.label.gii`` (labels, with their label table: names and colours); the file's metadata name the
  map, the run, its backbone, the layer names and the hemisphere (``AnatomicalStructurePrimary``,
  which Connectome Workbench reads);
- FreeSurfer: ``DIR/{lh,rh}.<map>.mgz`` (what freeview and the NSD release use), and for labels
  ``DIR/<map>.mgz.ctab`` (their colour table, as NSD ships its labels) and ``DIR/{lh,rh}.<map>.annot``
  (freeview's ``annot=``);
- ``DIR/export.json``: what each file holds (the metadata an .mgz has no room for).

Files cover whole hemispheres of the run's own fsaverage member: the smallest of fsaverage5,
fsaverage6 and fsaverage holding every vertex of the run (:func:`factortopy.surface.resolution_of`;
the family is nested, so this loses nothing), or a larger one on request. Vertices outside the run
are NaN (continuous) or 0 (labels). In Python, :func:`surface_images` gives nilearn ``SurfaceImage``
objects of the same maps for nilearn's plotting and maskers.

Why here (viz) and not a ``Run.export`` method: the channel clusters and the expected layer are
computed by ``analysis`` and the label colours are the painted maps' (``viz.colors``), both above
``runs`` in the layering; so the exporter lives beside the painter, and both take the same set of maps.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from factortopy._files import replace_file, replacing
from factortopy.viz import vertex_maps as V

#: file formats :func:`export_run` writes
FORMATS = ("gifti", "mgz")
#: the manifest of an export folder
MANIFEST = "export.json"
#: label 0 (outside the run) in each format's label table: Workbench's and FreeSurfer's conventions
_OUTSIDE = {"gifti": "???", "mgz": "Unknown"}
_STRUCTURE = {"lh": "CortexLeft", "rh": "CortexRight"}


def _maps_of(run):
    """The maps of ``run``: a RUN_DIR (or selectors.npz / planted_truth.npz), a Run, or a maps dict."""
    if isinstance(run, Mapping):
        return run
    if hasattr(run, "maps") and hasattr(run, "path"):  # a factortopy.runs.Run (its maps: a mapping)
        return run.maps()
    from factortopy.runs.maps import load_maps

    return load_maps(run)


def _check_fsaverage(maps) -> None:
    vertex = np.asarray(maps["vertex"])
    if vertex.size and np.all(vertex < 0):
        raise ValueError(f"{maps.get('path', 'the run')} has no fsaverage vertex indices (generic data with "
                         "coords.npy): its maps have no place on fsaverage; use selectors.npz's arrays directly")


def _resolution(maps, resolution: str | None) -> str:
    from factortopy.surface import RESOLUTIONS, resolution_of

    own = resolution_of(maps["vertex"])
    if resolution is None:
        return own
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; valid: {', '.join(RESOLUTIONS)}")
    if RESOLUTIONS[resolution] < RESOLUTIONS[own]:
        raise ValueError(f"the run has vertices beyond {resolution} (its own mesh is {own}): export on {own} or a "
                         "larger member of the family, so that no vertex is lost")
    return resolution


def _on_mesh(maps, vmap: V.VertexMap, resolution: str) -> dict:
    """{hemi: (V,) or (V, F) array}: the map on whole hemispheres, NaN / 0 outside the run."""
    from factortopy.surface import on_resolution

    fill = 0 if vmap.kind == "label" else np.nan
    values = vmap.values.astype(np.int32 if vmap.kind == "label" else np.float32)
    return on_resolution(maps["vertex"], maps["hemi"], values, resolution, fill)


def _run_meta(maps, resolution: str) -> dict:
    """Metadata of every file: the run, its backbone, layer names, the mesh."""
    from factortopy import __version__

    # what the run's maps say of it (Run.describe): viz reads no config
    meta = {"factortopy_version": __version__, "run": os.path.abspath(str(maps.get("path", ""))),
            "title": str(maps.get("title", "")), "kind": str(maps.get("kind") or ""),
            "backbone": str(maps.get("backbone") or ""), "data": str(maps.get("data") or ""), "mesh": resolution}
    if maps.get("layer_names") is not None:
        meta["layer_names"] = [str(x) for x in maps["layer_names"]]
    return meta


def _gifti_meta(run_meta: dict, vmap: V.VertexMap, hemi: str) -> dict:
    meta = {"AnatomicalStructurePrimary": _STRUCTURE[hemi], "Name": vmap.name, "Description": vmap.description}
    for k, v in run_meta.items():
        meta[f"factortopy:{k.removeprefix('factortopy_')}"] = json.dumps(v) if isinstance(v, list) else str(v)
    if vmap.unit:
        meta["factortopy:unit"] = vmap.unit
    return meta


def write_gifti(path: str, data: np.ndarray, vmap: V.VertexMap, meta: dict) -> None:
    """One hemisphere of a map as GIfTI: float32 data arrays (one per frame, named), or an int32
    NIFTI_INTENT_LABEL array with the map's label table (key 0 = outside the run, "???")."""
    import nibabel as nib
    from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiLabel, GiftiLabelTable, GiftiMetaData

    img = GiftiImage(meta=GiftiMetaData(meta))
    if vmap.kind == "label":
        table = GiftiLabelTable()
        for key, (name, rgba) in [(0, (_OUTSIDE["gifti"], (0.0, 0.0, 0.0, 0.0)))] + sorted(vmap.labels.items()):
            label = GiftiLabel(key=int(key), red=rgba[0], green=rgba[1], blue=rgba[2], alpha=rgba[3])
            label.label = name
            table.labels.append(label)
        img.labeltable = table
        img.add_gifti_data_array(GiftiDataArray(data.astype(np.int32), intent="NIFTI_INTENT_LABEL",
                                                datatype="NIFTI_TYPE_INT32", meta=GiftiMetaData({"Name": vmap.name})))
    else:
        frames = data[:, None] if data.ndim == 1 else data
        names = vmap.frame_names or [vmap.name]
        for f in range(frames.shape[1]):
            img.add_gifti_data_array(GiftiDataArray(np.ascontiguousarray(frames[:, f], np.float32),
                                                    intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32",
                                                    meta=GiftiMetaData({"Name": str(names[f])})))
    replace_file(path, lambda tmp: nib.save(img, tmp), by_path=True)


def write_mgz(path: str, data: np.ndarray) -> None:
    """One hemisphere as FreeSurfer MGH: (V, 1, 1) or (V, 1, 1, F), float32 or int32 (the NSD layout)."""
    import nibabel as nib

    shaped = data.reshape((data.shape[0], 1, 1) + data.shape[1:])
    replace_file(path, lambda tmp: nib.save(nib.MGHImage(shaped, np.eye(4)), tmp), by_path=True)


def _rgb255(rgba) -> list[int]:
    return [int(round(255 * float(c))) for c in rgba[:3]]


def write_ctab(path: str, vmap: V.VertexMap) -> None:
    """The label table as a FreeSurfer colour table: ``key name R G B 0`` per line (key 0 = outside)."""
    with replacing(path, "w") as f:
        f.write(f"# {vmap.name}: {vmap.description}\n")
        f.write(f"0 {_OUTSIDE['mgz']} 0 0 0 0\n")
        for key, (name, rgba) in sorted(vmap.labels.items()):
            f.write(f"{key} {name.replace(' ', '_')} {' '.join(map(str, _rgb255(rgba)))} 0\n")


def write_annot(path: str, data: np.ndarray, vmap: V.VertexMap) -> None:
    """One hemisphere of a label map as a FreeSurfer annotation (vertices outside the run unlabelled)."""
    import nibabel as nib

    keys = sorted(vmap.labels)
    index = np.full(len(data), -1, np.int32)
    for i, k in enumerate(keys):
        index[data == k] = i
    ctab = np.array([_rgb255(vmap.labels[k][1]) + [0] for k in keys], np.int32)
    names = [vmap.labels[k][0] for k in keys]
    replace_file(path, lambda tmp: nib.freesurfer.write_annot(tmp, index, ctab, names, fill_ctab=True), by_path=True)


def _claim(out: str) -> None:
    """``out`` must be new, empty or an earlier export (whose files are then removed): an export
    never replaces files it did not write."""
    if os.path.isfile(out):
        raise ValueError(f"--out {out} is a file: choose a folder for the exported maps")
    if not os.path.isdir(out) or not os.listdir(out):
        os.makedirs(out, exist_ok=True)
        return
    manifest = os.path.join(out, MANIFEST)
    if not os.path.isfile(manifest):
        raise ValueError(f"--out {out} holds other files: choose a new or empty folder (an export never replaces "
                         "files it did not write)")
    from factortopy.runs import read_json

    old = read_json(manifest)
    for entry in old.get("maps", []):
        for name in entry.get("files", []):
            path = os.path.join(out, os.path.basename(name))
            if os.path.isfile(path):
                os.remove(path)
    os.remove(manifest)


def export_run(run, out, maps=None, formats=FORMATS, resolution: str | None = None, n_clusters: int = 20,
               progress: bool = False) -> dict:
    """Write the maps of ``run`` into the folder ``out`` (see the module docstring).

    run: a RUN_DIR (or selectors.npz / planted_truth.npz), a :class:`~factortopy.runs.Run`, or a
    maps dict. maps: names to write (default every one the run has,
    :func:`factortopy.viz.vertex_maps.available`). formats: any of ``'gifti'``, ``'mgz'``.
    resolution: 'fsaverage5', 'fsaverage6' or 'fsaverage' (default the run's own). n_clusters:
    channel clusters. ``out`` must be new, empty, or an earlier export (replaced).
    Returns the manifest written to ``out/export.json``.
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise ValueError(f"unknown format(s) {bad}; valid: {', '.join(FORMATS)}")
    data = _maps_of(run)
    _check_fsaverage(data)
    resolution = _resolution(data, resolution)
    names = V.available(data) if maps is None else ([maps] if isinstance(maps, str) else list(maps))
    for name in names:  # every name checked before anything is written
        if name not in V.available(data):
            V.vertex_map(data, name)  # raises, listing the run's maps
    out = os.fspath(out)
    _claim(out)
    run_meta = _run_meta(data, resolution)
    manifest = dict(run_meta, fill={"continuous": "NaN", "label": 0}, maps=[])
    for i, name in enumerate(names):
        if progress:
            print(f"[export] {i + 1}/{len(names)} {name}", flush=True)
        vmap = V.vertex_map(data, name, n_clusters)
        on = _on_mesh(data, vmap, resolution)
        files = []
        for hemi, values in on.items():
            if "gifti" in formats:
                fname = f"{hemi}.{name}.{'label' if vmap.kind == 'label' else 'func'}.gii"
                write_gifti(os.path.join(out, fname), values, vmap, _gifti_meta(run_meta, vmap, hemi))
                files.append(fname)
            if "mgz" in formats:
                write_mgz(os.path.join(out, f"{hemi}.{name}.mgz"), values)
                files.append(f"{hemi}.{name}.mgz")
                if vmap.kind == "label":
                    write_annot(os.path.join(out, f"{hemi}.{name}.annot"), values, vmap)
                    files.append(f"{hemi}.{name}.annot")
        if "mgz" in formats and vmap.kind == "label":
            write_ctab(os.path.join(out, f"{name}.mgz.ctab"), vmap)
            files.append(f"{name}.mgz.ctab")
        entry = {"name": name, "kind": vmap.kind, "description": vmap.description, "files": files}
        if vmap.unit:
            entry["unit"] = vmap.unit
        if vmap.frame_names:
            entry["frames"] = list(vmap.frame_names)
        if vmap.labels is not None:
            entry["labels"] = {str(k): v[0] for k, v in sorted(vmap.labels.items())}
        manifest["maps"].append(entry)
    from factortopy.runs import write_json

    write_json(os.path.join(out, MANIFEST), manifest)
    return manifest


def surface_images(run, maps=None, resolution: str | None = None, surface: str = "pial",
                   mesh_dir: str | None = None, nsd_root: str | None = None, n_clusters: int = 20) -> dict:
    """The maps of ``run`` as nilearn ``SurfaceImage`` objects, {name: SurfaceImage}.

    Each holds ``data.parts['left']`` / ``['right']`` of shape (V,) (or (V, F) for frames) on the
    run's own fsaverage member (``resolution`` to choose a larger one), NaN / 0 outside the run, on
    the mesh of ``surface`` (nilearn's convention: 'pial'; 'inflated', 'white', 'sphere' too).
    fsaverage5 comes with nilearn; fsaverage6 and full fsaverage are found where you keep them
    (``mesh_dir``, the run's NSD release or ``nsd_root``, ``$SUBJECTS_DIR``, ...:
    :func:`factortopy.surface.find_fsaverage`). Label maps hold int32 keys; their names and colours
    are :func:`factortopy.viz.vertex_maps.vertex_map`'s ``labels``.
    """
    from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage

    from factortopy.surface import load_fsaverage
    from factortopy.viz.meshes import nsd_root_of

    data = _maps_of(run)
    _check_fsaverage(data)
    resolution = _resolution(data, resolution)
    mesh = load_fsaverage(resolution, surface, mesh_dir, nsd_root or nsd_root_of(data))
    # copies: our meshes are cached read-only, and nilearn's plotting shifts coordinates in place
    poly = PolyMesh(**{side: InMemoryMesh(np.array(mesh[h].coords, float), np.array(mesh[h].faces))
                       for side, h in (("left", "lh"), ("right", "rh"))})
    out = {}
    for name, vmap in V.vertex_maps(data, maps, n_clusters).items():
        on = _on_mesh(data, vmap, resolution)
        out[name] = SurfaceImage(mesh=poly, data={"left": on["lh"], "right": on["rh"]})
    return out
