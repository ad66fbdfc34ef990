import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mia_app.assets import AssetError, asset_path
from mia_app.models.onnx_torch import OnnxModule
from mia_app.models.sface import SFace, load_sface

ort = pytest.importorskip("onnxruntime")


def _asset(name: str):
    try:
        return asset_path(name)
    except AssetError as err:
        pytest.skip(str(err))


def _session(model: onnx.ModelProto):
    """onnxruntime session on a copy without the declared-but-unused inputs (SFace has 29, ORT demands them)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    read = {name for node in model.graph.node for name in node.input}
    inits = {init.name for init in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name in read and i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sface_proto() -> onnx.ModelProto:
    return onnx.load(str(_asset("sface")))


@pytest.fixture(scope="module")
def sface(sface_proto) -> SFace:
    return load_sface()


@pytest.fixture(scope="module")
def sface_session(sface_proto):
    return _session(sface_proto)


def _face_like(seed: int) -> np.ndarray:
    """1×3×112×112 in [0, 255]: a DCGAN face when its wheel is installed, else a smooth blob image."""
    try:
        from mia_app.models.dcgan import load_dcgan

        with torch.no_grad():
            img = load_dcgan()(torch.randn(1, 100, generator=torch.Generator().manual_seed(seed)))
        img = torch.nn.functional.interpolate(img, size=(112, 112), mode="bilinear", align_corners=False)
        return ((img.clamp(-1, 1) + 1) * 127.5).numpy()
    except AssetError:
        yy, xx = np.mgrid[-1:1:112j, -1:1:112j]
        face = np.exp(-(xx**2 + (yy * 0.8) ** 2) * 2.0)
        return np.stack([200 * face, 150 * face, 120 * face])[None].astype(np.float32)


@pytest.fixture(scope="module")
def sface_singles(sface) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 1×3×112×112 inputs in [0, 255] (three uniform noise, one face) and their batch-1 raw outputs."""
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 255, (1, 3, 112, 112)).astype(np.float32) for _ in range(3)] + [_face_like(seed=0)]
    x = torch.from_numpy(np.concatenate(inputs))
    with torch.no_grad():
        return x, torch.cat([sface.forward_raw(x[i : i + 1]) for i in range(len(x))])


def test_sface_matches_onnxruntime(sface_singles, sface_session):
    x, out = sface_singles
    for i in range(len(x)):  # onnxruntime only takes batch 1
        (ref,) = sface_session.run(None, {"data": x[i : i + 1].numpy()})
        assert ref.shape == (1, 128)
        assert np.abs(out[i : i + 1].numpy() - ref).max() < 1e-4


def test_sface_dynamic_batch(sface, sface_singles):
    x, singles = sface_singles
    with torch.no_grad():
        batched = sface.forward_raw(x)
    assert batched.shape == (4, 128)
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


def test_sface_embeddings_and_gradient(sface):
    assert sface.num_weights() == pytest.approx(9.6e6, rel=0.02)
    assert not any(t.requires_grad for t in list(sface.parameters()) + list(sface.buffers()))
    x = (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1).requires_grad_()
    emb = sface(x)
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    (emb[0] @ emb[1]).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        sface(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError):
        sface.forward_raw(torch.zeros(2, 3, 64, 64))


def test_tddfa_matches_onnxruntime():
    proto = onnx.load(str(_asset("tddfa_mb1")))
    module, session = OnnxModule(proto), _session(proto)
    x = np.random.default_rng(3).standard_normal((2, 3, 120, 120)).astype(np.float32)
    ref = np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(2)])
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()  # batch 2 goes through the graph's Shape/Gather/Concat
    assert out.shape == ref.shape == (2, 62)
    assert np.abs(out - ref).max() < 1e-4 * np.abs(ref).max()


def _tiny_model(op: str, **attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    return helper.make_model(helper.make_graph([node], "tiny", [x], [y]), opset_imports=[helper.make_opsetid("", 21)])


def test_unsupported_op_raises():
    with pytest.raises(NotImplementedError, match="Hardmax"):
        OnnxModule(_tiny_model("Hardmax"))


def test_blockwise_dequantize_is_folded_into_a_buffer():
    q = np.array([[-3, 0, 5, 7], [1, 2, -8, 4]], dtype=np.int8)
    scale = np.array([[0.5, 2.0], [1.0, 0.25]], dtype=np.float32)  # blocks of 2 along axis 1
    zero = np.array([[1, 0], [0, -2]], dtype=np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=1, block_size=2),
        helper.make_node("MatMul", ["x", "w_t"], ["y"]),
        helper.make_node("Transpose", ["w"], ["w_t"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((q, "q"), (scale, "s"), (zero, "z"))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph(nodes, "dq", [x], [y], initializer=inits)
    module = OnnxModule(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    assert module.ops == ["MatMul"]  # DequantizeLinear and Transpose of a constant were folded
    expected = (q.astype(np.float32) - np.repeat(zero, 2, axis=1)) * np.repeat(scale, 2, axis=1)
    torch.testing.assert_close(module.w_t, torch.from_numpy(expected.T.copy()))
    xs = torch.randn(3, 4)
    torch.testing.assert_close(module(xs), xs @ torch.from_numpy(expected.T.copy()))


def _single_op_model(op: str, x_shape, consts: dict, opset: int = 17, **attrs) -> onnx.ModelProto:
    """Graph y = op(x, *consts); an empty-string key stands for an omitted optional input."""
    inputs = ["x"] + list(consts)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items() if n]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], op, [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


_F = np.float32
_rng = np.random.default_rng(5)
_OP_CASES = {
    "conv-asym-pads-group-dilation": ("Conv", (2, 4, 9, 8), {"w": _rng.standard_normal((6, 2, 3, 3)).astype(_F),
        "b": _rng.standard_normal(6).astype(_F)}, {"group": 2, "pads": [0, 1, 2, 1], "strides": [2, 1],
        "dilations": [1, 2]}),
    "maxpool-asym-ceil": ("MaxPool", (2, 3, 7, 7), {}, {"kernel_shape": [3, 3], "strides": [2, 2],
        "pads": [0, 1, 1, 0], "ceil_mode": 1}),
    "avgpool": ("AveragePool", (2, 3, 7, 7), {}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "resize-nearest": ("Resize", (2, 3, 5, 4), {"": None, "scales": np.array([1, 1, 2, 3], _F)},
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    "resize-linear-sizes": ("Resize", (2, 3, 5, 4), {"": None, "s": np.zeros(0, _F), "sizes": np.array([2, 3, 9, 7])},
        {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}),
    "resize-linear-align": ("Resize", (2, 3, 5, 4), {"": None, "scales": np.array([1, 1, 1.5, 2.5], _F)},
        {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    "resize-cubic": ("Resize", (2, 3, 5, 4), {"": None, "scales": np.array([1, 1, 2, 2], _F)},
        {"mode": "cubic", "coordinate_transformation_mode": "half_pixel"}),
    "gemm-alpha-beta-transA": ("Gemm", (5, 2), {"b": _rng.standard_normal((5, 3)).astype(_F),
        "c": _rng.standard_normal((1, 3)).astype(_F)}, {"alpha": 0.5, "beta": 2.0, "transA": 1}),
    "prelu-scalar": ("PRelu", (2, 3, 4), {"slope": np.array([0.25], _F)}, {}),
    "prelu-last-axis": ("PRelu", (2, 3, 4), {"slope": _rng.standard_normal(4).astype(_F)}, {}),
    "slice": ("Slice", (4, 6, 5), {"starts": np.array([1, -4]), "ends": np.array([99, -1]), "axes": np.array([0, 1]),
        "steps": np.array([2, 1])}, {}),
    "gather-negative": ("Gather", (4, 6), {"i": np.array([[0, -1], [2, 3]])}, {"axis": 1}),
    "unsqueeze-13": ("Unsqueeze", (3, 4), {"axes": np.array([0, -1])}, {}),
    "squeeze-13": ("Squeeze", (3, 1, 4, 1), {"axes": np.array([1, -1])}, {}),
    "clip-13": ("Clip", (3, 4), {"lo": np.array(-0.5, _F), "hi": np.array(0.7, _F)}, {}),
    "flatten-axis2": ("Flatten", (2, 3, 4, 5), {}, {"axis": 2}),
    "transpose": ("Transpose", (2, 3, 4), {}, {"perm": [2, 0, 1]}),
    "reducemean-13": ("ReduceMean", (2, 3, 4), {}, {"axes": [1, 2], "keepdims": 0}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_OP_CASES))
def test_single_ops_match_onnxruntime(case):
    op, shape, consts, attrs = _OP_CASES[case]
    proto = _single_op_model(op, shape, consts, **attrs)
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    (ref,) = _session(proto).run(None, {"x": x})
    out = OnnxModule(proto)(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fuse", [True, False])
def test_conv_batchnorm_fusion_matches_onnxruntime(fuse):
    rng = np.random.default_rng(7)
    consts = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "gamma": rng.uniform(0.5, 2, 4).astype(np.float32),
        "beta": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.1, 2, 4).astype(np.float32),
        "slope": rng.uniform(0, 0.5, (4, 1, 1)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("PRelu", ["bn", "slope"], ["y"]),
    ]
    inits = [numpy_helper.from_array(v, n) for n, v in consts.items()]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "conv_bn", [x_info], [y_info], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    module = OnnxModule(proto, fuse_batchnorm=fuse)
    assert module.ops == (["Conv", "PRelu"] if fuse else ["Conv", "BatchNormalization", "PRelu"])
    x = np.random.default_rng(8).standard_normal((1, 3, 6, 6)).astype(np.float32)
    (ref,) = _session(proto).run(None, {"x": x})
    np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), ref, atol=1e-5, rtol=1e-5)
