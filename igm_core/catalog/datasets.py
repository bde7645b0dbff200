"""Dataset entries: name, description, parameter model, loader, torch-free metadata and an
example (igm_core.data.examples) that the tests train for every entry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from igm_core.data.av_meta import (
    CremaDParams,
    KineticsSoundsParams,
    crema_d_meta,
    kinetics_sounds_meta,
)
from igm_core.data.image_text_meta import (
    SarcasmParams,
    Twitter2015Params,
    sarcasm_meta,
    twitter2015_meta,
)
from igm_core.data.params import (
    DIGIT_SHAPES,
    DIGIT_VIEWS,
    NVGESTURE_MODALITIES,
    DigitsParams,
    FeaturesParams,
    NVGestureParams,
    SyntheticParams,
)
from igm_core.registry import Registry

DATASETS = Registry("dataset")


def _synthetic_meta(p: SyntheticParams) -> dict[str, Any]:
    return {
        "modalities": list(p.modalities),
        "shapes": {m: (d,) for m, d in zip(p.modalities, p.dims, strict=True)},
        "n_classes": p.n_classes,
    }


def _digits_meta(p: DigitsParams) -> dict[str, Any]:
    names = list(DIGIT_VIEWS[: p.views])
    return {"modalities": names, "shapes": {m: DIGIT_SHAPES[m] for m in names}, "n_classes": 10}


def _features_meta(p: FeaturesParams) -> dict[str, Any]:
    from igm_core.data.npz import read_meta  # numpy only

    return read_meta(p.root, p.n_classes)


def _nvgesture_meta(p: NVGestureParams) -> dict[str, Any]:
    from igm_core.data.npz import read_meta  # numpy only

    meta = read_meta(p.root, p.n_classes)
    missing = [m for m in NVGESTURE_MODALITIES if m not in meta["modalities"]]
    if missing:
        raise ValueError(
            f"{p.root}: train.npz lacks the NVGesture modalities {missing}; it has "
            f"{meta['modalities']}"
        )
    meta["modalities"] = list(NVGESTURE_MODALITIES)
    return meta


DATASETS.register(
    "synthetic",
    "Generated on the fly from the seed: Gaussian classes per modality with per-modality signal "
    "and difficulty, so that one modality dominates joint training.",
    SyntheticParams,
    "igm_core.data.synthetic:load",
    meta=_synthetic_meta,
    example="igm_core.data.examples:synthetic",
)
DATASETS.register(
    "digits",
    "scikit-learn's handwritten digits (1,797 images, 10 classes) as 2 or 3 image views with "
    "different noise; shipped with scikit-learn, no download.",
    DigitsParams,
    "igm_core.data.digits:load",
    meta=_digits_meta,
    example="igm_core.data.examples:digits",
)
DATASETS.register(
    "features",
    "A lab's own pre-extracted features: root/train.npz, val.npz, test.npz, each with an integer "
    "`label` array and one float array per modality (N x D or N x C x H x W).",
    FeaturesParams,
    "igm_core.data.features:load",
    meta=_features_meta,
    example="igm_core.data.examples:features",
)
DATASETS.register(
    "nvgesture_features",
    "NVGesture's three modalities (rgb, depth, flow) as pre-extracted per-clip features in the "
    "`features` layout (raw I3D needs weights that are not fetched here).",
    NVGestureParams,
    "igm_core.data.nvgesture:load",
    meta=_nvgesture_meta,
    example="igm_core.data.examples:nvgesture_features",
)
DATASETS.register(
    "crema_d",
    "CREMA-D clips: root/annotations/{train,valid?,test}.csv (clip, NEU/HAP/SAD/FEA/DIS/ANG or "
    "0-5), root/AudioWAV/<clip>.wav, root/Image-01-FPS/<clip>/*.jpg -> audio 1x257x188 log "
    "spectrogram (22,050 Hz, 3 s), visual frames x 3 x 224 x 224. `igm prepare crema_d` caches "
    "the decoding.",
    CremaDParams,
    "igm_core.data.av:load_crema_d",
    meta=crema_d_meta,
    example="igm_core.data.examples:crema_d",
)
DATASETS.register(
    "kinetics_sounds",
    "Kinetics-Sounds clips: root/annotations/{train,valid?,test}.csv (clip, class name), "
    "root/{train,test}_wav/<clip>.wav, root/Image-01-FPS/<clip>/*.jpg -> audio 1x257x1003 "
    "(10 s, hop 220), visual 3 x 3 x 224 x 224. `igm prepare kinetics_sounds` caches the decoding.",
    KineticsSoundsParams,
    "igm_core.data.av:load_kinetics_sounds",
    meta=kinetics_sounds_meta,
    example="igm_core.data.examples:kinetics_sounds",
)
DATASETS.register(
    "sarcasm",
    "Sarcasm image-text pairs (2 classes): root/annotations/{train,valid,test}_data.json (lists "
    "of {image, text, label}), root/images/<file> -> text 2 x max_tokens token ids and mask (the "
    "authors' caption rules, a local tokenizer folder), image 3 x 224 x 224. `igm prepare "
    "sarcasm` caches decoded images and tokens.",
    SarcasmParams,
    "igm_core.data.image_text:load_sarcasm",
    meta=sarcasm_meta,
    example="igm_core.data.examples_image_text:sarcasm",
)
DATASETS.register(
    "twitter2015",
    "Twitter-2015 image-text sentiment (3 classes): root/annotations/{train,dev,test}.tsv "
    "(Label, ImageID, String columns, or the release's #1/#2/#3 headers), "
    "root/twitter2015_images/<ImageID> -> text and image as for sarcasm (English words only). "
    "`igm prepare twitter2015` caches decoded images and tokens.",
    Twitter2015Params,
    "igm_core.data.image_text:load_twitter2015",
    meta=twitter2015_meta,
    example="igm_core.data.examples_image_text:twitter2015",
)


def dataset_meta(name: str, params: BaseModel) -> dict[str, Any]:
    """Modalities, input shapes and class count of a dataset, computed without torch."""
    return DATASETS.get(name).extra["meta"](params)
