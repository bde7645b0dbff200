"""The audio-visual clip datasets `crema_d` and `kinetics_sounds`: decoding, transforms, sources.

Layout, parameters and shapes: see av_meta. Each sample is
- "audio": 1 x (n_fft/2+1) x T log-magnitude spectrogram, log(|STFT| + 1e-7), of the clip's
  sound resampled to `sample_rate` (scipy's polyphase resampler), averaged over channels, tiled
  (short clips) or cut (long clips) to `seconds`, clipped to [-1, 1]; Hann window, centred;
- "visual": frames x 3 x image_size x image_size, ImageNet-normalised.

Every frame is first brought to a canonical square of side round(1.15 * image_size) by a plain
(aspect-ignoring) resize of the whole frame, the same on the decoding path and in the cache
written by `igm prepare`, so that both give identical tensors. Training then takes a random
resized crop (scale 0.08-1, aspect 3/4-4/3) with a random horizontal flip; evaluation resizes the
square to image_size. Which frames are read is `frame_train` in training (default: at random) and
`frame_eval` in evaluation (default: the centres of equal spans); see av_frames. The audio is
deterministic in both modes.

Errors name the offending file: a missing root or CSV, a clip without its WAV or frames folder
(or, with skip_missing, a warning and a count in info["skipped"]), an unreadable or empty WAV, a
corrupt JPEG, an unknown label.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from scipy.signal import resample_poly
from sklearn.model_selection import train_test_split

from igm_core.data import av_cache, image_aug
from igm_core.data.av_frames import choose_frames, eval_generator, list_frames
from igm_core.data.av_meta import (
    AUDIO,
    FRAMES_DIR,
    MODALITIES,
    VISUAL,
    Annotations,
    AVParams,
    Clip,
    CremaDParams,
    KineticsSoundsParams,
    Row,
    n_samples,
    read_annotations,
    store_size,
    wav_dir,
)
from igm_core.data.base import SPLITS, DatasetSplit, MultimodalData
from igm_core.data.device_aug import augment_frames
from igm_core.paths import inside

log = logging.getLogger(__name__)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SCALE = torch.from_numpy(1.0 / (255.0 * STD)).view(3, 1, 1)
_OFFSET = torch.from_numpy(-MEAN / STD).view(3, 1, 1)
EPS = 1e-7
# The validation split carved from train does not move with the run seed, so runs with
# different seeds select checkpoints on the same clips.
VAL_SEED = 0
AUG_KEY = "visual.aug"  # with augment: device, each frame's crop box and flip (x0, y0, x1, y1, f)


# ----------------------------------------------------------------------------- audio


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate; ValueError naming the file when unreadable."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise ValueError(f"{path}: cannot read WAV ({err})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: empty WAV (no samples)")
    return data.mean(axis=1), int(rate)


def waveform(path: Path, p: AVParams) -> np.ndarray:
    """The clip's sound at p.sample_rate, tiled or cut to p.seconds, in [-1, 1]."""
    x, rate = read_wav(path)
    if rate != p.sample_rate:
        g = math.gcd(rate, p.sample_rate)
        x = resample_poly(x, p.sample_rate // g, rate // g).astype(np.float32)
    target = n_samples(p)
    if x.shape[0] < target:
        # Short clips repeat (the authors' np.tile), rather than pad with silence.
        x = np.tile(x, -(-target // x.shape[0]))
    return np.clip(x[:target], -1.0, 1.0)


def spectrogram(wave: np.ndarray, p: AVParams) -> torch.Tensor:
    """1 x (n_fft/2+1) x (1 + len // hop) log-magnitude STFT (Hann window, centred)."""
    s = torch.stft(
        torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
        n_fft=p.n_fft,
        hop_length=p.hop,
        window=torch.hann_window(p.n_fft),
        center=True,
        pad_mode="constant",  # librosa's default since 0.10, which the authors used
        return_complex=True,
    )
    return torch.log(s.abs() + EPS).unsqueeze(0)


# ----------------------------------------------------------------------------- frames


def read_frame(path: Path, side: int) -> np.ndarray:
    """The whole frame resized (aspect ignored) to side x side x 3 uint8."""
    try:
        with Image.open(path) as im:
            # Lets the JPEG decoder downscale by 2/4/8 while decoding large frames: much faster.
            im.draft("RGB", (side, side))
            rgb = im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from None
    return np.asarray(rgb, dtype=np.uint8)


def crop_box(rng: np.random.Generator, side: int) -> tuple[int, int, int, int]:
    """A random resized crop box (scale 0.08-1, aspect 3/4-4/3) inside a side x side square."""
    return image_aug.crop_box(rng, side, 0.08)


def frame_tensor(square: np.ndarray, size: int, rng: np.random.Generator | None) -> torch.Tensor:
    """3 x size x size float32, normalised; random crop and flip when rng is given."""
    im = Image.fromarray(square)
    box = crop_box(rng, square.shape[0]) if rng is not None else None
    im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if rng is not None and rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # on uint8: cheaper than on floats
    # (x / 255 - mean) / std as one multiply-add, in place: half the time of the plain formula
    t = torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous().to(torch.float32)
    return t.mul_(_SCALE).add_(_OFFSET)


# ----------------------------------------------------------------------------- clips and splits


def _resolve(row: Row, wav: Path, folder: Path, max_frames: int | None) -> Clip | str:
    """The clip, or why it cannot be used (a message naming the missing path)."""
    where = f"listed in {row.csv} row {row.line}"
    if not wav.is_file():
        return f"{wav}: missing WAV for clip {row.clip!r} ({where})"
    if not folder.is_dir():
        return f"{folder}: missing frames folder for clip {row.clip!r} ({where})"
    frames = list_frames(folder, max_frames)
    if not frames:
        return f"{folder}: no .jpg frames for clip {row.clip!r} ({where})"
    root = row.csv.parent.parent  # root/annotations/<split>.csv
    for path in (wav, folder, *frames):  # names from a CSV, links in the folders: stay inside
        inside(root, path, f"clip {row.clip[:100]!r} ({where})")
    return Clip(row.clip, row.label, wav, frames)


def resolve_clips(
    dataset: str, ann: Annotations, p: AVParams
) -> tuple[dict[str, list[Clip]], list[str]]:
    """Clips per annotated split and the problems of those skipped (raises unless skip_missing)."""
    out: dict[str, list[Clip]] = {}
    problems: list[str] = []
    for split, rows in ann.rows.items():
        clips = []
        for row in rows:
            wav = ann.root / wav_dir(dataset, split) / f"{row.clip}.wav"
            got = _resolve(row, wav, ann.root / FRAMES_DIR / row.clip, p.max_frames)
            if isinstance(got, str):
                if not p.skip_missing:
                    raise FileNotFoundError(got)
                problems.append(got)
            else:
                clips.append(got)
        if not clips:
            raise ValueError(f"{rows[0].csv}: no usable clips (all {len(rows)} skipped)")
        out[split] = clips
    return out, problems


def carve_val(clips: list[Clip], fraction: float, n_classes: int) -> tuple[list[Clip], list[Clip]]:
    """Stratified train/val split of the train clips with a fixed seed, in listing order."""
    labels = np.array([c.label for c in clips])
    present = len(np.unique(labels))
    # at least one clip per class, which stratification needs
    n_val = max(round(fraction * len(clips)), present)
    if len(clips) - n_val < present:
        raise ValueError(f"too few train clips ({len(clips)}) to carve a stratified validation set")
    try:
        train, val = train_test_split(
            np.arange(len(clips)), test_size=n_val, stratify=labels, random_state=VAL_SEED
        )
    except ValueError as err:  # e.g. a class with a single clip
        raise ValueError(f"cannot carve a stratified validation set from train ({err})") from None
    return [clips[i] for i in sorted(train)], [clips[i] for i in sorted(val)]


@dataclass
class Plan:
    """What a clip dataset resolves to: clips per split, classes, and how val was obtained."""

    dataset: str
    params: AVParams
    ann: Annotations
    clips: dict[str, list[Clip]]
    skipped: list[str]
    val: dict[str, Any]


def plan(dataset: str, p: AVParams) -> Plan:
    """Read the annotations and resolve every clip's files; carve val when valid.csv is absent."""
    ann = read_annotations(dataset, p.root)
    clips, skipped = resolve_clips(dataset, ann, p)
    if "val" in clips:
        val_info: dict[str, Any] = {"source": str(ann.rows["val"][0].csv)}
    else:
        clips["train"], clips["val"] = carve_val(clips["train"], p.val_fraction, ann.n_classes)
        val_info = {
            "source": f"carved from {ann.rows['train'][0].csv}",
            "fraction": p.val_fraction,
            "stratified": True,
            "seed": VAL_SEED,
        }
    if skipped:
        log.warning(
            "%s: skipped %d clips without files, e.g. %s", ann.root, len(skipped), skipped[0]
        )
    return Plan(dataset, p, ann, {s: clips[s] for s in SPLITS}, skipped, val_info)


# ----------------------------------------------------------------------------- samples


class AVSource:
    """Loads a clip's spectrogram and frames, from the prepared cache or by decoding."""

    def __init__(self, clips: list[Clip], p: AVParams, cache: av_cache.CachedSplit | None) -> None:
        self.modalities = list(MODALITIES)
        self.clips, self.params, self.cache = clips, p, cache
        self.labels = np.array([c.label for c in clips], dtype=np.int64)
        self.side = store_size(p)

    def decode_audio(self, index: int) -> torch.Tensor:
        return spectrogram(waveform(self.clips[index].wav, self.params), self.params)

    def decode_frames(self, index: int, which: list[int] | None = None) -> np.ndarray:
        """Canonical squares (n x side x side x 3 uint8) of the chosen frames (default: all)."""
        paths = self.clips[index].frames
        chosen = range(len(paths)) if which is None else which
        return np.stack([read_frame(paths[i], self.side) for i in chosen])

    def _audio(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return torch.from_numpy(self.cache.audio(index))
        return self.decode_audio(index)

    def frame_indices(self, index: int, rng: np.random.Generator | None) -> list[int]:
        """The clip's frames to read: by frame_train in training (rng given), frame_eval else."""
        n, p = len(self.clips[index].frames), self.params
        if rng is not None:
            return choose_frames(n, p.frames, p.frame_train, rng)
        draw = eval_generator(index) if p.frame_eval == "random" else None
        return choose_frames(n, p.frames, p.frame_eval, draw)

    def _squares(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        which = self.frame_indices(index, rng)
        if self.cache is not None:
            return self.cache.frames(index, which)
        return self.decode_frames(index, which)

    def _visual(self, index: int, rng: np.random.Generator | None) -> torch.Tensor:
        size = self.params.image_size
        return torch.stack([frame_tensor(s, size, rng) for s in self._squares(index, rng)])

    def _visual_raw(
        self, index: int, rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 squares and, per frame, the crop box and flip that frame_tensor would draw
        (same generator, same order: frames, then box and flip frame by frame)."""
        squares = self._squares(index, rng)
        side = squares.shape[1]
        rows = []
        for _ in range(len(squares)):
            if rng is None:
                rows.append((0, 0, side, side, 0))
            else:
                box = crop_box(rng, side)
                rows.append((*box, int(rng.random() < 0.5)))
        return torch.from_numpy(np.ascontiguousarray(squares)), torch.tensor(
            rows, dtype=torch.int32
        )

    def finish_batch(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """With augment: device, the frames of a collated batch (on its device) become the
        normalised crops; otherwise the batch as it is."""
        if AUG_KEY not in xs:
            return xs
        params = xs.pop(AUG_KEY)
        squares = xs[VISUAL]
        b, f = squares.shape[:2]
        size = self.params.image_size
        flat = augment_frames(squares.flatten(0, 1), params.flatten(0, 1), size, _SCALE, _OFFSET)
        xs[VISUAL] = flat.view(b, f, 3, size, size)
        return xs

    def load(
        self, index: int, modalities: list[str], rng: np.random.Generator | None
    ) -> dict[str, torch.Tensor]:
        out = {}
        for m in modalities:
            if m == AUDIO:
                out[m] = self._audio(index)
            elif m == VISUAL and self.params.augment == "device":
                out[m], out[AUG_KEY] = self._visual_raw(index, rng)
            elif m == VISUAL:
                out[m] = self._visual(index, rng)
            else:
                raise KeyError(f"unknown modality {m!r}; this dataset has {', '.join(MODALITIES)}")
        return out


def build(dataset: str, p: AVParams) -> MultimodalData:
    """Plan the dataset, open the up-to-date cache of each split if any, wrap the sources."""
    pl = plan(dataset, p)
    splits, cached = {}, {}
    for split, clips in pl.clips.items():
        cache = av_cache.open_cache(dataset, p, clips) if p.cache else None
        cached[split] = str(cache.path) if cache is not None else None
        source = AVSource(clips, p, cache)
        splits[split] = DatasetSplit(source, num_workers=p.num_workers, pin_memory=True)
    info = {
        "root": str(pl.ann.root),
        "sizes": {s: len(c) for s, c in pl.clips.items()},
        "classes": pl.ann.classes,
        "skipped": len(pl.skipped),
        "val": pl.val,
        "cache": cached,
    }
    return MultimodalData(splits, pl.ann.n_classes, info)


def load_crema_d(params: CremaDParams, seed: int) -> MultimodalData:
    """CREMA-D from root (see av_meta); `seed` is unused: the carved validation split is fixed."""
    del seed
    return build("crema_d", params)


def load_kinetics_sounds(params: KineticsSoundsParams, seed: int) -> MultimodalData:
    """Kinetics-Sounds from root (see av_meta); `seed` is unused."""
    del seed
    return build("kinetics_sounds", params)
