"""Files in the neuroimaging tools' own formats, written and read WITHOUT factortopy's code: an
fsaverage ``surf`` folder as FreeSurfer lays it out (nibabel's FreeSurfer geometry writer), GIfTI
label tables and metadata parsed from the XML as the GIfTI 1.0 standard defines them, FreeSurfer
colour tables as FreeSurferColorLUT.txt lays them out. numpy, nibabel and the standard library only."""
import os
import xml.etree.ElementTree as ET

import numpy as np

#: vertices per hemisphere of the nested fsaverage family (FreeSurfer's subjects/fsaverage{5,6,})
FAMILY = {"fsaverage5": 10242, "fsaverage6": 40962, "fsaverage": 163842}


def write_fsaverage_surf(folder, resolution="fsaverage", surfaces=("sphere", "inflated", "pial"), seed=0):
    """``folder/{lh,rh}.<surface>`` for ``surfaces`` (FreeSurfer binary geometry) with as many
    vertices as the fsaverage member ``resolution``, plus ``{lh,rh}.sulc``. As in FreeSurfer's own
    fsaverage folders, the first 10,242 vertices are fsaverage5's (nilearn's copy, read here with
    nibabel), so the family is nested; the other vertices are random points on the 100 mm sphere.
    Faces are fsaverage5's. Returns the folder."""
    import nibabel as nib
    import nilearn

    f5 = os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data", "fsaverage5")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = FAMILY[resolution]
    for hemi, side in (("lh", "left"), ("rh", "right")):
        sphere = nib.load(os.path.join(f5, f"sphere_{side}.gii.gz"))
        small, faces = sphere.darrays[0].data.astype(np.float64), sphere.darrays[1].data.astype(np.int32)
        extra = rng.normal(size=(n - len(small), 3))
        extra = 100 * extra / np.linalg.norm(extra, axis=1, keepdims=True)
        coords = np.concatenate([small, extra])
        for k, surface in enumerate(surfaces):
            shift = np.array([0.0, 0.0, 0.0]) if surface == "sphere" else np.array([k, 0.0, 0.0])
            nib.freesurfer.write_geometry(os.path.join(folder, f"{hemi}.{surface}"), coords + shift, faces)
        nib.freesurfer.write_morph_data(os.path.join(folder, f"{hemi}.sulc"), rng.normal(size=n).astype(np.float32))
    return folder


def gifti_header(path):
    """(file metadata {name: value}, label table {key: (name, (r, g, b, a))}) of a GIfTI file, read
    from its XML: ``<GIFTI><MetaData><MD><Name/><Value/></MD>...`` and ``<LabelTable><Label Key=..
    Red=.. Green=.. Blue=.. Alpha=..>name</Label>``."""
    root = ET.parse(path).getroot()
    assert root.tag == "GIFTI"
    meta = {md.findtext("Name"): md.findtext("Value") for md in root.findall("MetaData/MD")}
    table = {}
    for label in root.findall("LabelTable/Label"):
        rgba = tuple(float(label.get(c)) for c in ("Red", "Green", "Blue", "Alpha"))
        table[int(label.get("Key"))] = (label.text, rgba)
    return meta, table


def gifti_arrays(path):
    """[(Intent attribute, array name, data)] of every data array of a GIfTI file: intent and
    name from the XML, the (base64, gzip) bytes decoded by nibabel."""
    import nibabel as nib

    xml = ET.parse(path).getroot().findall("DataArray")
    img = nib.load(path)
    assert len(xml) == len(img.darrays)
    names = [{md.findtext("Name"): md.findtext("Value") for md in x.findall("MetaData/MD")}.get("Name") for x in xml]
    return [(x.get("Intent"), name, np.asarray(da.data)) for x, name, da in zip(xml, names, img.darrays)]


def read_lut(path):
    """{index: (name, (R, G, B))} of a FreeSurfer colour table (``index name R G B A`` lines, # comments)."""
    with open(path) as f:
        rows = [line.split() for line in f if line.split() and not line.lstrip().startswith("#")]
    return {int(p[0]): (p[1], tuple(int(x) for x in p[2:5])) for p in rows}
