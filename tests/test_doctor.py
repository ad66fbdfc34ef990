"""The doctor's checks on synthetic step events, shaped like the engine's (``Inversion._optimise``): real runs in
the tests are far shorter than the 100 steps after which the log-vars must have moved."""

import json
import math

import pytest

from mia_app.attack.doctor import LOGVAR_MOVE_AFTER, Doctor
from mia_app.attack.events import StepEvent
from mia_app.attack.run import run_attack
from tests.helpers import tiny_attack_config

STEPS = LOGVAR_MOVE_AFTER + 10
LOGVAR_CHECKS = ("log-vars start at 0", f"log-vars move after {LOGVAR_MOVE_AFTER} steps", "log-vars stay bounded",
                 "task weights lie in (0, 1)")


def healthy_logs(stage: int, step: int) -> dict[str, float]:
    """One step's readings of a healthy scheme-D run: log-vars start at 0 and drift apart, weights sum to 1."""
    s = 0.01 * (step - 1)  # each stage builds a fresh composer, so its log-vars restart at 0
    e_id, e_cls = math.exp(s), math.exp(-s)  # w_i = exp(-s_i) / sum_j exp(-s_j) with s_id = -s, s_cls = s
    logs = {"L_id": 0.4, "L_cls": 1.1, "total": 0.9, "grad_norm_c": 0.05, "code_norm_max_dev": 1e-7,
            "emb_norm_max_dev": 2e-7, "cos_min": -0.3, "cos_max": 0.8, "s_id": -s, "s_cls": s,
            "w_id": e_id / (e_id + e_cls), "w_cls": e_cls / (e_id + e_cls), "T_conf": 0.3}
    if stage == 2:
        logs["grad_norm_lora"] = 0.02
    return logs


def feed(doctor: Doctor, steps: int = STEPS, tweak=None) -> dict[str, str]:
    """Two stages of ``steps`` events; ``tweak(stage, step, logs)`` corrupts readings in place. Returns statuses."""
    for stage in (1, 2):
        for step in range(1, steps + 1):
            logs = healthy_logs(stage, step)
            if tweak is not None:
                tweak(stage, step, logs)
            doctor.on_step(StepEvent(stage, step, steps, 0, [0], logs, {0: logs["T_conf"]}, 0.1 * step))
    return {c.name: c.status for c in doctor.checks()}


def test_a_healthy_long_run_passes_every_check():
    doctor = Doctor(logvar_clamp=4.0)
    status = feed(doctor)
    assert set(status.values()) == {"pass"}, doctor.table()
    assert set(LOGVAR_CHECKS) <= set(status) and doctor.ok()


def test_log_var_checks_are_absent_without_scheme_d():
    doctor = Doctor()
    status = feed(doctor, tweak=lambda st, sp, logs: [logs.pop(k) for k in ("s_id", "s_cls", "w_id", "w_cls")])
    assert not set(LOGVAR_CHECKS) & set(status) and doctor.ok()


def test_a_short_run_reports_the_move_check_as_na():
    doctor = Doctor(logvar_clamp=4.0)
    status = feed(doctor, steps=LOGVAR_MOVE_AFTER - 1)
    assert status[f"log-vars move after {LOGVAR_MOVE_AFTER} steps"] == "n/a"
    assert doctor.ok()  # n/a is not a fail


def _set(key: str, value: float, at: tuple[int, int] | None = None):
    """A tweak that sets ``key`` at (stage, step), or at every step when ``at`` is None."""

    def tweak(stage, step, logs):
        if at is None or (stage, step) == at:
            logs[key] = value

    return tweak


@pytest.mark.parametrize("check, tweak", [
    ("log-vars start at 0", _set("s_id", 0.5, at=(1, 1))),
    (f"log-vars move after {LOGVAR_MOVE_AFTER} steps", lambda st, sp, logs: logs.update(s_id=0.0, s_cls=0.0)),
    ("log-vars stay bounded", _set("s_cls", 4.5, at=(2, 50))),
    ("log-vars stay bounded", _set("s_id", -4.01, at=(1, 7))),
    ("task weights lie in (0, 1)", _set("w_id", 1.0, at=(1, 60))),
    ("task weights lie in (0, 1)", _set("w_cls", 0.0, at=(2, 3))),
    ("task weights lie in (0, 1)", _set("w_cls", -0.2, at=(2, 3))),
    ("embedding norms are 1", _set("emb_norm_max_dev", 0.01, at=(1, 20))),
    ("embedding norms are 1", _set("code_norm_max_dev", 0.002, at=(2, 5))),
    ("cosines lie in [-1, 1]", _set("cos_max", 1.2, at=(1, 3))),
    ("cosines lie in [-1, 1]", _set("cos_min", -1.01, at=(2, 9))),
    ("no loss is inf or NaN", _set("total", math.inf, at=(2, 40))),
    ("no loss is inf or NaN", _set("L_cls", -math.inf, at=(1, 2))),
    ("gradients reach c_y", _set("grad_norm_c", 0.0, at=(1, 30))),
    ("gradients reach LoRA weights", _set("grad_norm_lora", 0.0, at=(2, 105))),
])
def test_each_check_fails_on_its_own_fault(check, tweak):
    doctor = Doctor(logvar_clamp=4.0)
    status = feed(doctor, tweak=tweak)
    assert status[check] == "fail", doctor.table()
    assert [n for n, s in status.items() if s == "fail"] == [check]  # and only that check
    assert not doctor.ok()


def test_frozen_log_vars_fail_even_if_only_one_task_is_stuck():
    # s_id moves, s_cls never does: the seed's check wants every log-var to move.
    status = feed(Doctor(logvar_clamp=4.0), tweak=_set("s_cls", 0.0))
    assert status[f"log-vars move after {LOGVAR_MOVE_AFTER} steps"] == "fail"


def test_the_bound_is_the_configured_clamp():
    beyond_4 = _set("s_cls", 4.5, at=(2, 50))
    assert feed(Doctor(logvar_clamp=4.0), tweak=beyond_4)["log-vars stay bounded"] == "fail"
    assert feed(Doctor(logvar_clamp=5.0), tweak=beyond_4)["log-vars stay bounded"] == "pass"
    assert feed(Doctor(), tweak=beyond_4)["log-vars stay bounded"] == "pass"  # generic default: 10


def test_checks_without_readings_are_na():
    doctor = Doctor()
    doctor.on_step(StepEvent(1, 1, 1, 0, [0], {"L_cls": 1.0, "total": 1.0, "grad_norm_c": 0.1}))
    status = {c.name: c.status for c in doctor.checks()}
    assert status["embedding norms are 1"] == "n/a" and status["cosines lie in [-1, 1]"] == "n/a"
    assert status["gradients reach LoRA weights"] == "n/a" and status["no loss is inf or NaN"] == "pass"
    empty = {c.name: c.status for c in Doctor().checks()}
    assert empty["no loss is inf or NaN"] == "n/a"  # no steps at all: nothing to call finite


def test_doctor_json_is_rewritten_as_the_run_goes(tmp_path):
    doctor = Doctor(tmp_path, logvar_clamp=4.0)
    feed(doctor, steps=12, tweak=_set("total", math.nan, at=(2, 12)))
    written = {c["name"]: c["status"] for c in json.loads((tmp_path / "doctor.json").read_text())}
    assert written["no loss is inf or NaN"] == "fail"  # the last step of a stage is always written


def test_for_config_uses_the_schemes_clamp(tmp_path):
    cfg = tiny_attack_config(tmp_path, schemes={"D": True, "logvar_clamp": 2.5})
    assert Doctor.for_config(cfg).logvar_clamp == 2.5
    assert Doctor.for_config(object()).logvar_clamp is None  # a config without schemes: the generic bound


def test_the_run_folders_doctor_checks_the_configured_clamp(tmp_path):
    # run_attack's own doctor writes doctor.json; it used to bound the log-vars by 10 whatever the config said.
    cfg = tiny_attack_config(tmp_path, schemes={"D": True, "logvar_clamp": 2.5})
    run_attack(cfg, [0], tmp_path / "run")
    checks = {c["name"]: c for c in json.loads((tmp_path / "run" / "doctor.json").read_text())}
    assert checks["log-vars stay bounded"]["expected"] == "<= 2.5"
    assert checks["log-vars stay bounded"]["status"] == "pass"
