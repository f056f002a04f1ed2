"""Photo transforms (timm parts) and the training loader: shapes, crops, flips, seeding, order."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from geocell_engine.data.loader import EpochBatches, PhotoDataset, collate_photos, epoch_order, make_loader
from geocell_engine.data.splits import balanced_weights
from geocell_engine.data.transforms import (
    BatchErasing,
    EvalDecoder,
    PhotoTransformSettings,
    decode_side,
    image_hw,
    photo_eval_transform,
    photo_train_transform,
)
from geocell_engine.engine.config import resolve_config
from geocell_engine.errors import ConfigError


def _halves(width=160, height=90) -> Image.Image:
    """Left half red, right half blue."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(a)


@pytest.mark.parametrize("size,hw", [("320x180", (180, 320)), ("130x80", (80, 130)), (64, (64, 64))])
def test_non_square_sizes_parse_and_come_out_in_that_shape(size, hw):
    config = resolve_config({"image_size": str(size)})
    assert image_hw(config.image_size) == hw
    settings = PhotoTransformSettings.from_config(config)
    frame = _halves(1600, 900)
    assert photo_train_transform(settings)(frame).shape == (3, *hw)
    assert photo_eval_transform(settings)(frame).shape == (3, *hw)


@pytest.mark.parametrize("text", ["320x", "x180", "0x10", "big", "3.5"])
def test_bad_image_sizes_are_refused_by_name(text):
    with pytest.raises(ConfigError, match=r"--image-size: image_size must be .*WIDTHxHEIGHT"):
        resolve_config({"image_size": text})


def test_a_square_written_as_wxh_is_its_side():
    assert resolve_config({"image_size": "64x64"}).image_size == 64


@pytest.mark.parametrize("spec,problem", [("rnd-m6", "start with 'rand-'"), ("rand-mx-n2", "unknown part 'mx'")])
def test_rand_augment_specs_timm_would_misread_are_refused(spec, problem):
    with pytest.raises(ConfigError, match=problem):
        resolve_config({"rand_augment": spec})


def test_letterbox_pads_and_crop_does_not():
    frame = Image.new("RGB", (1600, 900), (250, 250, 250))  # 16:9 into a square
    crop = PhotoTransformSettings(64, 64, frame_fit="crop")
    box = PhotoTransformSettings(64, 64, frame_fit="letterbox", mean=(0.0, 0.0, 0.0))
    cropped, boxed = photo_eval_transform(crop)(frame), photo_eval_transform(box)(frame)
    assert cropped.min() >= 245  # all image
    assert boxed[:, 0].max() == 0 and boxed[:, -1].max() == 0  # black bars top and bottom
    assert boxed[:, 32].min() >= 245  # the frame in the middle, whole width


def test_crop_pct_crops_the_centre():
    a = np.zeros((100, 100, 3), np.uint8)
    a[25:75, 25:75] = 255  # a white centre square, half the side
    img = Image.fromarray(a)
    whole = photo_eval_transform(PhotoTransformSettings(50, 50, crop_pct=1.0))(img)
    centre = photo_eval_transform(PhotoTransformSettings(50, 50, crop_pct=0.5))(img)
    assert 0.2 < whole.mean() / 255 < 0.3  # a quarter of the area is white
    assert centre.mean() / 255 > 0.95


def test_photo_flip_is_off_by_default_and_flips_when_asked():
    frame = _halves()
    plain = PhotoTransformSettings(90, 160, crop_scale=1.0, rotate_deg=0.0, color_jitter=0.0)
    flipped = PhotoTransformSettings(90, 160, crop_scale=1.0, rotate_deg=0.0, color_jitter=0.0, hflip=1.0)
    for seed in range(10):
        random.seed(seed)
        torch.manual_seed(seed)
        out = photo_train_transform(plain)(frame)
        assert out[0, :, :40].mean() > 200 and out[2, :, :40].mean() < 50  # red stays left
        out = photo_train_transform(flipped)(frame)
        assert out[2, :, :40].mean() > 200  # blue on the left
    assert resolve_config({}).hflip == 0.0


def test_rand_augment_and_rotation_are_in_the_training_pipeline():
    settings = PhotoTransformSettings(64, 64, rand_augment="rand-m6-n2", rotate_deg=10.0)
    names = [type(t).__name__ for t in photo_train_transform(settings).transforms]
    assert "RandAugment" in names and "RandomResizedCropRotation" in names
    assert "RandomHorizontalFlip" not in names


def test_decode_side_keeps_what_the_crop_needs():
    s = PhotoTransformSettings(180, 320, crop_pct=0.8)
    assert decode_side(s, training=True) == 320 and decode_side(s, training=False) == 400
    assert decode_side(PhotoTransformSettings(224, 224, random_crop=448), training=True) is None


def test_batch_erasing_replaces_boxes_with_noise_and_leaves_the_rest():
    random.seed(0)
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    x = torch.full((8, 3, 32, 32), 0.5)
    y = BatchErasing(1.0, mean, std)(x.clone())
    changed = (y != x).any(dim=1)
    assert all(changed[i].any() for i in range(8))  # probability 1: every image has a box
    assert changed.float().mean() < 0.5  # boxes, not whole images
    assert float(y[~changed.unsqueeze(1).expand_as(y)].sub(0.5).abs().max()) < 1e-6


def _jpegs(tmp_path, n=12):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(str(p))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    return paths + [str(tmp_path / "bad.jpg")]


def _dataset(paths):
    settings = PhotoTransformSettings(48, 80, rand_augment="rand-m6-n2")
    return PhotoDataset(paths, [f"row {i}" for i in range(len(paths))], "train", photo_train_transform(settings),
                        decode_side(settings, True), seed=3)


def test_a_samples_pixels_depend_on_seed_epoch_and_index_only(tmp_path):
    data = _dataset(_jpegs(tmp_path))
    state = random.getstate(), torch.get_rng_state()
    first, again, other_epoch = data[(2, 1)][0], data[(2, 1)][0], data[(2, 2)][0]
    assert np.array_equal(first, again) and not np.array_equal(first, other_epoch)
    assert random.getstate() == state[0] and torch.equal(torch.get_rng_state(), state[1])  # caller's RNGs untouched


def test_batches_are_the_same_with_zero_and_two_workers_and_bad_images_come_back_named(tmp_path):
    paths = _jpegs(tmp_path)
    order = epoch_order(len(paths), seed=1, epoch=1)

    def batches(workers):
        sampler = EpochBatches()
        loader = make_loader(_dataset(paths), sampler, num_workers=workers, pin_memory=False)
        out = []
        for epoch in (1, 2):  # persistent workers across epochs
            sampler.set(order, epoch, 5)
            out += list(loader)
        return out

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel):
        assert np.array_equal(a.indices, b.indices) and torch.equal(a.images, b.images)
        assert a.images.dtype == torch.uint8 and a.images.shape[1:] == (3, 48, 80)
    bad = [r for batch in parallel for r in batch.bad]
    assert [(r.row, r.problem) for r in bad] == [("row 12", "unreadable")] * 2  # once per epoch
    assert sorted(i for b in serial[:3] for i in b.indices) == list(range(12))


def test_collate_keeps_a_batch_of_only_bad_images_as_none():
    from geocell_engine.data.accounting import BadImage

    record = BadImage("train", "row 0", "a.jpg", "missing", "gone")
    batch = collate_photos([(None, 0, record)])
    assert batch.images is None and batch.indices.size == 0 and batch.bad == [record]


def test_epoch_order_is_seeded_and_balanced_sampling_evens_out_countries():
    a, b = epoch_order(100, seed=0, epoch=3), epoch_order(100, seed=0, epoch=3)
    assert np.array_equal(a, b) and sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, epoch_order(100, seed=0, epoch=4))
    labels = np.array(["FRA"] * 900 + ["ITA"] * 100)
    drawn = labels[epoch_order(1000, seed=0, epoch=1, weights=balanced_weights(labels))]
    assert 0.45 < float(np.mean(drawn == "ITA")) < 0.55  # 10% of the data, half the draws


def test_eval_decoder_pickles_and_decodes(tmp_path):
    import pickle

    path = _jpegs(tmp_path, 1)[0]
    decoder = pickle.loads(pickle.dumps(EvalDecoder(PhotoTransformSettings(40, 64))))
    assert decoder(path).shape == (3, 40, 64)


def test_the_fused_crop_and_rotation_matches_a_crop_then_a_rotation():
    """A box and an angle give what timm's crop then torchvision's rotate give, up to resampling."""
    from torchvision.transforms import functional as TF

    from geocell_engine.data.transforms import RandomResizedCropRotation

    a = np.zeros((90, 160, 3), np.uint8)
    a[:, :70] = 255  # a white left part
    img = Image.fromarray(a)
    fused = RandomResizedCropRotation((64, 64), scale=(0.5, 1.0), ratio=(0.75, 1.33), degrees=10.0,
                                      interpolation="bilinear", fill=(0, 0, 0))
    box = (10, 40, 80, 80)  # top, left, height, width
    crop = TF.resized_crop(img, *box, [64, 64], interpolation=TF.InterpolationMode.BILINEAR)
    for angle in (-8.0, 0.0, 6.0):
        ours = np.asarray(fused.apply(img, box, angle), dtype=float)
        theirs = np.asarray(TF.rotate(crop, angle, interpolation=TF.InterpolationMode.BILINEAR), dtype=float)
        centre = (slice(16, 48), slice(16, 48))  # the corners differ: the fused one shows the frame there
        assert np.abs(ours[centre] - theirs[centre]).mean() < 4.0, angle  # out of 255: resampling only
    assert np.abs(np.asarray(fused.apply(img, box, 8.0), dtype=float) - np.asarray(crop, dtype=float)).mean() > 5
    random.seed(0)
    out = fused(img)
    assert out.size == (64, 64)


def test_in_memory_images_take_the_photo_transforms_too():
    images = np.random.default_rng(0).integers(0, 255, (4, 40, 64, 3), dtype=np.uint8)
    settings = PhotoTransformSettings(32, 32)
    data = PhotoDataset(images, None, "train", photo_train_transform(settings), None, seed=0)
    pixels, index, bad = data[(2, 1)]
    assert len(data) == 4 and pixels.shape == (3, 32, 32) and index == 2 and bad is None
