"""KD loss golden values worked out by hand, the frozen teacher, and per-student RNG streams."""

import copy
import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vision import kd  # noqa: E402


def two_class_softmax(z1, T):
    """softmax([0, z1] / T) in closed form: (1 - s, s) with s = 1 / (1 + exp(-z1 / T))."""
    s = 1.0 / (1.0 + math.exp(-z1 / T))
    return 1.0 - s, s


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_uniform_student_gives_t2_ln2():
    # p_s(T) = (1/2, 1/2) whatever the teacher: H(p_t, p_s) = ln 2, loss = T² ln 2.
    for T in (1.0, 2.0, 3.0):
        loss = kd.kd_loss(t([0.0, 0.0]), t([0.0, 5.0]), torch.tensor([1]), T)
        assert loss.item() == pytest.approx(T * T * math.log(2), rel=1e-6)
    assert kd.kd_loss(t([0.0, 0.0]), t([0.0, 5.0]), torch.tensor([1]), 3.0).item() == pytest.approx(
        6.238324625, rel=1e-6
    )  # 9 · 0.693147...


def test_two_class_golden_value_and_t2_scaling():
    zs, zt, T = 1.0, 3.0, 2.0
    ps0, ps1 = two_class_softmax(zs, T)  # (0.37754, 0.62246)
    pt0, pt1 = two_class_softmax(zt, T)  # (0.18243, 0.81757)
    H = -(pt0 * math.log(ps0) + pt1 * math.log(ps1))
    # 0.182426·0.974077 + 0.817574·0.474077 = 0.177697 + 0.387593, worked out by hand
    assert H == pytest.approx(0.565290, abs=1e-5)
    loss = kd.kd_loss(t([0.0, zs]), t([0.0, zt]), torch.tensor([0]), T)
    assert loss.item() == pytest.approx(T * T * H, rel=1e-6)
    # batch mean over rows
    loss2 = kd.kd_loss(t([0.0, zs], [0.0, 0.0]), t([0.0, zt], [0.0, zt]), torch.tensor([0, 1]), T)
    assert loss2.item() == pytest.approx(0.5 * T * T * (H + math.log(2)), rel=1e-6)


def test_gradient_is_T_times_probability_gap():
    # d/dz_s [T² H(p_t(T), p_s(T))] = T (p_s(T) - p_t(T)): the T² keeps gradients O(1) in T.
    zs = torch.tensor([[0.0, 1.0]], requires_grad=True)
    T = 4.0
    kd.kd_loss(zs, t([0.0, 3.0]), torch.tensor([0]), T).backward()
    ps0, ps1 = two_class_softmax(1.0, T)
    pt0, pt1 = two_class_softmax(3.0, T)
    assert zs.grad[0].tolist() == pytest.approx([T * (ps0 - pt0), T * (ps1 - pt1)], rel=1e-5)


def test_beta_zero_is_plain_cross_entropy():
    # logits (0, ln 3) -> p = (1/4, 3/4); CE for class 1 is ln(4/3), for class 0 ln 4.
    zs = t([0.0, math.log(3.0)], [0.0, math.log(3.0)])
    y = torch.tensor([1, 0])
    loss = kd.kd_loss(zs, t([9.0, -9.0], [1.0, 2.0]), y, temperature=5.0, beta=0.0)
    assert loss.item() == pytest.approx(0.5 * (math.log(4 / 3) + math.log(4)), rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(zs, y).item(), rel=1e-6)


def test_beta_mixes_the_two_terms():
    zs, zt, T, beta = 1.0, 3.0, 2.0, 0.25
    ps0, ps1 = two_class_softmax(zs, T)
    pt0, pt1 = two_class_softmax(zt, T)
    H = -(pt0 * math.log(ps0) + pt1 * math.log(ps1))
    ce = -math.log(two_class_softmax(zs, 1.0)[1])  # target class 1 at T = 1
    loss = kd.kd_loss(t([0.0, zs]), t([0.0, zt]), torch.tensor([1]), T, beta=beta)
    assert loss.item() == pytest.approx((1 - beta) * ce + beta * T * T * H, rel=1e-6)


def test_teacher_equals_student_gives_zero_kl():
    z = t([0.3, -1.2, 2.0], [1.0, 1.0, 1.0])
    terms = kd.kd_terms(z, z.clone(), temperature=3.0)
    assert terms["kl"].item() == pytest.approx(0.0, abs=1e-6)
    # then H(p_t, p_s) is the teacher entropy: the KD loss is T² H(p_t)
    assert terms["cross_entropy"].item() == pytest.approx(terms["teacher_entropy"].item(), rel=1e-6)
    loss = kd.kd_loss(z, z.clone(), torch.tensor([0, 1]), 3.0)
    assert loss.item() == pytest.approx(9.0 * terms["teacher_entropy"].item(), rel=1e-6)
    # the second row is uniform over 3 classes: entropy ln 3
    row = kd.kd_terms(z[1:], z[1:], 3.0)["teacher_entropy"].item()
    assert row == pytest.approx(math.log(3.0), rel=1e-6)


def test_frozen_teacher_stays_in_eval_mode_without_grads():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    teacher = kd.FrozenTeacher(model)
    teacher.train()
    assert not teacher.training and not model.training
    assert not any(p.requires_grad for p in teacher.parameters())
    x = torch.randn(5, 4)
    out1, out2 = teacher(x), teacher(x)
    assert torch.equal(out1, out2) and not out1.requires_grad  # eval: no dropout, no BN update


def _dropout_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def test_sweep_step_matches_single_student_with_dropout():
    """Each student has its own RNG stream: a student trained beside another in a sweep gets
    exactly the weights it gets alone (dropout masks, teacher forward shared)."""
    teacher = kd.FrozenTeacher(_dropout_net(1))
    base = _dropout_net(0)

    def slot(T):
        m = copy.deepcopy(base)
        return kd.Slot(m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), T, seed=0)

    single, sweep = [slot(3.0)], [slot(1.0), slot(3.0), slot(2.0)]
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    torch.manual_seed(123)
    for x, y in batches:
        kd.train_step(single, x, y, teacher=teacher, beta=0.5)
    outer_single = torch.rand(3)
    torch.manual_seed(123)
    for x, y in batches:
        kd.train_step(sweep, x, y, teacher=teacher, beta=0.5)
    outer_sweep = torch.rand(3)
    for a, b in zip(single[0].model.parameters(), sweep[1].model.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(outer_single, outer_sweep)  # the global (augmentation) stream is untouched
    assert not torch.equal(sweep[0].model[0].weight, sweep[1].model[0].weight)  # T matters


def test_teacher_mode_step_is_label_smoothed_ce():
    m = _dropout_net(0).eval()
    m[2].p = 0.0
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    expected = F.cross_entropy(m(x), y, label_smoothing=0.2).item()
    slot = kd.Slot(m, torch.optim.SGD(m.parameters(), lr=0.0))
    ((loss, logits, terms),) = kd.train_step([slot], x, y, label_smoothing=0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-6) and terms is None


def test_step_under_bf16_autocast_keeps_a_float32_loss():
    torch.manual_seed(0)
    teacher = kd.FrozenTeacher(nn.Sequential(nn.Linear(6, 3)))
    m = nn.Sequential(nn.Linear(6, 3))
    slots = [kd.Slot(m, torch.optim.SGD(m.parameters(), lr=0.1), 2.0)]
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    ((loss, logits, terms),) = kd.train_step(
        slots, torch.randn(4, 6), torch.tensor([0, 1, 2, 0]), teacher=teacher, autocast=amp
    )
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert torch.isfinite(loss) and m[0].weight.dtype == torch.float32
    acc = [torch.zeros(len(kd.TALLY))]
    kd.tally(acc, [(loss, logits, terms)], torch.tensor([0, 1, 2, 0]))
    assert acc[0][0].item() == pytest.approx(4 * loss.item(), rel=1e-6)
    assert acc[0][3].item() == pytest.approx(4 * terms[1].item(), rel=1e-6) and terms.dtype == torch.float32


@pytest.mark.parametrize(
    "clip, expected",
    [
        # zero weights, x = [3, 4], y = 0: dCE/dz = [-0.5, 0.5],
        # grad W = [[-1.5, -2], [1.5, 2]], norm sqrt(12.5)
        (None, [[1.5, 2.0], [-1.5, -2.0]]),
        (10.0, [[1.5, 2.0], [-1.5, -2.0]]),  # above the norm: untouched
        (1.0, [[1.5 / 12.5**0.5, 2.0 / 12.5**0.5], [-1.5 / 12.5**0.5, -2.0 / 12.5**0.5]]),
    ],
)
def test_clip_grad_norm_scales_the_step_to_the_given_norm(clip, expected):
    m = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(m.weight)
    slot = kd.Slot(m, torch.optim.SGD(m.parameters(), lr=1.0))
    kd.train_step([slot], torch.tensor([[3.0, 4.0]]), torch.tensor([0]), clip_grad_norm=clip)
    torch.testing.assert_close(m.weight.detach(), torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_step_logs_kl_and_teacher_entropy_at_the_students_temperature():
    """Teacher logits [2 ln 3, 0] at T = 2 give p_t = [3/4, 1/4]; a zero student gives p_s = [1/2, 1/2]:
    H(p_t) = -(3/4 ln 3/4 + 1/4 ln 1/4), H(p_t, p_s) = ln 2, KL = ln 2 - H(p_t), loss = T² ln 2."""
    t = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        t.weight.copy_(torch.tensor([[2 * math.log(3.0)], [0.0]]))
    s = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(s.weight)
    slot = kd.Slot(s, torch.optim.SGD(s.parameters(), lr=0.0), 2.0)
    x, y = torch.ones(2, 1), torch.tensor([0, 1])
    outs = kd.train_step([slot], x, y, teacher=kd.FrozenTeacher(t))
    acc = [torch.zeros(len(kd.TALLY))]
    kd.tally(acc, outs, y)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = [2 * 4 * math.log(2), 1.0, 2 * (math.log(2) - h), 2 * h]  # sums over the 2 samples
    torch.testing.assert_close(acc[0], torch.tensor(expected), rtol=1e-6, atol=1e-7)
