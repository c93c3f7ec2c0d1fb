import pytest

from pipelines.common.config import ConfigError
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.tasks import task_names


def test_every_task_has_a_valid_space():
    from ray import tune

    for task in task_names():
        space = load_space(task)
        sampled = space.tune_space()
        assert isinstance(sampled["lr"], tune.search.sample.Float)
        assert isinstance(sampled["batch_size"], tune.search.sample.Categorical)
        assert isinstance(sampled["max_epochs"], int)
        assert space.scheduler.type == "asha" and space.metric == "val_accuracy"


@pytest.mark.parametrize(
    "body, message",
    [
        ("space: {learning_rate: {loguniform: [0.1, 1]}}", "space.learning_rate: not a hyperparameter"),
        ("space: {lr: {loguniform: [0, 1]}}", "bounds must be positive"),
        ("space: {lr: {uniform: [1, 0.5]}}", "low < high"),
        ("space: {lr: {normal: [0, 1]}}", "exactly one of"),
        ("space: {lr: fast}", "a number or one of"),
        ("space: {lr: 0.1}\nmetric: test_accuracy", "validation split only"),
        ("space: {lr: 0.1}\nscheduler: {type: pbt}", "scheduler.type"),
        ("space: {lr: 0.1}\nnum_samples: 0", "num_samples"),
        ("space: {lr: 0.1}\nseed: -1", "seed: an integer"),
        ("space: {lr: 0.1}\nresources: {tpu: 1}", "resources.tpu"),
    ],
)
def test_bad_spaces_name_the_key(tmp_path, body, message):
    path = tmp_path / "space.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_space("any", path)


def test_missing_space_file(tmp_path):
    with pytest.raises(ConfigError, match="tune_spaces/nope.yaml"):
        load_space("nope")
