"""The settings: each a plain dict of TrainConfig overrides, the assignment's today's defaults, the davidson
setting built with its architecture (784-256-128 relu, the decoder mirrored), and the analysis sizes capped at
the images there are."""
import dataclasses

import numpy as np
import pytest

from vae_autograd.core.model import ReluLayer
from vae_autograd.seeds.settings import (
    GAP_TRAIN_IMAGES,
    IWAE_IMAGES,
    SETTINGS,
    analysis_sizes,
    planned_seconds,
    setting_config,
)
from vae_autograd.train.checkpoints import load_params
from vae_autograd.train.command import run_training
from vae_autograd.train.options import TrainConfig


def test_the_assignment_setting_is_todays_defaults(tmp_path):
    config = setting_config("assignment", 3, {}, tmp_path)
    assert dataclasses.replace(config, seed=0, out=TrainConfig().out, quiet=False) == TrainConfig()
    assert config.seed == 3 and config.out == tmp_path / "assignment" / "seed3.npz"


def test_the_literature_setting_holds_out_the_last_10000_of_all_60000_images(tmp_path):
    config = setting_config("literature", 0, {}, tmp_path)
    assert (config.train_size, config.validation_size, config.binarization) == (60000, 10000, "dynamic")
    assert (config.epochs, config.stop_patience, config.lr) == (50, 10, 1e-3)


def test_the_davidson_setting_is_the_literatures_with_their_architecture():
    assert SETTINGS["davidson"].train == {**SETTINGS["literature"].train, "hidden": (256, 128), "activation": "relu"}


def test_the_davidson_setting_trains_784_256_128_relu_and_its_mirror(tmp_path):
    config = dataclasses.replace(setting_config("davidson", 0, {}, tmp_path), train_size=300, validation_size=100,
                                 test_size=50, epochs=1, quiet=True)
    rng = np.random.default_rng(0)
    grey = [rng.random((n, 784)).astype(np.float32) for n in (300, 50)]
    run_training(config, log=lambda line: None, data=(grey[0], np.zeros(300), grey[1], np.zeros(50)))
    (enc, dec), metadata, *_ = load_params(config.out)
    assert [W.shape for W, _ in enc] == [(784, 256), (256, 128), (128, 4)]
    assert [W.shape for W, _ in dec] == [(2, 128), (128, 256), (256, 784)]
    assert all(type(layer) is ReluLayer for layer in enc[:-1] + dec[:-1])
    assert type(enc[-1]) is tuple and type(dec[-1]) is tuple  # the output layers are linear
    assert metadata["activation"] == "relu" and list(metadata["hidden"]) == [256, 128]


def test_analysis_sizes_are_the_issues_capped_at_the_images_there_are(tmp_path):
    full = analysis_sizes("literature", setting_config("literature", 0, {}, tmp_path), {})
    assert full == {"test_images": 10000, "gap_train_images": GAP_TRAIN_IMAGES, "iwae_images": IWAE_IMAGES,
                    "iwae_k": 1000, "quadrature_checked": 50}
    tiny = setting_config("literature", 0, {"train_size": 400, "validation_size": 100, "test_size": 60}, tmp_path)
    assert analysis_sizes("literature", tiny, {"iwae_images": 500}) == {
        "test_images": 60, "gap_train_images": 300, "iwae_images": 60, "iwae_k": 1000, "quadrature_checked": 6}
    davidson = setting_config("davidson", 0, {}, tmp_path)
    assert analysis_sizes("davidson", davidson, {}) == {"test_images": 50, "gap_train_images": 50,
                                                        "iwae_images": 50, "iwae_k": 1000, "quadrature_checked": 5}
    assert analysis_sizes("davidson", davidson, {"test_images": 2000})["test_images"] == 2000  # the sweep's first


def test_the_plan_puts_the_60000_image_seeds_first(tmp_path):
    plans = {name: planned_seconds(config, analysis_sizes(name, config, {}))
             for name in ("assignment", "literature") for config in [setting_config(name, 0, {}, tmp_path)]}
    assert sum(plans["literature"]) > sum(plans["assignment"])
    assert plans["assignment"][0] == pytest.approx(200 * 10000 * 1.6e-4)  # 200 epochs of 10,000 images


def test_an_override_of_no_trainconfig_field_is_a_setting_error_naming_it(tmp_path):
    from vae_autograd.seeds.settings import SettingError

    with pytest.raises(SettingError, match="unknown option 'epoch' of setting 'literature'; choose from .*epochs"):
        setting_config("literature", 0, {"epoch": 3}, tmp_path)
