from pathlib import Path

from multialpha.mlveto.loader import LoadedModel, Refusal, load_model
from tests.mlveto.helpers import FEATURES, write_model


def test_verified_model_loads(tmp_path: Path) -> None:
    write_model(tmp_path)
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, LoadedModel) and got.entry.features == FEATURES


def test_one_changed_byte_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "sha256" in got.reason and "refused" in got.reason


def test_a_pickle_not_in_the_manifest_never_runs(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"
    write_model(tmp_path, symbol="6C")  # a manifest exists, but not for 6A

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    target = tmp_path / "ibs" / "6A.joblib"
    target.write_bytes(pickle.dumps(Evil()))
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "no manifest entry" in got.reason
    assert not marker.exists()


def test_feature_mismatch_and_missing_are_refused(tmp_path: Path) -> None:
    write_model(tmp_path)
    got = load_model(tmp_path, "ibs", "6A", ["ret_5d", "ibs"])
    assert isinstance(got, Refusal) and "feature list mismatch" in got.reason
    (tmp_path / "ibs" / "6A.joblib").unlink()
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "missing" in got.reason
    assert isinstance(load_model(tmp_path / "nowhere", "ibs", "6A", FEATURES), Refusal)
