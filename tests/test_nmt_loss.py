"""ls_kd criterion on fixed logits against closed forms computed by hand (no training)."""

import math
from types import SimpleNamespace

import pytest
import torch

import nmt_plugin  # noqa: F401  (registers the task and criterion)
from nmt_plugin.errors import LskdConfigError
from nmt_plugin.ls_kd import LsKdCriterion, kd_token_terms

PAD = 1
LN2, LN3, LN6 = math.log(2), math.log(3), math.log(6)


class Dict:
    def pad(self):
        return PAD


class StubModel(torch.nn.Module):
    """Fixed student logits [B, L, V] (a parameter, so gradients can be checked), handed out as the
    decoder's features with an identity output layer (the criterion projects non-pad rows only)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))
        self.decoder = SimpleNamespace(output_layer=lambda features: features)

    def forward(self, features_only=False, **net_input):
        assert features_only
        return self.logits, {}

    def get_targets(self, sample, net_output):
        return sample["target"]


def make_criterion(T=1.0, beta=1.0, eps=0.0, **kw):
    task = SimpleNamespace(cfg=SimpleNamespace(kd_temperature=T), target_dictionary=Dict())
    return LsKdCriterion(task, label_smoothing=eps, kd_beta=beta, **kw)


def make_sample(target, teacher_rows=None, topk=None):
    target = torch.as_tensor(target)
    mask = target.ne(PAD)
    teacher = {"mask": mask, "logits": None, "topk_values": None, "topk_indices": None}
    if topk is not None:
        teacher["topk_values"], teacher["topk_indices"] = topk
    else:
        teacher["logits"] = torch.as_tensor(teacher_rows, dtype=torch.float32)
    return {"net_input": {}, "target": target, "ntokens": int(mask.sum()), "kd_teacher": teacher}


def test_token_terms_closed_form():
    # Teacher at T: softmax(z/T) with z = T*[ln 2, 0, 0] -> p_t = [1/2, 1/4, 1/4]; student uniform.
    for T in (1.0, 2.0, 5.0):
        t = torch.tensor([[T * LN2, 0.0, 0.0]])
        s = torch.zeros(1, 3)
        cross, kl, ent = kd_token_terms(s, T, teacher_logits=t)
        assert cross.item() == pytest.approx(LN3, abs=1e-6)
        assert ent.item() == pytest.approx(1.5 * LN2, abs=1e-6)
        assert kl.item() == pytest.approx(LN3 - 1.5 * LN2, abs=1e-6)


def test_kd_loss_t_squared_scaling_and_logging():
    # One sentence, two real tokens + one pad. Teacher rows only for the real tokens.
    # Student logits: uniform over V = 3 at both positions -> H(p_t, p_s) = ln 3 per token, any T.
    for T in (1.0, 2.0, 4.0):
        model = StubModel(torch.zeros(1, 3, 3))
        teacher = [[T * LN2, 0.0, 0.0], [0.0, T * LN2, 0.0]]
        sample = make_sample([[0, 2, PAD]], teacher)
        crit = make_criterion(T=T)
        loss, sample_size, log = crit(model, sample)
        assert sample_size == 2 and log["ntokens"] == 2 and log["sample_size"] == 2
        assert loss.item() == pytest.approx(T * T * 2 * LN3, rel=1e-6)  # β T² Σ H
        assert log["kd_loss"].item() == pytest.approx(2 * LN3, rel=1e-6)  # no T² in the log
        assert log["teacher_entropy"].item() == pytest.approx(2 * 1.5 * LN2, rel=1e-6)
        assert log["kl"].item() == pytest.approx(2 * (LN3 - 1.5 * LN2), rel=1e-5)
        # nll is the data's cross-entropy at T = 1: uniform student -> ln 3 per token.
        assert log["nll_loss"].item() == pytest.approx(2 * LN3, rel=1e-6)


def test_kd_gradient_is_T_times_ps_minus_pt():
    # d/dz_s [T² H(p_t(T), p_s(T))] = T (p_s(T) - p_t(T)).
    T = 2.0
    model = StubModel(torch.zeros(1, 1, 3))
    sample = make_sample([[0]], [[T * LN2, 0.0, 0.0]])
    loss, _, _ = make_criterion(T=T)(model, sample)
    loss.backward()
    expected = T * (torch.tensor([1 / 3, 1 / 3, 1 / 3]) - torch.tensor([0.5, 0.25, 0.25]))
    assert torch.allclose(model.logits.grad[0, 0], expected, atol=1e-6)


def test_beta_zero_is_plain_label_smoothed_ce():
    # Student logits [ln 4, 0, 0] -> p = [2/3, 1/6, 1/6]; target 0.
    # ε = 0: CE = ln(3/2). ε = 0.1, fairseq's convention (ε_i = ε/(V-1) = 0.05):
    # (1-ε-ε_i)·nll + ε_i·Σ_k -log p_k = 0.85 ln 1.5 + 0.05 (ln 1.5 + 2 ln 6) = 0.9 ln 1.5 + 0.1 ln 6.
    logits = torch.tensor([[[math.log(4), 0.0, 0.0]]])
    teacher = [[5.0, -3.0, 1.0]]  # anything: β = 0 ignores it
    for eps, expected in ((0.0, math.log(1.5)), (0.1, 0.9 * math.log(1.5) + 0.1 * LN6)):
        loss, n, log = make_criterion(T=3.0, beta=0.0, eps=eps)(
            StubModel(logits), make_sample([[0]], teacher)
        )
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        assert log["nll_loss"].item() == pytest.approx(math.log(1.5), rel=1e-6)


def test_beta_mixes_the_two_terms():
    T, beta = 2.0, 0.25
    logits = torch.tensor([[[math.log(4), 0.0, 0.0]]])
    teacher = [[T * LN2, 0.0, 0.0]]
    # student at T: softmax([ln 4, 0, 0]/2) = [2, 1, 1]/4 = teacher at T -> H = 1.5 ln 2.
    loss, _, log = make_criterion(T=T, beta=beta)(StubModel(logits), make_sample([[0]], teacher))
    expected = (1 - beta) * math.log(1.5) + beta * T * T * 1.5 * LN2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert log["kl"].item() == pytest.approx(0.0, abs=1e-6)


def test_pad_tokens_contribute_nothing():
    T = 2.0
    base = torch.zeros(2, 3, 4)
    target = [[0, 3, PAD], [2, PAD, PAD]]
    rows = [[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]
    noisy = base.clone()
    noisy[0, 2] = torch.tensor([50.0, -9.0, 3.0, 7.0])  # pad positions: wild student logits
    noisy[1, 1:] = torch.tensor([-40.0, 8.0, 0.0, 1.0])
    results = []
    for logits in (base, noisy):
        model = StubModel(logits)
        loss, n, log = make_criterion(T=T, beta=0.5, eps=0.1)(model, make_sample(target, rows))
        loss.backward()
        results.append((loss.item(), n, log["kd_loss"].item(), model.logits.grad.clone()))
        assert model.logits.grad[0, 2].abs().sum() == 0 and model.logits.grad[1, 1:].abs().sum() == 0
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-7)
    assert results[0][1] == results[1][1] == 3
    assert torch.equal(results[0][3][0, :2], results[1][3][0, :2])
    # and the value itself: 3 tokens, student uniform over 4 -> each H(p_t, p_s) = ln 4
    assert results[0][2] == pytest.approx(3 * math.log(4), rel=1e-6)


def test_topk_renormalises_teacher_over_k():
    # V = 4, teacher logits T*[ln 3, ln 1, ln 100(dropped), ...]; keep top-2 = {ln 100, ln 3}:
    # p_t^k = [100, 3]/103 on words 2 and 0; student uniform over 4 -> H = ln 4.
    T = 2.0
    vals = torch.tensor([[T * math.log(100), T * math.log(3)]])
    idx = torch.tensor([[2, 0]])
    model = StubModel(torch.zeros(1, 1, 4))
    sample = make_sample([[0]], topk=(vals, idx))
    loss, _, log = make_criterion(T=T)(model, sample)
    p = torch.tensor([100 / 103, 3 / 103])
    ent = float(-(p * p.log()).sum())
    assert log["kd_loss"].item() == pytest.approx(math.log(4), rel=1e-6)
    assert log["teacher_entropy"].item() == pytest.approx(ent, rel=1e-6)
    assert log["kl"].item() == pytest.approx(math.log(4) - ent, rel=1e-5)


def test_reduce_metrics_in_bits_per_token():
    from fairseq.logging import metrics

    logs = [
        {
            "loss": torch.tensor(8 * LN2),
            "nll_loss": torch.tensor(4 * LN2),
            "kd_loss": torch.tensor(2 * LN2),
            "kl": torch.tensor(0.5 * LN2),
            "teacher_entropy": torch.tensor(1.5 * LN2),
            "ntokens": 2,
            "nsentences": 1,
            "sample_size": 2,
        }
    ] * 2
    with metrics.aggregate() as agg:
        LsKdCriterion.reduce_metrics(logs)
        vals = agg.get_smoothed_values()
    assert vals["loss"] == pytest.approx(4.0) and vals["nll_loss"] == pytest.approx(2.0)
    assert vals["kd_loss"] == pytest.approx(1.0) and vals["kl"] == pytest.approx(0.25)
    assert vals["teacher_entropy"] == pytest.approx(0.75)
    assert vals["ppl"] == pytest.approx(4.0)
    assert LsKdCriterion.logging_outputs_can_be_summed()


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan")])
def test_beta_outside_unit_interval_refused(beta):
    with pytest.raises(LskdConfigError, match="kd-beta"):
        make_criterion(beta=beta)


def test_criterion_needs_kd_task():
    task = SimpleNamespace(cfg=SimpleNamespace(), target_dictionary=Dict())
    with pytest.raises(LskdConfigError, match="kd_translation"):
        LsKdCriterion(task)


@pytest.mark.parametrize("T", [0.0, -1.0, float("inf")])
def test_temperature_must_be_positive(T):
    from nmt_plugin.kd_translation import KdTranslationTask

    cfg = SimpleNamespace(kd_temperature=T, teacher_topk=0)
    with pytest.raises(LskdConfigError, match="kd-temperature"):
        KdTranslationTask.setup_task(cfg)
