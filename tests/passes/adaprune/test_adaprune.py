"""AdaPruner: budget search, criterion choice, training helpers, the pass, the CLI, and compiling the result."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import MODELS
from pqc.cli import main
from pqc.data import Dataset
from pqc.driver import compile_model
from pqc.errors import DataError, ModelError, PqcError
from pqc.executor import FloatExecutor
from pqc.frontend import load_onnx
from pqc.passes.adaprune import PruneConfig, adaprune
from pqc.passes.adaprune.budget import BudgetRule, block_importance, pruned_macs, search_budget
from pqc.passes.adaprune.criteria import select_channels
from pqc.passes.adaprune.prune import prune_channels
from pqc.passes.adaprune.train import TrainConfig, add_bn_l1_grad, bn_gamma_names, recalibrate_bn
from pqc.passes.channel_groups import channel_groups
from pqc.pipeline import PassContext, Pipeline
from pqc.summary import summarize

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def resnet8():
    return load_onnx(MODELS / "resnet8.onnx")


@pytest.fixture(scope="module")
def toy_data() -> Dataset:
    """Labelled 1x16x16 images whose class is the bright quadrant: learnable, and cheap."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(0, 0.3, (400, 1, 16, 16)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 0, 8 * r:8 * r + 8, 8 * c:8 * c + 8] += 1.0
    return Dataset(x, y.astype(np.int64), "toy")


# ----------------------------------------------------------------------------- budget search
def test_macs_are_monotone_in_t_and_match_the_pruned_graph(resnet8) -> None:
    deps = channel_groups(resnet8)
    importance = block_importance(resnet8, deps)
    rule = BudgetRule(round_to=4)
    macs = [pruned_macs(resnet8, deps, rule.counts(deps, importance, t)) for t in np.linspace(0, 2, 41)]
    assert all(a <= b for a, b in zip(macs, macs[1:]))
    assert macs[0] < macs[-1] == pruned_macs(resnet8, deps, {})
    counts = rule.counts(deps, importance, 0.7)
    assert all(c % 4 == 0 or c == deps.groups[g].size for g, c in counts.items())
    keep = {g: np.arange(c) for g, c in counts.items()}
    assert summarize(prune_channels(resnet8, deps, keep))["totals"]["macs"] == pruned_macs(resnet8, deps, counts)


@pytest.mark.parametrize("flops", [0.3, 0.5, 0.7, 0.9])
def test_bisection_meets_the_budget_with_the_largest_t(resnet8, flops: float) -> None:
    deps = channel_groups(resnet8)
    importance = block_importance(resnet8, deps)
    rule = BudgetRule()
    result = search_budget(resnet8, deps, importance, flops, rule)
    assert result.original_macs == summarize(resnet8)["totals"]["macs"]
    assert result.macs <= result.budget_macs == int(np.floor(flops * result.original_macs))
    assert result.macs == pruned_macs(resnet8, deps, result.counts)
    above = pruned_macs(resnet8, deps, rule.counts(deps, importance, result.t * 1.001 + 1e-9))
    assert above > result.budget_macs, "a larger t still fits: bisection stopped too early"


def test_importance_is_mean_abs_gamma_and_uniform_is_flat(resnet8) -> None:
    deps = channel_groups(resnet8)
    importance = block_importance(resnet8, deps)
    group = next(g for g in deps.prunable() if len(g.bns) == 2)
    gammas = np.concatenate([np.abs(resnet8.const(resnet8.node(bn).inputs[1])) for bn, _ in group.bns])
    assert importance[group.id] == pytest.approx(float(gammas.mean()))
    assert set(block_importance(resnet8, deps, uniform=True).values()) == {1.0}


def test_unreachable_budget_and_bad_options_are_refused(resnet8) -> None:
    deps = channel_groups(resnet8)
    importance = block_importance(resnet8, deps)
    with pytest.raises(PqcError, match="out of reach"):
        search_budget(resnet8, deps, importance, 0.01)
    with pytest.raises(PqcError, match="fraction"):
        search_budget(resnet8, deps, importance, 1.5)
    with pytest.raises(PqcError):
        BudgetRule(k_min=0.0)


# ----------------------------------------------------------------------------- criteria
def test_criteria_keep_the_strongest_channels(resnet8) -> None:
    deps = channel_groups(resnet8)
    group = next(g for g in deps.prunable() if len(g.bns) == 1)
    bn = resnet8.node(group.bns[0][0])
    gamma = np.abs(resnet8.const(bn.inputs[1]))
    (keep,) = select_channels(resnet8, deps, {group.id: 5}, "bn").values()
    assert set(keep) == set(np.argsort(-gamma)[:5])
    conv = resnet8.node(group.producers[0][0])
    norms = np.abs(resnet8.const(conv.inputs[1])).reshape(group.size, -1).sum(1)
    (keep,) = select_channels(resnet8, deps, {group.id: 5}, "l1").values()
    assert set(keep) == set(np.argsort(-norms)[:5])
    with pytest.raises(PqcError, match="criterion"):
        select_channels(resnet8, deps, {group.id: 5}, "taylor")


def test_adaptive_choice_keeps_the_best_scoring_candidate(small_cnn_onnx, toy_data) -> None:
    graph = load_onnx(small_cnn_onnx)
    config = PruneConfig(flops=0.5, val_samples=100, calib_samples=100, train=TrainConfig(epochs=0))
    report = adaprune(graph, toy_data, config).report
    scores = report["criteria"]["scores"]
    assert set(scores) == {"l1", "bn", "random", "scratch"}
    assert report["criteria"]["chosen"] == max(scores, key=scores.get)
    assert report["accuracy"]["pruned"]["val"] == max(scores.values())
    assert report["totals"]["macs"]["after"] == report["budget"]["macs"] <= report["budget"]["budget_macs"]


# ----------------------------------------------------------------------------- training helpers
def test_sparse_bn_adds_l1_subgradient(small_cnn_onnx) -> None:
    graph = load_onnx(small_cnn_onnx)
    model = FloatExecutor(graph)
    model.train()
    x = torch.randn(4, 1, 16, 16)
    model(x)[0].square().sum().backward()
    gammas = bn_gamma_names(graph)
    before = {name: model.param(name).grad.clone() for name in gammas}
    add_bn_l1_grad(model, 1e-2)
    for name in gammas:
        expected = before[name] + 1e-2 * torch.sign(model.param(name).detach())
        torch.testing.assert_close(model.param(name).grad, expected)


def test_recalibration_sets_running_stats_to_the_batch(small_cnn_onnx) -> None:
    graph = load_onnx(small_cnn_onnx)
    x = np.random.default_rng(1).normal(size=(64, 1, 16, 16)).astype(np.float32)
    bn = next(n for n in graph.nodes if n.op == "BatchNormalization")
    feature = FloatExecutor(graph).run(x, capture=[bn.inputs[0]])[bn.inputs[0]]
    out = recalibrate_bn(graph, x)
    node = out.node(bn.name)
    np.testing.assert_allclose(out.const(node.inputs[3]), feature.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.const(node.inputs[4]), feature.var(axis=(0, 2, 3), ddof=1), rtol=1e-3)
    assert node.attrs["momentum"] == bn.attrs["momentum"]


# ----------------------------------------------------------------------------- pass, compile, CLI
def test_pipeline_prunes_quantizes_and_lowers(small_cnn_onnx, toy_data) -> None:
    graph = load_onnx(small_cnn_onnx)
    ctx = PassContext(calib=toy_data.x[:32], state={"train": toy_data})
    spec = "adaprune(flops=0.5,epochs=1,val_samples=100,calib_samples=100),canonicalize,quantize(wbits=8),lower"
    Pipeline.parse(spec, verify=True).run(graph, ctx)
    assert ctx.state["adaprune"]["budget"]["ratio"] <= 0.5
    with pytest.raises(DataError, match="training data"):
        Pipeline.parse("adaprune").run(graph, PassContext())
    with pytest.raises(ModelError, match="before canonicalize"):
        Pipeline.parse("canonicalize,adaprune").run(graph, PassContext(state={"train": toy_data}))


def test_pruned_model_compiles_and_verifies_bit_exactly(small_cnn_onnx, toy_data, tmp_path) -> None:
    graph = load_onnx(small_cnn_onnx)
    config = PruneConfig(flops=0.4, val_samples=100, calib_samples=100, criterion="l1", train=TrainConfig(epochs=0))
    pruned = adaprune(graph, toy_data, config).graph
    build = compile_model(pruned, tmp_path / "build", calib=toy_data.x[:64], verify=True)
    checks = build.report["verification"]["checks"]
    assert any(c["status"] == "passed" and "bit-exact" in c["details"] for c in checks), checks
    assert not any(c["status"] == "failed" for c in checks)


def test_cli_prune_writes_model_and_report_and_never_overwrites(small_cnn_onnx, toy_data, tmp_path, capsys) -> None:
    data = tmp_path / "toy.npz"
    np.savez(data, x=toy_data.x, y=toy_data.y)
    out = tmp_path / "pruned.onnx"
    args = ["prune", str(small_cnn_onnx), "--flops", "0.6", "--train", str(data), "-o", str(out), "--epochs", "0",
            "--val-samples", "100", "--calib-samples", "64", "-q"]
    assert main(args) == 0
    assert "MACs" in capsys.readouterr().out
    report = json.loads((tmp_path / "pruned.report.json").read_text())
    assert report["budget"]["macs"] == summarize(load_onnx(out))["totals"]["macs"]
    assert "## Layers" in (tmp_path / "pruned.report.md").read_text()
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(args[:-1] + ["--flops", "0.001", "--force"]) == 2
    assert "out of reach" in capsys.readouterr().err


def test_cli_train_with_sparse_bn(small_cnn_onnx, toy_data, tmp_path) -> None:
    data = tmp_path / "toy.npz"
    np.savez(data, x=toy_data.x, y=toy_data.y)
    out = tmp_path / "sparse.onnx"
    assert main(["train", str(small_cnn_onnx), "--data", str(data), "--sparse-bn", "1e-2", "-o", str(out), "-q"]) == 0
    before, after = load_onnx(small_cnn_onnx), load_onnx(out)
    name = bn_gamma_names(before)[0]
    assert not np.allclose(before.const(name), after.const(name))
    assert main(["train", str(small_cnn_onnx), "--data", str(data), "-o", str(out), "--device", "nonsense", "--force"]) == 2


def test_bare_fashion_mnist_means_the_training_split() -> None:
    from pqc.data import load_training_data

    assert load_training_data("fashion-mnist:20").name == "fashion-mnist:train:20"
    assert load_training_data("fashion-mnist:test:20").name == "fashion-mnist:test:20"
