"""The training options (vae_autograd.train.options) validate values from Python too."""
import pytest

from vae_autograd.train.options import ConfigError, TrainConfig


def test_config_validates_values_from_python_too(tmp_path):
    with pytest.raises(ConfigError, match="seed must be a non-negative int, got -5"):
        TrainConfig(seed=-5)
    with pytest.raises(ConfigError, match="eval_samples must be an int >= 2"):
        TrainConfig(eval_samples=1)
    with pytest.raises(ConfigError, match="epochs must be a positive int, got 2.5"):
        TrainConfig(epochs=2.5)
    with pytest.raises(ConfigError, match="out must end in .npz"):
        TrainConfig(out="results.json")
    assert TrainConfig(out=tmp_path / "v.npz").results_path == tmp_path / "v.json"


def test_config_refuses_what_it_would_silently_ignore():
    with pytest.raises(ConfigError, match="out must end in .npz"):
        TrainConfig(out="results.JSON")
    with pytest.raises(ConfigError, match=r"keep_epochs \[5, 7\] lie beyond epochs 4"):
        TrainConfig(epochs=4, keep_epochs=(1, 5, 7))
    assert TrainConfig(epochs=4, keep_epochs=(1, 4)).keep_epochs == (1, 4)
