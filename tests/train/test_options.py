"""The training options (vae_autograd.train.options) validate values from Python too."""
import pytest

from vae_autograd.train.command import build_parser
from vae_autograd.train.options import DEFAULT_PATIENCE, ConfigError, TrainConfig, config_from_args


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


def test_the_data_options_are_validated_from_python_too():
    with pytest.raises(ConfigError, match="binarization must be threshold or dynamic, got 'grey'"):
        TrainConfig(binarization="grey")
    with pytest.raises(ConfigError, match="validation_size must be an int in 0..59999, got 0.5"):
        TrainConfig(validation_size=0.5)
    with pytest.raises(ConfigError, match="validation_size 500 leaves no training images of train_size 400: choose"):
        TrainConfig(train_size=400, validation_size=500)
    with pytest.raises(ConfigError, match="patience must be a positive int, got True"):
        TrainConfig(validation_size=10, patience=True)
    with pytest.raises(ConfigError, match="patience 3 needs a validation set to watch: add --validation-size"):
        TrainConfig(patience=3)
    assert TrainConfig().stop_patience is None and TrainConfig(validation_size=10).stop_patience == DEFAULT_PATIENCE
    assert TrainConfig(validation_size=10, patience=3).stop_patience == 3


def test_the_metadata_a_checkpoint_must_match_names_the_data_options_but_not_patience():
    metadata = TrainConfig(binarization="dynamic", validation_size=10, patience=3).metadata()
    assert metadata["binarization"] == "dynamic" and metadata["validation_size"] == 10 and "patience" not in metadata


def test_hidden_takes_layer_widths_and_hidden_dim_stays_its_alias():
    """--hidden-dim, the option's name when the model had one hidden layer, still means the same model."""
    parser = build_parser()
    assert config_from_args(parser.parse_args(["--hidden", "256,128"])).hidden == (256, 128)
    assert config_from_args(parser.parse_args(["--hidden-dim", "300"])) == TrainConfig(hidden=(300,))
    assert config_from_args(parser.parse_args([])) == TrainConfig() and TrainConfig().hidden == (500,)
    assert TrainConfig(hidden=(256, 128), activation="relu").metadata()["hidden"] == [256, 128]  # as JSON reads it
    assert "(default 500)" in parser.format_help() and "(default tanh)" in parser.format_help()
    with pytest.raises(ConfigError, match="hidden must be positive layer widths"):
        TrainConfig(hidden=500)  # from Python, a tuple: (500,)
    with pytest.raises(ConfigError, match="activation must be one of tanh, relu, got 'sigmoid'"):
        TrainConfig(activation="sigmoid")
