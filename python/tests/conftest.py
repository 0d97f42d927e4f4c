"""Shared fixtures: the MLP reference model (make models), the deskml CLI, small ONNX models.

Environment (CTest sets these; the defaults suit a run from the repository root):
DESKML_MODELS (build/models), DESKML_BINARY (build/bin/deskml); PYTHONPATH must reach build/python.
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("DESKML_MODELS", ROOT / "build" / "models"))
BINARY = Path(os.environ.get("DESKML_BINARY", ROOT / "build" / "bin" / "deskml"))


@pytest.fixture(scope="session")
def mlp() -> Path:
    """The MLP's folder: model.onnx (features float32 [N,30] -> logits [N,2]), inputs/, outputs/."""
    folder = MODELS / "mlp"
    if not (folder / "model.onnx").exists():
        pytest.skip(f"{folder} is missing: run `make models`")
    return folder


@pytest.fixture(scope="session")
def features(mlp: Path) -> np.ndarray:
    return np.load(mlp / "inputs" / "features.npy")


@pytest.fixture(scope="session")
def logits(mlp: Path) -> np.ndarray:
    return np.load(mlp / "outputs" / "logits.npy")


@pytest.fixture(scope="session")
def deskml_binary() -> Path:
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is missing: build it first")
    return BINARY


@pytest.fixture
def repository(tmp_path: Path, mlp: Path) -> Path:
    """A model repository holding the MLP as version 1 of model 'mlp'."""
    (tmp_path / "models" / "mlp" / "1").mkdir(parents=True)
    shutil.copy(mlp / "model.onnx", tmp_path / "models" / "mlp" / "1" / "model.onnx")
    return tmp_path / "models"


@pytest.fixture(scope="session")
def identity_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = Identity(x), x float32 [N, 4]: its output is a view of its input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("identity") / "identity.onnx"
    onnx.save(model, str(path))
    return path

