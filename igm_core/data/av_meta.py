"""Parameters, annotation reading and torch-free metadata of the audio-visual clip datasets.

Two datasets share one on-disk layout (the one the IGM / OGM-GE authors prepare):

    root/annotations/train.csv, valid.csv (optional), test.csv   rows: clip, label
    root/<wav folder>/<clip>.wav                                  the clip's sound track
    root/Image-01-FPS/<clip>/*.jpg                                frames extracted at 1 fps

- `crema_d`: one wav folder (AudioWAV); labels are the CREMA-D emotion codes NEU HAP SAD FEA DIS
  ANG or their index 0-5; 3 s of audio -> 1 x 257 x 188 log spectrogram; 1 frame.
- `kinetics_sounds`: train_wav (train and valid clips) and test_wav; labels are class names, the
  classes being the sorted set of train.csv's labels; 10 s of audio; 3 frames.

Spectrogram size: torch.stft with center=True gives 1 + floor(samples / hop) frames and
n_fft / 2 + 1 bins. CREMA-D: 22,050 Hz x 3 s = 66,150 samples, hop 353 -> 188 frames.
Kinetics-Sounds: the published 257 x 1003 needs 1 + floor(22,050 x 10 / hop) = 1003, i.e.
hop 220 at 22,050 Hz (220,500 / 220 = 1002.3); with CREMA-D's hop 353 it would be 625 frames.

This module imports pydantic, csv and os only (no torch, no numpy): the web process validates
specs with it. It does not import igm_core.catalog either, so the catalog can import it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from igm_core.paths import inside

AUDIO, VISUAL = "audio", "visual"
MODALITIES = (AUDIO, VISUAL)
CREMA_D_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
ANNOTATIONS = "annotations"
FRAMES_DIR = "Image-01-FPS"
CSV_NAMES = {"train": "train.csv", "val": "valid.csv", "test": "test.csv"}
WAV_DIRS = {
    "crema_d": {"train": "AudioWAV", "val": "AudioWAV", "test": "AudioWAV"},
    "kinetics_sounds": {"train": "train_wav", "val": "train_wav", "test": "test_wav"},
}
# Cached frames keep this much more than the crop size, so training can still crop at random.
STORE_SCALE = 1.15
# Which frames of a clip a sample reads (igm_core/data/av_frames.py applies the rule).
FrameChoice = Literal["random", "centre", "first", "strided"]
# A first row whose label cell is one of these is a header, not a clip.
_HEADER_WORDS = {"label", "labels", "emotion", "class", "category", "classname", "class_name"}


class AVParams(BaseModel):
    """Parameters common to the clip datasets (defaults: CREMA-D's preparation)."""

    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = Field(..., min_length=1, max_length=4096, description="the prepared dataset")
    frames: int = Field(1, ge=1, le=16, description="video frames per sample")
    frame_train: FrameChoice = Field(
        "random",
        description="which frames training reads: random, centre (of equal spans), first (the "
        "IGM authors' loaders) or strided (every floor(n/frames)-th from the first, the MLA "
        "authors' loader)",
    )
    frame_eval: FrameChoice = Field(
        "centre",
        description="which frames evaluation reads (choices as frame_train; random: one fixed "
        "draw per clip)",
    )
    max_frames: int | None = Field(
        None, ge=1, le=1000, description="use at most this many frames per clip (evenly spaced)"
    )
    image_size: int = Field(224, ge=32, le=512, description="frame side after cropping")
    sample_rate: int = Field(22050, ge=1000, le=192_000, description="audio is resampled to it")
    seconds: float = Field(3.0, gt=0.0, le=60.0, description="audio is tiled or cut to it")
    n_fft: int = Field(512, ge=16, le=8192)
    hop: int = Field(353, ge=1, le=8192, description="STFT hop in samples")
    val_fraction: float = Field(
        0.1, gt=0.0, lt=0.5, description="without valid.csv: share of train carved for validation"
    )
    skip_missing: bool = Field(False, description="skip (and count) clips without WAV or frames")
    num_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes")
    cache: bool = Field(True, description="read the `igm prepare` cache when it is up to date")
    cache_dtype: Literal["float16", "float32"] = Field(
        "float16", description="spectrogram dtype in the cache written by `igm prepare`"
    )
    augment: Literal["cpu", "device"] = Field(
        "cpu",
        description="where frames are cropped, resized, flipped and normalised: in the loader "
        "(cpu) or in batches on the training device from the uint8 squares (device); same "
        "random draws, bit-equal tensors",
    )


class CremaDParams(AVParams):
    """CREMA-D: 6 emotions, 3 s of audio (1 x 257 x 188), 1 frame by default."""


class KineticsSoundsParams(AVParams):
    """Kinetics-Sounds: 10 s of audio at hop 220 (1 x 257 x 1003), 3 frames by default."""

    frames: int = Field(3, ge=1, le=16, description="video frames per sample")
    seconds: float = Field(10.0, gt=0.0, le=60.0, description="audio is tiled or cut to it")
    hop: int = Field(220, ge=1, le=8192, description="STFT hop in samples")


def n_samples(p: AVParams) -> int:
    return round(p.sample_rate * p.seconds)


def spectrogram_shape(p: AVParams) -> tuple[int, int, int]:
    """1 x (n_fft / 2 + 1) x (1 + samples // hop): what a centred torch.stft returns."""
    return (1, p.n_fft // 2 + 1, 1 + n_samples(p) // p.hop)


def store_size(p: AVParams) -> int:
    """Side of the square frames kept in the cache (and decoded before any crop)."""
    return round(p.image_size * STORE_SCALE)


@dataclass(frozen=True)
class Row:
    """One annotated clip: where it was listed (for error messages) and its class index."""

    clip: str
    label: int
    csv: Path
    line: int


@dataclass
class Annotations:
    """The rows of each annotation CSV; `rows["val"]` is absent without valid.csv."""

    root: Path
    classes: list[str]
    rows: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def check_root(root: str) -> Path:
    base = Path(root).expanduser()
    if not base.exists():
        raise FileNotFoundError(f"{base}: no such directory (dataset root)")
    if not base.is_dir():
        raise NotADirectoryError(f"{base}: not a directory (dataset root)")
    return base.resolve()


def _read_csv(path: Path) -> list[tuple[int, str, str]]:
    """(line number, clip, raw label) for each data row; a header row is recognised and skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing annotation file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fp:
            rows = enumerate(csv.reader(fp), start=1)
            raw = [(i, r) for i, r in rows if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read as CSV ({err})") from None
    if raw and len(raw[0][1]) >= 2 and raw[0][1][1].strip().lower() in _HEADER_WORDS:
        raw = raw[1:]
    rows = []
    for line, cells in raw:
        if len(cells) < 2 or not cells[0].strip() or not cells[1].strip():
            raise ValueError(f"{path}: row {line}: expected 'clip,label', got {','.join(cells)!r}")
        rows.append((line, cells[0].strip(), cells[1].strip()))
    if not rows:
        raise ValueError(f"{path}: no clips listed")
    return rows


def _crema_label(path: Path, line: int, value: str) -> int:
    if value.upper() in CREMA_D_CLASSES:
        return CREMA_D_CLASSES.index(value.upper())
    if value.isdigit() and int(value) < len(CREMA_D_CLASSES):
        return int(value)
    raise ValueError(
        f"{path}: row {line}: unknown label {value!r}; expected one of "
        f"{' '.join(CREMA_D_CLASSES)} or an integer 0-{len(CREMA_D_CLASSES) - 1}"
    )


def read_annotations(dataset: str, root: str) -> Annotations:
    """Read and check the annotation CSVs of a clip dataset (`crema_d` or `kinetics_sounds`)."""
    base = check_root(root)
    folder = base / ANNOTATIONS
    present = {s: folder / n for s, n in CSV_NAMES.items() if s != "val" or (folder / n).is_file()}
    # a linked annotation file must not lead elsewhere (nor its contents reach an error)
    raw = {split: _read_csv(inside(base, path, f"{ANNOTATIONS}/{path.name}"))
           for split, path in present.items()}  # fmt: skip
    if dataset == "crema_d":
        classes = list(CREMA_D_CLASSES)

        def index(split: str, line: int, value: str) -> int:
            return _crema_label(present[split], line, value)
    else:
        classes = sorted({label for _, _, label in raw["train"]})
        if len(classes) < 2:
            raise ValueError(f"{present['train']}: a single class ({classes[0]!r}); 2 are needed")
        lookup = {name: i for i, name in enumerate(classes)}

        def index(split: str, line: int, value: str) -> int:
            if value not in lookup:
                raise ValueError(
                    f"{present[split]}: row {line}: unknown label {value!r} "
                    f"(not among the {len(classes)} classes of train.csv)"
                )
            return lookup[value]

    ann = Annotations(base, classes)
    for split, rows in raw.items():
        ann.rows[split] = [Row(c, index(split, n, v), present[split], n) for n, c, v in rows]
    return ann


def av_meta(dataset: str, p: AVParams) -> dict[str, Any]:
    """Modalities, per-sample shapes and class count; reads the annotation CSVs only."""
    ann = read_annotations(dataset, p.root)
    return {
        "modalities": list(MODALITIES),
        "shapes": {
            AUDIO: spectrogram_shape(p),
            VISUAL: (p.frames, 3, p.image_size, p.image_size),
        },
        "n_classes": ann.n_classes,
        "sizes": {split: len(rows) for split, rows in ann.rows.items()},
    }


def crema_d_meta(p: CremaDParams) -> dict[str, Any]:
    return av_meta("crema_d", p)


def kinetics_sounds_meta(p: KineticsSoundsParams) -> dict[str, Any]:
    return av_meta("kinetics_sounds", p)


def wav_dir(dataset: str, split: str) -> str:
    return WAV_DIRS[dataset][split]


@dataclass(frozen=True)
class Clip:
    """An annotated clip with its files resolved."""

    name: str
    label: int
    wav: Path
    frames: tuple[Path, ...]
